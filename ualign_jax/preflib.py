"""PrefLib ranking data: a strict reader for ``.soc .soi .toc .toi`` files.

PrefLib format (docs/theory.md §6): header lines ``# KEY: value``; every other line is
``count: a,b,{c,d},e`` -- a ranking, best first, of alternatives numbered from 1, where braces tie
a group, given by ``count`` voters. In incomplete orders (``.soi``, ``.toi``) the alternatives a
line leaves out tie together below every ranked one.

A line with ``G`` groups becomes a utility vector: group ``g`` (0 = best) gets ``G - g`` and the
unranked alternatives get 0, so ties are exactly equal floats.

Names of alternatives must be unique and non-empty (an unnamed alternative ``i`` is called
``str(i)``, which no other alternative may be called): names key every output, so a repeat is
refused with the line that repeats it rather than silently merging two responses.

Errors in a file are ``ValueError("<source>:<line>: <what is wrong>")`` with a 1-based line;
problems of the whole file (no data lines, unknown data type) name the source only. The bundled
data sets are in :mod:`ualign_jax.datasets`; other file formats in :mod:`ualign_jax.files`.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from ._safe_io import read_text
from ._validation import cast_keeping_ties, float_dtype_arg
from .populations import RankingPopulation

__all__ = [
    "MAX_ALTERNATIVES",
    "MAX_ENTRIES",
    "MERGED_NAME",
    "PREFLIB_SUFFIXES",
    "PreflibData",
    "load_preflib",
    "parse_preflib",
]

#: Supported PrefLib data types: (complete, strict).
_DATA_TYPES = {
    "soc": (True, True),
    "soi": (False, True),
    "toc": (True, False),
    "toi": (False, False),
}

_NAME_KEY = re.compile(r"ALTERNATIVE NAME\s+(\S+)$", re.IGNORECASE)
_TOKEN = re.compile(r"\s*([{},]|[^{},\s]+)")
#: Most alternatives a file may have, and most entries (lines × alternatives) of its utilities.
MAX_ALTERNATIVES = 1_000_000
MAX_ENTRIES = 2**28
#: Name of the response standing for the alternatives no line ranks (when merged).
MERGED_NAME = "[{:,} alternatives no one ranked]"
#: Largest count per data line, and of all lines together (an int64).
MAX_VOTERS = 2**63 - 1
#: File extensions of the PrefLib data types this reader supports.
PREFLIB_SUFFIXES = tuple(f".{data_type}" for data_type in _DATA_TYPES)


def as_path(path, name: str = "path") -> Path:
    """``path`` (a ``str`` or ``os.PathLike``) as a ``Path``, else a ``ValueError`` naming it."""
    if not isinstance(path, str | os.PathLike):
        raise ValueError(f"{name} must be a file path (str or PathLike), got {type(path).__name__}")
    return Path(path)


@dataclasses.dataclass(frozen=True, eq=False)
class PreflibData:
    """A parsed PrefLib file: one row per distinct order (data line).

    Attributes:
        utilities: ``[m, n]`` float64; group ``g`` of ``G`` gets ``G - g``, unranked get 0.
        counts: ``[m]`` int64, voters per order (all positive).
        names: ``n`` alternative names (``str(i)`` for alternative ``i`` when the header has none).
        data_type: one of ``"soc" "soi" "toc" "toi"``.
        title: the ``TITLE`` header, or ``""``.
        source: the file (or name) it was parsed from, for messages.
        alternatives: ``[n]`` int64, the file's (1-based) alternative behind each column; 0
            for the column that stands for the merged never-ranked alternatives.
        merged: the file's unnamed alternatives that no line ranks, merged into the last
            column (empty when nothing was merged).
    """

    utilities: np.ndarray
    counts: np.ndarray
    names: tuple[str, ...]
    data_type: str
    title: str
    source: str = "<string>"
    alternatives: np.ndarray | None = None
    merged: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, np.int64))

    @property
    def num_alternatives(self) -> int:
        return self.utilities.shape[1]

    @property
    def num_voters(self) -> int:
        return int(self.counts.sum())

    def to_population(self, dtype=None) -> RankingPopulation:
        """A :class:`RankingPopulation` with weights proportional to ``counts``.

        Args:
            dtype: float dtype of the arrays; default jnp's default float (float32 unless x64).

        Raises:
            ValueError: if the cast to ``dtype`` would tie utilities that differ in the data
                (never for PrefLib's integer utilities in float32, which are exact below 2**24).
        """
        dtype = float_dtype_arg(dtype)
        return RankingPopulation(
            cast_keeping_ties(self.utilities, dtype, self.source),
            weights=jnp.asarray(self.counts, dtype=dtype),
            names=self.names,
        )


def _parse_int(text: str) -> int | None:
    """The integer ``text`` spells (at most 4000 digits), else ``None``."""
    text = text.strip()
    if not re.fullmatch(r"[+-]?\d{1,4000}", text):
        return None
    return int(text)


def short_repr(text: str, limit: int = 40) -> str:
    """``repr(text)``, cut to ``limit`` characters (messages stay one readable line)."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"... ({len(text)} chars)"


def _parse_order(body: str, num_alternatives: int, fail) -> list[list[int]]:
    """``a,b,{c,d},e`` -> ``[[a], [b], [c, d], [e]]`` (1-based ids), validating as it goes."""
    tokens = []
    pos = 0
    body = body.rstrip()
    while pos < len(body):
        match = _TOKEN.match(body, pos)
        tokens.append(match.group(1))
        pos = match.end()
    if not tokens:
        fail("empty ranking after the colon")
    groups: list[list[int]] = []
    seen: set[int] = set()
    group: list[int] | None = None  # the open brace group, if any
    expect_item = True  # an alternative (or '{') must come next
    for tok in tokens:
        if tok == "{":
            if group is not None:
                fail("bad brace nesting: '{' inside a tied group")
            if not expect_item:
                fail("expected ',' before '{'")
            group = []
        elif tok == "}":
            if group is None:
                fail("bad brace nesting: '}' without a matching '{'")
            if expect_item:
                fail("empty tied group or trailing ',' before '}'" if not group else "bad '}'")
            groups.append(group)
            group = None
            expect_item = False
        elif tok == ",":
            if expect_item:
                fail("expected an alternative before ','")
            expect_item = True
        else:
            if not expect_item:
                fail(f"expected ',' before {short_repr(tok)}")
            alt = _parse_int(tok)
            if alt is None:
                fail(f"alternative {short_repr(tok)} is not an integer")
            if not 1 <= alt <= num_alternatives:
                fail(f"alternative {alt} out of range 1..{num_alternatives}")
            if alt in seen:
                fail(f"alternative {alt} appears more than once")
            seen.add(alt)
            if group is None:
                groups.append([alt])
            else:
                group.append(alt)
            expect_item = False
    if group is not None:
        fail("bad brace nesting: '{' is never closed")
    if expect_item:
        fail("ranking ends with ','")
    return groups


def parse_preflib(text: str, source: str = "<string>", merge_unranked: bool = True) -> PreflibData:
    """Parse the text of a PrefLib ``.soc .soi .toc .toi`` file.

    The data type comes from the ``DATA TYPE`` header, else from ``source``'s extension; when
    both are known they must agree. The number of alternatives comes from ``NUMBER
    ALTERNATIVES``, else the largest ``ALTERNATIVE NAME i``, else the largest alternative in
    the data. ``NUMBER VOTERS``, when present, must equal the sum of the counts.

    Memory follows the data given, not the size a header declares: in incomplete orders
    (``.soi .toi``) the alternatives that *no* line ranks get utility 0 from every user, so
    they are interchangeable in every game (a policy's win rates depend only on the total
    probability it gives them; docs/theory.md §6). With ``merge_unranked`` (the default), two
    or more such alternatives that the header does not name either become one response, the
    last column, named ``MERGED_NAME``; its probability in a policy is the total for the class
    (split it among ``merged`` any way). Named or ranked alternatives keep their own column,
    so memory grows with the file, not with ``NUMBER ALTERNATIVES``. A declared size above
    ``MAX_ALTERNATIVES`` (1,000,000) is refused before anything is allocated, and so are
    utilities of more than ``MAX_ENTRIES`` (2**28) entries.

    Args:
        text: the file's contents.
        source: name used in error messages (and for the extension fallback).
        merge_unranked: merge the unnamed never-ranked alternatives into one response;
            ``False`` keeps one column per declared alternative.

    Returns:
        A :class:`PreflibData`; utilities ``u[r, j] = G - g`` when column ``j``'s alternative
        is in group ``g`` of the ``G`` groups of line ``r``, 0 when unranked. Column ``j`` is
        alternative ``j + 1`` unless never-ranked alternatives were merged.

    Raises:
        ValueError: ``"<source>:<line>: <reason>"`` for any malformed line or header.

    Example:
        >>> d = parse_preflib("# DATA TYPE: toi\\n# NUMBER ALTERNATIVES: 4\\n3: 2,{1,3}\\n2: 3\\n")
        >>> d.utilities.tolist(), d.counts.tolist()
        ([[1.0, 2.0, 1.0, 0.0], [0.0, 0.0, 1.0, 0.0]], [3, 2])
        >>> d = parse_preflib("# DATA TYPE: soi\\n# NUMBER ALTERNATIVES: 1000\\n1: 7,2\\n")
        >>> d.names, d.utilities.tolist(), len(d.merged)
        (('2', '7', '[998 alternatives no one ranked]'), [[1.0, 2.0, 0.0]], 998)
    """
    if not isinstance(text, str):
        raise ValueError(f"text must be a str (the file's contents), got {type(text).__name__}")
    if isinstance(source, os.PathLike):
        source = os.fspath(source)
    if not isinstance(source, str):
        raise ValueError(f"source must be a str naming the file, got {type(source).__name__}")
    lines = text.splitlines()
    headers: dict[str, tuple[str, int]] = {}
    names_by_id: dict[int, tuple[str, int]] = {}
    name_lines: dict[str, tuple[int, int]] = {}  # name -> (alternative, line)
    data: list[tuple[int, str]] = []

    def fail_at(lineno: int, message: str):
        raise ValueError(f"{source}:{lineno}: {message}")

    for lineno, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            key, colon, value = line[1:].partition(":")
            if not colon:
                continue  # a plain comment
            key, value = " ".join(key.split()).upper(), value.strip()
            match = _NAME_KEY.fullmatch(key)
            if match:
                idx = _parse_int(match.group(1))
                if idx is None or not 1 <= idx <= MAX_ALTERNATIVES:
                    fail_at(
                        lineno,
                        f"bad alternative number {short_repr(match.group(1))} in ALTERNATIVE NAME "
                        f"(1..{MAX_ALTERNATIVES:,})",
                    )
                if idx in names_by_id:
                    fail_at(lineno, f"alternative {idx} is named twice")
                if not value:
                    fail_at(lineno, f"alternative {idx} has an empty name")
                if value in name_lines:
                    other, other_line = name_lines[value]
                    fail_at(
                        lineno,
                        f"alternative {idx} is named {short_repr(value)} like alternative {other} "
                        f"(line {other_line}); names must be unique",
                    )
                names_by_id[idx] = (value, lineno)
                name_lines[value] = (idx, lineno)
            else:
                headers.setdefault(key, (value, lineno))
        else:
            data.append((lineno, line))

    # Data type: header, else extension; both known -> must agree.
    ext = Path(source).suffix.lower().lstrip(".")
    ext_type = ext if ext in _DATA_TYPES else None
    if "DATA TYPE" in headers:
        value, lineno = headers["DATA TYPE"]
        data_type = value.lower()
        if data_type not in _DATA_TYPES:
            fail_at(lineno, f"unsupported DATA TYPE {value!r}; expected one of soc, soi, toc, toi")
        if ext_type is not None and ext_type != data_type:
            fail_at(lineno, f"DATA TYPE {data_type!r} disagrees with the file extension '.{ext}'")
    elif ext_type is not None:
        data_type = ext_type
    else:
        raise ValueError(
            f"{source}: unknown data type: no DATA TYPE header and the extension {('.' + ext)!r} "
            "is not one of .soc, .soi, .toc, .toi"
        )
    complete, strict = _DATA_TYPES[data_type]

    if not data:
        raise ValueError(f"{source}: no data lines (expected lines like '12: 3,1,{{2,4}}')")

    # Number of alternatives.
    if "NUMBER ALTERNATIVES" in headers:
        value, lineno = headers["NUMBER ALTERNATIVES"]
        n = _parse_int(value)
        if n is None or n < 1:
            fail_at(
                lineno, f"NUMBER ALTERNATIVES must be a positive integer, got {short_repr(value)}"
            )
        if n > MAX_ALTERNATIVES:
            fail_at(lineno, f"NUMBER ALTERNATIVES = {n} exceeds the limit {MAX_ALTERNATIVES:,}")
        for idx, (_, name_line) in names_by_id.items():
            if idx > n:
                fail_at(name_line, f"ALTERNATIVE NAME {idx} exceeds NUMBER ALTERNATIVES = {n}")
    elif names_by_id:
        n = max(names_by_id)
    else:
        n = 1
        for lineno, line in data:
            for token in re.findall(r"\d+", line.partition(":")[2]):
                alt = _parse_int(token)
                if alt is None or alt > MAX_ALTERNATIVES:
                    limit = f"the limit {MAX_ALTERNATIVES:,}"
                    fail_at(lineno, f"alternative {short_repr(token)} exceeds {limit}")
                n = max(n, alt)
    orders = []  # per data line: its groups of 1-based alternatives (memory ~ the file)
    counts = []
    for lineno, line in data:

        def fail(message, lineno=lineno):
            fail_at(lineno, message)

        count_text, colon, body = line.partition(":")
        if not colon:
            fail("expected 'count: ranking' (no ':' found)")
        count = _parse_int(count_text)
        if count is None:
            fail(f"count {short_repr(count_text.strip())} is not an integer")
        if count <= 0:
            fail(f"count must be positive, got {count}")
        if count > MAX_VOTERS:
            fail(f"count {count} exceeds 2**63 - 1")
        groups = _parse_order(body, n, fail)
        if strict and any(len(g) > 1 for g in groups):
            fail(f"ties (braces with several alternatives) are not allowed in {data_type} data")
        ranked = sum(len(g) for g in groups)
        if complete and ranked != n:
            seen = {a for g in groups for a in g}
            missing = [str(a) for a in range(1, n + 1) if a not in seen]
            listed = ", ".join(missing[:10])
            if len(missing) > 10:
                listed += f", ... ({len(missing):,} in all)"
            fail(f"incomplete order in {data_type} data: alternatives {listed} are missing")
        orders.append(groups)
        counts.append(count)

    total = sum(counts)
    if total > MAX_VOTERS:
        raise ValueError(f"{source}: the counts sum to {total}, more than 2**63 - 1 voters")
    counts_arr = np.asarray(counts, dtype=np.int64)
    if "NUMBER VOTERS" in headers:
        value, lineno = headers["NUMBER VOTERS"]
        declared = _parse_int(value)
        if declared is None:
            fail_at(lineno, f"NUMBER VOTERS must be an integer, got {short_repr(value)}")
        if declared != total:
            fail_at(
                lineno,
                f"NUMBER VOTERS is {declared} but the counts on the data lines sum to {total}",
            )

    # Columns: the alternatives some line ranks or the header names, in file order, then
    # (merging) one column for the rest: 0 for every user, so interchangeable in every game.
    is_ranked = np.zeros(n + 1, dtype=bool)
    for groups in orders:
        for group in groups:
            is_ranked[group] = True
    keep = is_ranked.copy()
    keep[list(names_by_id)] = True  # a named alternative keeps its own column
    keep[0] = False
    never = np.flatnonzero(~keep[1:]) + 1
    merge = merge_unranked and len(never) >= 2
    alternatives = np.flatnonzero(keep) if merge else np.arange(1, n + 1)
    width = len(alternatives) + (1 if merge else 0)
    if len(orders) * width > MAX_ENTRIES:
        raise ValueError(
            f"{source}: {len(orders):,} data lines x {width:,} alternatives is more than "
            f"{MAX_ENTRIES:,} utilities"
        )
    column = np.full(n + 1, width - 1, dtype=np.int64)  # merged alternatives: the last column
    column[alternatives] = np.arange(len(alternatives))
    utilities = np.zeros((len(orders), width), dtype=np.float64)
    for row, groups in enumerate(orders):
        for g, group in enumerate(groups):
            utilities[row, column[group]] = len(groups) - g

    names = [names_by_id[i][0] if i in names_by_id else str(i) for i in alternatives.tolist()]
    if merge:
        names.append(MERGED_NAME.format(len(never)))
        alternatives = np.append(alternatives, 0)
    first: dict[str, int] = {}
    for j, name in enumerate(names):
        if name not in first:
            first[name] = j
            continue
        # Two header names never repeat (refused above): one of these is a default name.
        a, b = int(alternatives[first[name]]), int(alternatives[j])
        named, other = (a, b) if a in names_by_id else (b, a)
        what = (
            f"the default name of unnamed alternative {other}; name alternative {other} too"
            if other
            else "the name given to the merged never-ranked alternatives"
        )
        fail_at(names_by_id[named][1], f"alternative {named} is named {name!r}, {what}")
    never = never if merge else np.zeros(0, dtype=np.int64)
    title = headers.get("TITLE", ("", 0))[0]
    return PreflibData(
        utilities, counts_arr, tuple(names), data_type, title, source, alternatives, never
    )


def load_preflib(
    path: str | os.PathLike, dtype=None, merge_unranked: bool = True
) -> RankingPopulation:
    """Load a PrefLib ``.soc .soi .toc .toi`` file as a :class:`RankingPopulation`.

    One user type per data line, weight proportional to its count; alternative ``i`` (1-based in
    the file) is response ``i - 1``; names from the ``ALTERNATIVE NAME`` headers. In incomplete
    orders, the unnamed alternatives no line ranks become one last response
    (``merge_unranked``). See :func:`parse_preflib` for the utilities, the size limits and the
    checks.

    Args:
        path: the file.
        dtype: float dtype; default jnp's default float.
        merge_unranked: see :func:`parse_preflib`.

    Raises:
        FileNotFoundError: no file at ``path`` (the message names it).
        ValueError: ``"<path>:<line>: <reason>"`` for malformed content.

    Example:
        >>> from importlib import resources
        >>> pop = load_preflib(resources.files("ualign_jax") / "bundled" / "00004-00000001.soc")
        >>> pop.num_users, pop.num_responses, pop.names[0]
        (6, 3, 'Shrek (Full-screen)')
    """
    path = as_path(path)
    dtype = float_dtype_arg(dtype)
    text = read_text(path)
    return parse_preflib(text, str(path), merge_unranked).to_population(dtype)
