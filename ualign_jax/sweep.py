"""A benchmark sweep over preference files: equilibrium vs NLHF, RLHF and uniform, per k and ℓ.

For every data file (PrefLib ``.soc .soi .toc .toi`` or ``.npz``) and every ``k``, the sweep
solves the (k+1)-player game once (docs/theory.md §3, ``solve``), computes NLHF and RLHF once per
file (§5) and takes the uniform policy; for every ``ℓ`` it scores each of the four policies
sampled ``k`` times by its robust win rate ``R_{k,ℓ}`` (§4: exact by enumerating the
``C(n+ℓ-1, ℓ)`` deterministic opponents where that is at most ``max_exact_opponents``, otherwise
the certified bounds of ``robust_win_rate_bounds``), its exploitability
``ε_k = k/(k+1) − R_{k,1}`` and its support size (the NLHF collapse of T3).

Outputs in ``out``: ``rows.jsonl`` and ``rows.csv`` (one row per file, k, ℓ and method, appended
and flushed as each (file, k) finishes), ``summary.md``, ``summary.json``,
``robust_win_rate_vs_k.png`` and ``nlhf_shortfall.png``. A rerun into the same folder skips the
rows already there; a file that cannot be read or solved becomes an error row and the sweep goes
on. Compiled programs are shared across files with the same number of responses: users are
padded with weight-0 rows to a power of two (a weight-0 user changes no payoff), and response
names, a static field of the population, are dropped before solving.

Example:
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "tiny.soc").write_text("# NUMBER ALTERNATIVES: 2\\n3: 1,2\\n1: 2,1\\n")
    >>> result = run_sweep(folder, folder / "out", ks=[1, 2], ells=[1])
    >>> len(result.rows), result.errors
    (8, 0)
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import functools
import json
import math
import numbers
import os
import re
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .metrics import exploitability, robust_win_rate, robust_win_rate_bounds

__all__ = [
    "run_sweep",
    "find_data_files",
    "DataFile",
    "SweepEvent",
    "SweepResult",
    "SWEEP_METHODS",
    "ROW_FIELDS",
    "DATA_SUFFIXES",
]

#: File endings the sweep reads (case-insensitive).
DATA_SUFFIXES = (".soc", ".soi", ".toc", ".toi", ".npz")
#: The policies each (file, k, ℓ) is scored for, in row order.
SWEEP_METHODS = ("equilibrium", "nlhf", "rlhf", "uniform")
#: Columns of ``rows.csv`` (and keys of every ``rows.jsonl`` record).
ROW_FIELDS = (
    "file",
    "path",
    "family",
    "title",
    "num_voters",
    "num_users",
    "num_responses",
    "k",
    "ell",
    "method",
    "robust_win_rate",
    "robust_lower",
    "robust_upper",
    "evaluation",
    "k_over_k_plus_1",
    "t4_bound",
    "exploitability",
    "support_size",
    "support_threshold",
    "solver",
    "steps",
    "tol",
    "steps_taken",
    "outcome",
    "dtype",
    "policy_seconds",
    "eval_seconds",
    "finished_at",
    "error",
)
#: Settings every row of one output folder must share (a rerun with others is refused).
SETTING_FIELDS = ("solver", "steps", "tol", "support_threshold")
ROWS_JSONL, ROWS_CSV = "rows.jsonl", "rows.csv"
SUMMARY_MD, SUMMARY_JSON = "summary.md", "summary.json"
WIN_RATE_PNG, SHORTFALL_PNG = "robust_win_rate_vs_k.png", "nlhf_shortfall.png"
MANIFEST = "MANIFEST.csv"
#: Smallest padded user count (users are padded to a power of two at least this).
MIN_USER_BUCKET = 8


class DataFile(NamedTuple):
    """One input: ``path`` (resolved; the resume key), ``file`` (the name shown: relative to the
    folder it was found in), and ``family``/``title``/``num_voters`` from a ``MANIFEST.csv``."""

    path: Path
    file: str
    family: str = ""
    title: str = ""
    num_voters: int | None = None


class SweepEvent(NamedTuple):
    """What a progress callback receives after each (file, k): ``status`` is ``"computed"``,
    ``"skipped"`` (rows already in the folder) or ``"error"``."""

    done: int
    total: int
    file: str
    k: int
    status: str
    seconds: float


@dataclasses.dataclass(frozen=True)
class SweepResult:
    """All rows in the folder (earlier runs included), what this run added, and the outputs."""

    rows: list[dict]
    computed: int
    skipped: int
    errors: int
    seconds: float
    summary: dict
    outputs: list[Path]


# --------------------------------------------------------------------------- finding files


def find_data_files(sources: str | os.PathLike | Iterable[str | os.PathLike]) -> list[DataFile]:
    """The data files in ``sources`` (a folder, searched recursively, or files), in order.

    A ``MANIFEST.csv`` (columns ``path``, ``family``, ``title``, ``voters``, paths relative to
    its folder) in a source folder or in the nearest folder above a file that lists it supplies
    the file's metadata; a PrefLib file name (``00042-00000016.soi``) gives its family
    otherwise. A file appearing twice is kept once.

    Example:
        >>> import tempfile, pathlib
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (folder / "a.soc").write_text("")
        >>> [f.file for f in find_data_files(folder)]
        ['a.soc']
    """
    if isinstance(sources, str | os.PathLike):
        sources = [sources]
    found: dict[Path, DataFile] = {}
    for source in sources:
        source = Path(source)
        if source.is_dir():
            manifest = _read_manifest(source)
            for path in sorted(source.rglob("*")):
                relative = path.relative_to(source)
                if any(part.startswith(".") for part in relative.parts):
                    continue
                if path.suffix.lower() in DATA_SUFFIXES and path.is_file():
                    _add(found, path, relative.as_posix(), manifest)
        elif source.exists() or source.is_symlink():
            _add(found, source, source.name, {})
        else:
            raise ValueError(f"sources: {source} does not exist")
    if not found:
        raise ValueError(f"sources: no {'/'.join(DATA_SUFFIXES)} files found")
    return list(found.values())


def _add(found: dict, path: Path, shown: str, manifest: dict) -> None:
    resolved = Path(os.path.realpath(path))
    if resolved in found:
        return
    meta = manifest.get(shown) or _manifest_row(path)
    voters = meta.get("voters", "")
    preflib_name = _PREFLIB_NAME.fullmatch(path.name)
    found[resolved] = DataFile(
        path=resolved,
        file=shown,
        family=meta.get("family") or (preflib_name.group(1) if preflib_name else ""),
        title=meta.get("title", ""),
        num_voters=int(voters) if voters.isdigit() else None,
    )


#: PrefLib's file names: the data set (family) number, then the file's number in it.
_PREFLIB_NAME = re.compile(r"(\d{5})-\d{8}\.\w+")


#: How many folders above a file's own are searched for a ``MANIFEST.csv`` that lists it.
MANIFEST_LEVELS_UP = 3


def _manifest_row(path: Path) -> dict[str, str]:
    """The row of ``path`` in the nearest ``MANIFEST.csv`` that lists it, in its folder or up to
    :data:`MANIFEST_LEVELS_UP` folders above (a file or subfolder named on its own), else ``{}``."""
    path = Path(os.path.abspath(path))
    for folder in [path.parent, *path.parent.parents][: MANIFEST_LEVELS_UP + 1]:
        relative = os.path.relpath(path, folder).replace(os.sep, "/")
        row = _read_manifest(folder).get(relative)
        if row is not None:
            return row
    return {}


def _read_manifest(folder: Path) -> dict[str, dict[str, str]]:
    """``path -> row`` of ``folder/MANIFEST.csv``; an absent or unreadable one gives ``{}``."""
    try:
        with open(folder / MANIFEST, newline="", encoding="utf-8") as handle:
            return {row["path"]: row for row in csv.DictReader(handle) if row.get("path")}
    except (OSError, UnicodeDecodeError, csv.Error, KeyError):
        return {}


# --------------------------------------------------------------------------- the sweep


def run_sweep(
    sources,
    out: str | os.PathLike,
    ks: Sequence[int] = (1, 2, 4, 8),
    ells: Sequence[int] = (1, 2),
    *,
    method: str | None = None,
    steps: int = 2000,
    tol: float = 1e-6,
    support_threshold: float = 1e-3,
    max_exact_opponents: int = 200_000,
    max_responses: int = 2000,
    max_users: int = 1_000_000,
    max_file_bytes: int = 1 << 30,
    dtype=None,
    retry_errors: bool = False,
    plots: bool = True,
    progress: Callable[[SweepEvent], None] | None = None,
) -> SweepResult:
    """Score the equilibrium, NLHF, RLHF and uniform policies on every file, for every k and ℓ.

    Per row ``R = R_{k,ℓ}(π^{⊗k}) = min_B WR(π^{⊗k}, B)`` over ℓ-output opponents
    (docs/theory.md §4); ``evaluation`` says whether it is ``"exact"`` (then
    ``robust_lower = robust_upper = robust_win_rate``) or ``"bounds"`` (certified bounds, no
    point value). ``exploitability = k/(k+1) − R_{k,1}`` of the method's policy; for the NLHF
    rows it is the NLHF shortfall. ``t4_bound = 1 − ℓ/(k+1)`` is what an exact equilibrium
    guarantees (T4).

    Args:
        sources: a folder (searched recursively), a file, or a list of them.
        out: the output folder (created; reused by a rerun, which skips rows already there).
        ks, ells: positive integers.
        method, steps, tol: passed to ``solve`` (default method: ``solve``'s default).
        support_threshold: a response is in a policy's support when its probability exceeds it.
        max_exact_opponents: the most multisets scored for an exact ``R_{k,ℓ}``; beyond, bounds.
        max_responses, max_users, max_file_bytes: larger inputs become error rows.
        dtype: the float dtype to load data in (default: float64 if x64 is on, else float32).
        retry_errors: recompute files and (file, k) pairs that have error rows in ``out``.
        plots: write the two PNGs.
        progress: called with a :class:`SweepEvent` after each (file, k).

    Example: see the module docstring.
    """
    from .solver import DEFAULT_METHOD, METHODS  # noqa: PLC0415  (loads JAX)

    started = time.perf_counter()
    ks, ells = _positive_ints(ks, "ks"), _positive_ints(ells, "ells")
    method = DEFAULT_METHOD if method is None else method
    if method not in METHODS:
        raise ValueError(f"method {method!r} is unknown; choose from {', '.join(METHODS)}")
    steps = _positive_ints([steps], "steps")[0]
    for value, name in ((tol, "tol"), (support_threshold, "support_threshold")):
        if not _is_real(value) or not (0 < value < 1):
            raise ValueError(f"{name} must be a number in (0, 1), got {value!r}")
    for value, name in (
        (max_exact_opponents, "max_exact_opponents"),
        (max_responses, "max_responses"),
        (max_users, "max_users"),
        (max_file_bytes, "max_file_bytes"),
    ):
        _positive_ints([value], name)
    files = find_data_files(sources)
    out = _output_folder(out)
    settings = {
        "solver": method,
        "steps": steps,
        "tol": float(tol),
        "support_threshold": float(support_threshold),
    }
    store = _RowStore(out, settings)
    limits = {
        "max_exact_opponents": max_exact_opponents,
        "max_responses": max_responses,
        "max_users": max_users,
        "max_file_bytes": max_file_bytes,
    }
    total, done, computed, skipped, errors = len(files) * len(ks), 0, 0, 0, 0
    for data in files:
        todo = store.missing(data.path, ks, ells, retry_errors)
        events = []
        if todo:
            new_rows = []
            for k, status, seconds, rows in _sweep_file(
                data, todo, ells, settings, limits, dtype, store
            ):
                new_rows += rows
                events.append((k, status, seconds))
            computed += sum(not r["error"] for r in new_rows)
            errors += sum(bool(r["error"]) for r in new_rows)
        for k in ks:
            if k not in todo:
                skipped += 1
                events.append((k, "skipped", 0.0))
        for k, status, seconds in sorted(events, key=lambda e: ks.index(e[0])):
            done += 1
            if progress is not None:
                progress(SweepEvent(done, total, data.file, k, status, seconds))
    rows = store.rows
    summary = summarise(rows, ks, ells, settings)
    summary["run_seconds"] = round(time.perf_counter() - started, 3)
    summary["rows_computed_this_run"] = computed
    outputs = [out / ROWS_JSONL, out / ROWS_CSV, *_write_summary(out, summary, ks, ells, plots)]
    return SweepResult(
        rows=rows,
        computed=computed,
        skipped=skipped,
        errors=errors,
        seconds=time.perf_counter() - started,
        summary=summary,
        outputs=outputs,
    )


def _sweep_file(data: DataFile, todo: dict, ells, settings, limits, dtype, store):
    """Yield ``(k, status, seconds, rows appended)`` for each k of one file."""
    base = {
        "file": data.file,
        "path": str(data.path),
        "family": data.family,
        "title": data.title,
        "num_voters": data.num_voters,
        **settings,
    }
    clock = time.perf_counter()
    try:
        pop, padded = _load(data.path, dtype, limits)
    except Exception as err:  # noqa: BLE001  (any failure becomes a row; the sweep goes on)
        rows = [store.append(_error_row(base, None, None, err))]
        for k in todo:  # the file's error row is reported with its first k
            yield k, "error", time.perf_counter() - clock, rows
            rows = []
        return
    base |= {
        "num_users": pop.num_users,
        "num_responses": pop.num_responses,
        "dtype": str(np.dtype(pop.dtype)),
    }
    rows = {k: [] for k in todo}
    seconds = {k: 0.0 for k in todo}
    policies = {}  # (method, k or None) -> (policy, seconds, extra columns)
    wanted = {name for methods in todo.values() for name in methods}
    for name in SWEEP_METHODS[1:]:
        if name in wanted:
            clock = time.perf_counter()
            try:  # a baseline that fails costs its own rows only (one error row per file)
                policy = np.asarray(_BASELINES[name](padded))
                policies[name, None] = (policy, time.perf_counter() - clock, {})
            except Exception as err:  # noqa: BLE001
                rows[next(iter(todo))].append(_error_row(base, None, name, err))
    for k, methods in todo.items():
        if "equilibrium" in methods:
            clock = time.perf_counter()
            try:
                policies["equilibrium", k] = _solve(padded, k, settings)
            except Exception as err:  # noqa: BLE001
                rows[k].append(_error_row(base, k, "equilibrium", err))
            seconds[k] += time.perf_counter() - clock
    clock = time.perf_counter()
    try:
        for row in _evaluate_rows(padded, todo, policies, settings, limits):
            rows[row["k"]].append(row)
    except Exception as err:  # noqa: BLE001
        for k in todo:
            rows[k].append(_error_row(base, k, None, err))
    for k in todo:
        seconds[k] += (time.perf_counter() - clock) / len(todo)
        appended = [store.append({**base, **row}) for row in rows[k]]
        status = "error" if any(row["error"] for row in appended) else "computed"
        yield k, status, seconds[k], appended


def _load(path: Path, dtype, limits):
    """The population in ``path`` and its padded, nameless copy (see the module docstring)."""
    from .files import load_population  # noqa: PLC0415
    from .payoffs import prepare  # noqa: PLC0415

    size = path.stat().st_size
    if size > limits["max_file_bytes"]:
        raise ValueError(
            f"{path}: {size:,} bytes, above max_file_bytes={limits['max_file_bytes']:,}"
        )
    pop = load_population(path, dtype=dtype)
    if pop.batch_shape:
        raise ValueError(f"{path}: one prompt expected, got batch shape {pop.batch_shape}")
    for count, name in ((pop.num_responses, "responses"), (pop.num_users, "users")):
        if count > limits[f"max_{name}"]:
            raise ValueError(
                f"{path}: {count:,} {name}, above max_{name}={limits[f'max_{name}']:,}"
            )
    return pop, prepare(_pad_users(pop))


def _pad_users(pop):
    """``pop`` without names and with weight-0 users up to a power of two (same game, shared
    compiled programs); kinds without a user table come back without names only."""
    table_field = getattr(pop, "table_field", None)
    if table_field is None:
        return pop.replace(names=None) if hasattr(pop, "names") else pop
    table = np.asarray(getattr(pop, table_field))
    weights = np.asarray(pop.user_weights)
    m = table.shape[-2]
    bucket = max(MIN_USER_BUCKET, 1 << (m - 1).bit_length())
    table = np.concatenate([table, np.zeros((bucket - m, table.shape[-1]), table.dtype)])
    weights = np.concatenate([weights, np.zeros(bucket - m, weights.dtype)])
    return pop.replace(**{table_field: table, "weights": weights, "names": None})


def _uniform(pop):
    from .policies import uniform_policy  # noqa: PLC0415

    return uniform_policy(pop.num_responses, pop.dtype)


def _nlhf(pop):
    from .baselines import nlhf  # noqa: PLC0415

    return nlhf(pop)


def _rlhf(pop):
    from .baselines import rlhf  # noqa: PLC0415

    return rlhf(pop)


_BASELINES = {"nlhf": _nlhf, "rlhf": _rlhf, "uniform": _uniform}


def _solve(pop, k: int, settings: dict):
    """``(policy, seconds, extra columns)`` of the equilibrium at ``k`` (``solve``'s last
    iterate)."""
    from .solver import solve  # noqa: PLC0415

    clock = time.perf_counter()
    sol = solve(pop, k, method=settings["solver"], steps=settings["steps"], tol=settings["tol"])
    policy = np.asarray(sol.policy)
    if not np.all(np.isfinite(policy)):
        raise FloatingPointError(f"solve at k={k} returned a non-finite policy")
    extra = {"steps_taken": int(sol.num_steps), "outcome": str(sol.outcome_name)}
    return policy, time.perf_counter() - clock, extra


def _evaluate_rows(pop, todo: dict, policies: dict, settings, limits) -> list[dict]:
    """The rows of one file: ``todo`` maps each k to ``{method: [ℓ still missing]}``;
    ``policies`` maps ``(method, k)`` (``k = None`` for the baselines) to what it needs. All
    (k, method, ℓ) go through one compiled program (:func:`_evaluate`)."""
    ks = tuple(todo)
    n = pop.num_responses

    def found(name, k):
        return policies.get((name, k)) or policies.get((name, None))

    ells = tuple(sorted({ell for methods in todo.values() for e in methods.values() for ell in e}))
    exact = tuple(
        ell for ell in ells if ell == 1 or _multisets(n, ell) <= limits["max_exact_opponents"]
    )
    filler = np.full(n, 1.0 / n)  # stands for a policy that failed (its rows are not written)
    stacked = np.stack([[(found(name, k) or (filler,))[0] for name in SWEEP_METHODS] for k in ks])
    clock = time.perf_counter()
    lower, upper, epsilon = (
        np.asarray(a, dtype=np.float64)
        for a in _evaluate(pop, jnp.asarray(stacked, pop.dtype), ks=ks, ells=ells, exact=exact)
    )
    eval_seconds = time.perf_counter() - clock
    threshold = settings["support_threshold"]
    finished = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")
    rows = []
    for a, k in enumerate(ks):
        for i, name in enumerate(SWEEP_METHODS):
            if found(name, k) is None:
                continue
            policy, seconds, extra = found(name, k)
            for j, ell in enumerate(ells):
                if ell not in todo[k].get(name, ()):
                    continue
                is_exact = ell in exact
                rows.append(
                    {
                        "k": k,
                        "ell": ell,
                        "method": name,
                        "robust_win_rate": float(lower[a, i, j]) if is_exact else None,
                        "robust_lower": float(lower[a, i, j]),
                        "robust_upper": float(upper[a, i, j]),
                        "evaluation": "exact" if is_exact else "bounds",
                        "k_over_k_plus_1": k / (k + 1),
                        "t4_bound": max(0.0, 1 - ell / (k + 1)),
                        "exploitability": float(epsilon[a, i]),
                        "support_size": int(np.sum(policy > threshold)),
                        "policy_seconds": round(seconds, 4),
                        "eval_seconds": round(eval_seconds, 4),
                        "finished_at": finished,
                        "error": "",
                        **extra,
                    }
                )
    return rows


def _multisets(n: int, ell: int) -> int:
    return math.comb(n + ell - 1, ell)


@functools.partial(jax.jit, static_argnames=("ks", "ells", "exact"))
def _evaluate(pop, policies, ks: tuple, ells: tuple, exact: tuple):
    """For policies ``[K, M, n]`` (one row of M per k in ``ks``): ``[K, M, L]`` lower and upper
    ``R_{k,ℓ}`` over ``ells`` (equal where ℓ is in ``exact``, certified bounds otherwise) and
    ``[K, M]`` ``ε_k``. One compiled program per population shape, ks and ℓs: compiling one
    program for all k takes about half as long as one per k (measured)."""

    def at(k):
        def one(policy):
            lows, highs = [], []
            for ell in ells:
                if ell in exact:
                    count = _multisets(pop.num_responses, ell)
                    value = robust_win_rate(pop, policy, k, ell, max_opponents=count)
                    lows.append(value)
                    highs.append(value)
                else:
                    bounds = robust_win_rate_bounds(pop, policy, k, ell)
                    lows.append(bounds.lower)
                    highs.append(bounds.upper)
            return jnp.stack(lows), jnp.stack(highs), exploitability(pop, policy, k)

        return one

    results = [jax.vmap(at(k))(policies[a]) for a, k in enumerate(ks)]
    return tuple(jnp.stack(parts) for parts in zip(*results, strict=True))


def _error_row(base: dict, k: int | None, method: str | None, err: BaseException) -> dict:
    """A failure as a row: ``k``/``method`` ``None`` when it concerns every k/method."""
    text = " ".join(f"{type(err).__name__}: {err}".split())
    return {
        **base,
        "k": k,
        "method": method,
        "finished_at": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="milliseconds"
        ),
        "error": text[:2000],
    }


# --------------------------------------------------------------------------- the row files


class _RowStore:
    """``rows.jsonl`` (the record) and ``rows.csv`` (the same rows), appended and flushed.

    On opening, a torn last line (a killed run) is dropped and ``rows.csv`` is rewritten from
    ``rows.jsonl``, so the two always hold the same rows.
    """

    def __init__(self, out: Path, settings: dict):
        self.out, self.settings = out, settings
        self.rows = self._read()
        for row in self.rows:
            other = {f: row.get(f) for f in SETTING_FIELDS}
            if other != settings:
                raise ValueError(
                    f"out: {out} holds rows of a sweep with other settings ({other}); "
                    f"this one has {settings}: choose another folder"
                )
        self._jsonl = self._csv_file = None
        self._rewrite()

    def _read(self) -> list[dict]:
        path = self.out / ROWS_JSONL
        if not path.exists():
            return []
        rows = []
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue  # a line torn by a killed run: its (file, k) is recomputed
            if isinstance(row, dict) and "path" in row:
                rows.append({field: row.get(field) for field in ROW_FIELDS})
        return rows

    def _rewrite(self) -> None:
        """Write both files from ``self.rows`` (each replaced whole) and reopen them to append."""
        for handle in (self._jsonl, self._csv_file):
            if handle is not None:
                handle.close()
        for name, write in ((ROWS_JSONL, self._write_jsonl), (ROWS_CSV, self._write_csv)):
            temporary = self.out / f".{name}.tmp"
            with open(temporary, "w", newline="", encoding="utf-8") as handle:
                write(handle)
            os.replace(temporary, self.out / name)
        self._jsonl = open(self.out / ROWS_JSONL, "a", encoding="utf-8")  # noqa: SIM115
        self._csv_file = open(self.out / ROWS_CSV, "a", newline="", encoding="utf-8")  # noqa: SIM115
        self._csv = csv.DictWriter(self._csv_file, ROW_FIELDS)

    def _write_jsonl(self, handle) -> None:
        for row in self.rows:
            handle.write(json.dumps(row) + "\n")

    def _write_csv(self, handle) -> None:
        writer = csv.DictWriter(handle, ROW_FIELDS)
        writer.writeheader()
        writer.writerows(self.rows)

    def missing(self, path: Path, ks, ells, retry_errors: bool) -> dict[int, dict[str, list]]:
        """``k -> {method: [ℓ without a row]}`` for one file (only k with something missing)."""
        mine = [r for r in self.rows if r["path"] == str(path)]
        if retry_errors:
            self.rows = [r for r in self.rows if not (r["path"] == str(path) and r["error"])]
            self._rewrite()
            mine = [r for r in mine if not r["error"]]
        failed = {(r["k"], r["method"]) for r in mine if r["error"]}
        if (None, None) in failed:
            return {}  # the file failed as a whole
        have = {(r["k"], r["ell"], r["method"]) for r in mine if not r["error"]}
        todo = {}
        for k in ks:
            if (k, None) in failed:
                continue
            wanted = {
                name: [ell for ell in ells if (k, ell, name) not in have]
                for name in SWEEP_METHODS
                if (k, name) not in failed and (None, name) not in failed
            }
            wanted = {name: missing for name, missing in wanted.items() if missing}
            if wanted:
                todo[k] = wanted
        return todo

    def append(self, row: dict) -> dict:
        row = {field: row.get(field) for field in ROW_FIELDS}
        self._jsonl.write(json.dumps(row) + "\n")
        self._jsonl.flush()
        self._csv.writerow(row)
        self._csv_file.flush()
        self.rows.append(row)
        return row


def _output_folder(out) -> Path:
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"out: {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    return out


# --------------------------------------------------------------------------- summary


def summarise(rows: list[dict], ks, ells, settings: dict) -> dict:
    """Per file: the equilibrium's and NLHF's ``R_{k,ℓ}`` (exact, else the lower bound), the
    NLHF shortfall ``k/(k+1) − R_{k,1}(NLHF)`` and support; per k: the shortfall's spread."""
    files: dict[str, dict] = {}
    for row in rows:
        entry = files.setdefault(
            row["path"],
            {
                "file": row["file"],
                "family": row["family"],
                "title": row["title"],
                "num_voters": row["num_voters"],
                "num_users": row["num_users"],
                "num_responses": row["num_responses"],
                "rates": {},
                "errors": [],
            },
        )
        if row["error"]:
            entry["errors"].append({"k": row["k"], "method": row["method"], "error": row["error"]})
            continue
        value = row["robust_win_rate"] if row["evaluation"] == "exact" else row["robust_lower"]
        rates = entry["rates"].setdefault(row["method"], {})
        rates[f"k={row['k']},ell={row['ell']}"] = value
        if row["method"] == "nlhf":
            entry["nlhf_support"] = row["support_size"]
            if row["ell"] == 1:
                entry.setdefault("nlhf_shortfall", {})[str(row["k"])] = row["exploitability"]
    per_k = {}
    for k in ks:
        values = [
            e["nlhf_shortfall"][str(k)]
            for e in files.values()
            if str(k) in e.get("nlhf_shortfall", {})
        ]
        if values:
            per_k[str(k)] = {
                "files": len(values),
                "median": float(np.median(values)),
                "max": float(np.max(values)),
                "above_1e-3": int(np.sum(np.asarray(values) > 1e-3)),
            }
    return {
        "settings": {**settings, "ks": list(ks), "ells": list(ells)},
        "files": list(files.values()),
        "nlhf_shortfall_by_k": per_k,
        "error_files": sum(bool(e["errors"]) for e in files.values()),
    }


def _write_summary(out: Path, summary: dict, ks, ells, plots: bool) -> list[Path]:
    written = [out / SUMMARY_JSON, out / SUMMARY_MD]
    _atomic_text(out / SUMMARY_JSON, json.dumps(summary, indent=2) + "\n")
    _atomic_text(out / SUMMARY_MD, summary_markdown(summary, ks))
    if plots:
        from .plotting import plot_shortfall_distribution, plot_sweep_win_rates  # noqa: PLC0415

        files = [f for f in summary["files"] if f["rates"]]
        rates = {
            ell: {
                label: [
                    [f["rates"].get(method, {}).get(f"k={k},ell={ell}", math.nan) for k in ks]
                    for f in files
                ]
                for method, label in (("equilibrium", "equilibrium"), ("nlhf", "NLHF"))
            }
            for ell in ells
        }
        plot_sweep_win_rates(
            ks, rates, out / WIN_RATE_PNG, title=f"Robust win rate on {len(files)} files"
        )
        shortfall = {
            label: [
                [
                    k / (k + 1) - f["rates"][method][f"k={k},ell=1"]
                    for f in files
                    if f"k={k},ell=1" in f["rates"].get(method, {})
                ]
                for k in ks
            ]
            for method, label in (
                ("nlhf", "NLHF"),
                ("rlhf", "RLHF"),
                ("equilibrium", "equilibrium"),
            )
        }
        plot_shortfall_distribution(
            ks,
            shortfall,
            out / SHORTFALL_PNG,
            title=f"Shortfall from k/(k+1) on {len(files)} files",
        )
        written += [out / WIN_RATE_PNG, out / SHORTFALL_PNG]
    return written


def summary_markdown(summary: dict, ks) -> str:
    """The summary as markdown: settings, the per-file table, the shortfall by k, errors."""
    settings = summary["settings"]
    lines = [
        "# Sweep summary",
        "",
        f"Solver `{settings['solver']}`, at most {settings['steps']} steps, stopping at "
        f"exploitability {settings['tol']:g}; "
        f"support = entries > {settings['support_threshold']:g}. "
        "R = R_{k,1}, the robust win rate of k samples against any single response "
        "(docs/theory.md §4); shortfall = k/(k+1) − R_{k,1}(NLHF).",
        "",
    ]
    header = ["file", "family", "n", "users", "NLHF support"]
    header += [f"R eq k={k}" for k in ks] + [f"R NLHF k={k}" for k in ks]
    header += [f"short k={k}" for k in ks]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for entry in summary["files"]:
        eq = entry["rates"].get("equilibrium", {})
        nl = entry["rates"].get("nlhf", {})
        short = entry.get("nlhf_shortfall", {})
        cells = [
            entry["file"],
            entry["family"] or "",
            _cell(entry["num_responses"]),
            _cell(entry["num_users"]),
            _cell(entry.get("nlhf_support")),
        ]
        cells += [_cell(eq.get(f"k={k},ell=1")) for k in ks]
        cells += [_cell(nl.get(f"k={k},ell=1")) for k in ks]
        cells += [_cell(short.get(str(k))) for k in ks]
        if entry["errors"] and not entry["rates"]:
            cells = (
                cells[:2]
                + [f"error: {entry['errors'][0]['error'][:120]}"]
                + [""] * (len(cells) - 3)
            )
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    lines += [
        "",
        "NLHF shortfall over files:",
        "",
        "| k | files | median | max | > 1e-3 |",
        "|---|---|---|---|---|",
    ]
    for k, stats in summary["nlhf_shortfall_by_k"].items():
        lines.append(
            f"| {k} | {stats['files']} | {stats['median']:.4f} | {stats['max']:.4f} "
            f"| {stats['above_1e-3']} |"
        )
    errors = [(e["file"], err) for e in summary["files"] for err in e["errors"]]
    if errors:
        lines += ["", "Errors:", ""]
        lines += [
            f"- {file}"
            + "".join(f" ({f}={err[f]})" for f in ("k", "method") if err.get(f) is not None)
            + f": {err['error'][:300]}"
            for file, err in errors
        ]
    return "\n".join(lines) + "\n"


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def _atomic_text(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


# --------------------------------------------------------------------------- validation


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _positive_ints(values, name: str) -> list[int]:
    try:
        values = list(values)
    except TypeError:
        raise ValueError(f"{name} must be a list of positive integers, got {values!r}") from None
    if not values or any(
        isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1 for v in values
    ):
        raise ValueError(f"{name} must be a non-empty list of positive integers, got {values!r}")
    return sorted({int(v) for v in values})
