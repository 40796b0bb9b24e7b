"""Every ``docs/theory.md §N`` (and ``§4 (Tn)``) cited in the repository exists in the document."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "theory.md"
CITING = ("ualign_jax", "tests", "benchmarks", "notebooks", "README.md")
SUFFIXES = (".py", ".md", ".ipynb")

# "docs/theory.md §3", "docs/theory.md §2–4", "docs/theory.md §4 (T1)", "§4 (T1–T5)".
CITATION = re.compile(r"docs/theory\.md §(\d+)(?:[–-](\d+))?(?: \((T\d)(?:[–-](T\d))?\))?")
# The old, out-of-repository note was cited as "THEORY §x" / "THEORY Tn".
OLD_CITATION = re.compile("THE" + r"ORY (§|T\d)")


def _files():
    for name in CITING:
        path = ROOT / name
        paths = [path] if path.is_file() else sorted(path.rglob("*"))
        yield from (
            p for p in paths if p.is_file() and p.suffix in SUFFIXES and p != Path(__file__)
        )


def _headings() -> set[int]:
    text = DOC.read_text(encoding="utf-8")
    return {int(n) for n in re.findall(r"^## §(\d+) ", text, flags=re.MULTILINE)}


def _claims() -> set[str]:
    return set(re.findall(r"^\*\*(T\d) \(", DOC.read_text(encoding="utf-8"), flags=re.MULTILINE))


def test_sections_are_numbered_one_to_nine():
    assert _headings() == set(range(1, 10))
    assert _claims() == {"T1", "T2", "T3", "T4", "T5"}


def test_every_cited_section_and_claim_exists():
    headings, claims = _headings(), _claims()
    missing, count = [], 0
    for path in _files():
        for match in CITATION.finditer(path.read_text(encoding="utf-8")):
            count += 1
            first, last, t_first, t_last = match.groups()
            sections = range(int(first), int(last or first) + 1)
            labels = {t_first, t_last} - {None}
            if not set(sections) <= headings or not labels <= claims:
                missing.append(f"{path.relative_to(ROOT)}: {match.group(0)}")
    assert count > 0, "no citations found: the pattern or the layout changed"
    assert not missing, missing


def test_no_citation_of_the_old_note_remains():
    stale = [
        f"{path.relative_to(ROOT)}: {m.group(0)}"
        for path in _files()
        for m in OLD_CITATION.finditer(path.read_text(encoding="utf-8"))
    ]
    assert not stale, stale
