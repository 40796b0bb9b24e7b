"""PrefLib ranking data: a strict reader for ``.soc .soi .toc .toi`` files and bundled data sets.

PrefLib format (docs/theory.md §6): header lines ``# KEY: value``; every other line is
``count: a,b,{c,d},e`` -- a ranking, best first, of alternatives numbered from 1, where braces tie
a group, given by ``count`` voters. In incomplete orders (``.soi``, ``.toi``) the alternatives a
line leaves out tie together below every ranked one.

A line with ``G`` groups becomes a utility vector: group ``g`` (0 = best) gets ``G - g`` and the
unranked alternatives get 0, so ties are exactly equal floats. The bundled files (see
``datasets/README.md`` for their sources and citation) load with :func:`load_dataset`.

Names of alternatives must be unique and non-empty (an unnamed alternative ``i`` is called
``str(i)``, which no other alternative may be called): names key every output, so a repeat is
refused with the line that repeats it rather than silently merging two responses.

Errors in a file are ``ValueError("<source>:<line>: <what is wrong>")`` with a 1-based line;
problems of the whole file (no data lines, unknown data type) name the source only.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import re
from importlib import resources
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from ._safe_io import open_npz, read_json, read_npy, read_text
from ._validation import cast_keeping_ties, float_dtype_arg
from .plackett_luce import default_max_spread, spread_limit, spread_of
from .populations import PlackettLucePopulation, RankingPopulation

__all__ = [
    "DATASETS",
    "MAX_ALTERNATIVES",
    "MAX_ENTRIES",
    "MERGED_NAME",
    "PreflibData",
    "load_dataset",
    "load_policy_file",
    "load_population",
    "load_preflib",
    "parse_preflib",
]

#: Bundled PrefLib files (in ``ualign_jax/datasets/``) by data set name.
DATASETS: dict[str, str] = {
    "sushi": "00014-00000001.soc",
    "netflix": "00004-00000001.soc",
    "agh": "00009-00000001.soc",
    "debian": "00002-00000001.toc",
}

#: Corrected alternative names for bundled files whose header names are off by one. PrefLib's
#: sushi file names alternative ``i`` after Kamishima's item ``i - 1``, but its orders use item
#: ``i mod 10`` (alternative 10 is item 0, ebi): with these names the 5000 orders equal, as a
#: multiset, BayesMallows' ``sushi_rankings`` (labelled by item), where toro is the favourite.
#: Provenance: ``ualign_jax/datasets/README.md``.
_CORRECTED_NAMES: dict[str, tuple[str, ...]] = {
    "sushi": (
        "anago (sea eel)",
        "maguro (tuna)",
        "ika (squid)",
        "uni (sea urchin)",
        "sake (salmon roe)",
        "tamago (egg)",
        "toro (fatty tuna)",
        "tekka-maki (tuna roll)",
        "kappa-maki (cucumber roll)",
        "ebi (shrimp)",
    ),
}

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


def _as_path(path, name: str = "path") -> Path:
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


def _short(text: str, limit: int = 40) -> str:
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
                fail(f"expected ',' before {_short(tok)}")
            alt = _parse_int(tok)
            if alt is None:
                fail(f"alternative {_short(tok)} is not an integer")
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
                        f"bad alternative number {_short(match.group(1))} in ALTERNATIVE NAME "
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
                        f"alternative {idx} is named {_short(value)} like alternative {other} "
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
            fail_at(lineno, f"NUMBER ALTERNATIVES must be a positive integer, got {_short(value)}")
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
                    fail_at(lineno, f"alternative {_short(token)} exceeds {limit}")
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
            fail(f"count {_short(count_text.strip())} is not an integer")
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
            fail_at(lineno, f"NUMBER VOTERS must be an integer, got {_short(value)}")
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
        >>> pop = load_preflib(resources.files("ualign_jax") / "datasets" / "00004-00000001.soc")
        >>> pop.num_users, pop.num_responses, pop.names[0]
        (6, 3, 'Shrek (Full-screen)')
    """
    path = _as_path(path)
    dtype = float_dtype_arg(dtype)
    text = read_text(path)
    return parse_preflib(text, str(path), merge_unranked).to_population(dtype)


def load_dataset(name: str = "sushi", dtype=None) -> RankingPopulation:
    """Load a PrefLib data set bundled with the package (see ``DATASETS``).

    ``"sushi"`` (5000 voters, 10 sushi, 4926 distinct orders), ``"netflix"`` (3 films, 6 orders),
    ``"agh"`` (9 courses, 123 orders), ``"debian"`` (4 candidates, 31 orders with ties).

    The raw files are unmodified; the sushi names are corrected here: PrefLib's header names
    alternative ``i`` after Kamishima's item ``i - 1``, but its data use item ``i mod 10``
    (checked against an independent copy of the survey; ``ualign_jax/datasets/README.md``).
    So response 0 is anago and response 9 is ebi; ``load_preflib`` on the file keeps the header.

    Args:
        name: one of ``DATASETS``.
        dtype: float dtype; default jnp's default float.

    Example:
        >>> load_dataset("netflix").num_users
        6
        >>> load_dataset("sushi").names[6]
        'toro (fatty tuna)'
    """
    if not isinstance(name, str) or name not in DATASETS:
        raise ValueError(f"unknown data set {name!r}; known: {', '.join(sorted(DATASETS))}")
    dtype = float_dtype_arg(dtype)
    filename = DATASETS[name]
    text = resources.files("ualign_jax").joinpath("datasets").joinpath(filename).read_text("utf-8")
    data = parse_preflib(text, source=filename)
    if name in _CORRECTED_NAMES:
        data = dataclasses.replace(data, names=_CORRECTED_NAMES[name])
    return data.to_population(dtype)


def _unique_names(names: np.ndarray, path) -> list[str]:
    """The ``.npz`` ``names`` as strings; empty or repeated names are a ``ValueError``."""
    result: list[str] = []
    first: dict[str, int] = {}
    for i, name in enumerate(names.tolist()):
        if isinstance(name, bytes):
            try:
                name = name.decode("utf-8")
            except UnicodeDecodeError:
                raise ValueError(f"{path}: 'names'[{i}] is not UTF-8 text") from None
        name = str(name)
        if not name.strip():
            raise ValueError(f"{path}: 'names'[{i}] is empty; every response needs a name")
        if name in first:
            raise ValueError(
                f"{path}: 'names'[{first[name]}] and 'names'[{i}] are both {_short(name)}; "
                "names must be unique"
            )
        first[name] = i
        result.append(name)
    return result


PREFLIB_SUFFIXES = (".soc", ".soi", ".toc", ".toi")


def load_population(path: str | os.PathLike, dtype=None):
    """A population from a PrefLib file or an ``.npz`` archive.

    The ``.npz`` holds ``utilities`` (``[m, n]``, a :class:`RankingPopulation`) or
    ``log_weights`` (``[m, n]``, a :class:`PlackettLucePopulation`), and optionally ``weights``
    (``[m]``) and ``names`` (``[n]`` unique strings). Errors name the file and the key.

    Utilities are checked against ``dtype``: if rounding them to it would make two responses
    tie for a user although they differ in the file (``1`` and ``1 + 1e-9`` in float32), the
    load is refused with a ``ValueError`` that suggests float64 (``--x64`` on the command line)
    instead of returning a population whose win rates would be silently wrong.

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "users.npz"
        >>> np.savez(path, utilities=np.eye(3))
        >>> load_population(path).num_users
        3
    """
    path = _as_path(path)
    dtype = float_dtype_arg(dtype)
    if path.suffix.lower() in PREFLIB_SUFFIXES:
        return load_preflib(path, dtype=dtype)
    if path.suffix.lower() != ".npz":
        raise ValueError(
            f"{path}: unknown data format {path.suffix!r}; expected a PrefLib file "
            f"({', '.join(PREFLIB_SUFFIXES)}) or an .npz with 'utilities' or 'log_weights'"
        )
    with open_npz(path) as archive:
        keys = set(archive.keys)
        kinds = [key for key in ("utilities", "log_weights") if key in keys]
        if len(kinds) != 1:
            raise ValueError(
                f"{path}: expected exactly one of the keys 'utilities' or 'log_weights', "
                f"found {sorted(keys) or 'none'}"
            )
        unknown = keys - {"utilities", "log_weights", "weights", "names"}
        if unknown:
            raise ValueError(
                f"{path}: unknown key(s) {sorted(unknown)}; allowed: utilities or "
                "log_weights, weights, names"
            )
        shape, _ = archive.header(kinds[0])  # sizes checked before the data is read
        if len(shape) == 2 and shape[1] > MAX_ALTERNATIVES:
            raise ValueError(
                f"{path}: '{kinds[0]}' has {shape[1]:,} responses, more than the limit "
                f"{MAX_ALTERNATIVES:,}"
            )
        if math.prod(shape) > MAX_ENTRIES:
            raise ValueError(
                f"{path}: '{kinds[0]}' has shape {shape}, more than {MAX_ENTRIES:,} entries"
            )

        def read(key, kinds="fiu"):
            value = archive.array(key)
            if value.dtype.kind not in kinds:
                raise ValueError(f"{path}: '{key}' must hold real numbers, got dtype {value.dtype}")
            return value

        values = read(kinds[0])
        weights = read("weights") if "weights" in keys else None
        names = read("names", kinds="fiuUS") if "names" in keys else None
    if names is not None:
        if names.ndim != 1:
            raise ValueError(f"{path}: 'names' must be 1-D, got shape {names.shape}")
        names = _unique_names(names, path)
    if values.ndim != 2:
        raise ValueError(
            f"{path}: '{kinds[0]}' must be a 2-D [users, responses] array, got shape {values.shape}"
        )
    if kinds[0] == "utilities":
        make, values = RankingPopulation, cast_keeping_ties(values, dtype, f"{path}: 'utilities'")
    else:  # a file's spread is its own: build the quadrature for it (more nodes past 60 nats)
        values = jnp.asarray(values, dtype)
        spread = max(spread_of(values) if values.size else 0.0, default_max_spread(dtype))
        make = functools.partial(
            PlackettLucePopulation, max_spread=min(spread, spread_limit(dtype))
        )
    try:
        return make(
            values,
            None if weights is None else jnp.asarray(weights, dtype),
            names,
        )
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err


#: Largest policy file read (a JSON policy over ``MAX_ALTERNATIVES`` responses fits easily).
MAX_POLICY_BYTES = 2**26
POLICY_SUFFIXES = (".json", ".npy", ".npz")


def load_policy_file(
    path: str | os.PathLike, num_responses: int | None = None, names=None
) -> np.ndarray:
    """A policy (probabilities over responses) from a ``.json``, ``.npy`` or ``.npz`` file.

    ``.json``: a list of numbers, or an object with a ``"policy"`` list and optionally
    ``"names"`` (as ``ualign solve`` writes ``policy.json``; other keys are ignored). ``.npy``:
    a 1-D array. ``.npz``: an archive with a 1-D array ``policy``. The policy must be finite,
    nonnegative and sum to 1 (within 1e-6).

    Args:
        path: the file (at most ``MAX_POLICY_BYTES``).
        num_responses: if given, the number of entries the policy must have.
        names: if given and the file records names, they must equal these, in order.

    Returns:
        ``[n]`` float64 array.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: ``"<path>: <what is wrong>"`` for anything else (damaged file, wrong
            shape or names, not a probability vector).

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "policy.json"
        >>> _ = path.write_text('{"policy": [0.25, 0.75], "names": ["a", "b"]}')
        >>> load_policy_file(path, 2, names=("a", "b")).tolist()
        [0.25, 0.75]
    """
    path = _as_path(path)
    suffix = path.suffix.lower()
    if suffix not in POLICY_SUFFIXES:
        raise ValueError(f"{path}: expected a policy file ending in .json, .npy or .npz")
    recorded = None
    if suffix == ".json":
        payload = read_json(path, MAX_POLICY_BYTES)
        if isinstance(payload, dict):
            if "policy" not in payload:
                raise ValueError(f"{path}: a JSON object needs a 'policy' list")
            recorded = payload.get("names")
            payload = payload["policy"]
        if not isinstance(payload, list) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in payload
        ):
            raise ValueError(f"{path}: the policy must be a flat list of numbers")
        try:
            raw = np.asarray(payload, dtype=np.float64)
        except OverflowError as err:  # an integer beyond float64
            raise ValueError(f"{path}: a policy entry is out of range ({err})") from err
    elif suffix == ".npy":
        raw = read_npy(path, MAX_POLICY_BYTES)
    else:
        with open_npz(path, MAX_POLICY_BYTES) as archive:
            if "policy" not in archive.keys:
                raise ValueError(f"{path}: no array 'policy' (found {sorted(archive.keys)})")
            raw = archive.array("policy")
    if raw.dtype.kind not in "iuf":
        raise ValueError(f"{path}: the policy must hold real numbers, got {raw.dtype} values")
    policy = raw.astype(np.float64)
    if policy.ndim != 1 or policy.size == 0:
        raise ValueError(f"{path}: the policy must be a non-empty 1-D vector, got {policy.shape}")
    if num_responses is not None and policy.shape[0] != num_responses:
        raise ValueError(
            f"{path}: the policy has {policy.shape[0]} entries, the data has "
            f"{num_responses} responses"
        )
    if not np.all(np.isfinite(policy)) or policy.min() < 0 or abs(policy.sum() - 1) > 1e-6:
        raise ValueError(f"{path}: the policy must be finite, nonnegative and sum to 1")
    if names is not None and recorded is not None:
        if not isinstance(recorded, list) or not all(isinstance(n, str) for n in recorded):
            raise ValueError(f"{path}: 'names' must be a list of strings")
        expected = [str(n) for n in names]
        if recorded != expected:
            if len(recorded) != len(expected):
                where = f"{len(recorded)} names, the data has {len(expected)}"
            else:
                i = next(
                    i for i, (a, b) in enumerate(zip(recorded, expected, strict=True)) if a != b
                )
                where = f"entry {i} is {_short(recorded[i])}, the data's is {_short(expected[i])}"
            raise ValueError(f"{path}: the policy's names differ from the data's ({where})")
    return policy
