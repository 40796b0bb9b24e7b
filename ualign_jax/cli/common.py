"""What the ``ualign`` commands share: the usage error, exit codes, option parsing helpers,
loading data and policies, tables, provenance and the JSON report.

Nothing here imports JAX at module level (``ualign --help`` must answer before JAX loads).
"""

from __future__ import annotations

import argparse
import datetime
import json
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np

#: Exit code of bad input (a one-line message on stderr).
EXIT_USAGE = 2
#: Exit code after Ctrl-C (128 + SIGINT), as shells report it.
EXIT_INTERRUPTED = 130
#: Largest k or ell a list option accepts (a range is expanded in memory).
MAX_LIST_VALUE = 100_000
#: Solves stop once the exploitability is this small (float32 resolves ~1e-7); 0 runs every step.
DEFAULT_TOL = 1e-6


#: What Ctrl-C leaves, said after "interrupted;" (commands that replace output folders whole).
NOTHING_LEFT = "no partial output was left behind"


class UsageError(Exception):
    """Bad input: reported as one line, exit code 2."""


class Command(NamedTuple):
    """One ``ualign`` subcommand; registered by listing it in ``ualign_jax.cli.app.COMMANDS``.

    ``add_arguments(parser)`` declares its options, ``run(args)`` does the work and returns the
    JSON report, ``print_report(report)`` prints it for a person, and ``failed(report)`` says
    whether the run should exit with code 1 (a check or benchmark that did not pass).
    ``check_out(path)`` checks ``--out`` before any work (default: ``output.check_out``, a
    folder replaced whole); ``after_interrupt(args)`` is the line's ending after Ctrl-C.
    """

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], dict]
    print_report: Callable[[dict], None]
    failed: Callable[[dict], bool] = lambda report: False
    check_out: Callable[[str], object] | None = None
    after_interrupt: Callable[[argparse.Namespace], str] = lambda args: NOTHING_LEFT


def why(err: OSError) -> str:
    """The reason an ``OSError`` gives, for a one-line message."""
    return err.strerror or type(err).__name__


def parse_int_list(text: str, option: str, limit: int = MAX_LIST_VALUE) -> list[int]:
    """``"1,2,4"`` or ``"1-16"`` as a sorted list of positive ints, else a UsageError naming
    the option.

    Example:
        >>> parse_int_list("4,1-3", "--k")
        [1, 2, 3, 4]
    """
    ranges = []
    try:
        for part in text.split(","):
            if "-" in part.strip()[1:]:
                lo, hi = (int(v) for v in part.split("-", 1))
            else:
                lo = hi = int(part)
            ranges.append((lo, hi))
    except ValueError:
        raise UsageError(f"{option} must be integers like 4, 1,2,4 or 1-16; got {text!r}") from None
    if min(lo for lo, _ in ranges) < 1:
        raise UsageError(f"{option} must be integers >= 1; got {text!r}")
    if max(hi for _, hi in ranges) > limit:  # checked before a range is expanded
        raise UsageError(f"{option} values must be at most {limit:,}; got {text!r}")
    values = [v for lo, hi in ranges for v in range(lo, hi + 1)]
    if not values:
        raise UsageError(f"{option} must be integers >= 1; got {text!r}")
    return sorted(set(values))


def load_data(path: str, x64: bool = False):
    """A population from ``path`` (PrefLib or .npz), prepared (``ua.prepare``: sorted once for
    every call the command makes). A missing or unreadable file is a one-line UsageError; a
    malformed one is the library's ``ValueError`` naming the file and line."""
    import jax.numpy as jnp  # noqa: PLC0415  (keep `ualign --help` fast)

    import ualign_jax as ua  # noqa: PLC0415

    try:
        return ua.prepare(ua.load_population(path, dtype=jnp.float64 if x64 else None))
    except FileNotFoundError as err:
        raise UsageError(f"{path}: no such file") from err
    except OSError as err:  # a folder, no permission, an I/O error
        raise UsageError(f"{path}: cannot read ({why(err)})") from err


def load_policy(path: str, num_responses: int, names=None):
    """A policy from ``.json``, ``.npy`` or ``.npz`` (``ua.load_policy_file``, which also checks
    the names a ``policy.json`` records against ``names``); errors name ``--policy``."""
    from ..files import load_policy_file  # noqa: PLC0415

    try:
        return load_policy_file(path, num_responses, names=names)
    except FileNotFoundError as err:
        raise UsageError(f"--policy {path}: no such file") from err
    except ValueError as err:
        raise UsageError(f"--policy {err}") from err


def format_table(header: list[str], rows: list[list]) -> str:
    """Right-aligned columns under a rule; floats with 4 decimals.

    Example:
        >>> print(format_table(["k", "rate"], [[1, 0.5]]))
        k    rate
        -  ------
        1  0.5000
    """
    from ..plotting import literal  # noqa: PLC0415  (names may hold lone surrogates)

    cells = [header] + [
        [f"{v:.4f}" if isinstance(v, float) else literal(v) for v in r] for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def provenance() -> dict:
    """Date, package and JAX versions and device of this run (every report holds them)."""
    import jax  # noqa: PLC0415

    import ualign_jax as ua  # noqa: PLC0415

    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "ualign_jax": ua.__version__,
        "jax": jax.__version__,
        "device": str(jax.devices()[0].device_kind),
    }


def jsonable(value):
    """``json.dumps``' fallback: arrays and NumPy scalars as lists and numbers, else ``str``."""
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    try:
        return np.asarray(value).tolist()
    except Exception:  # noqa: BLE001
        return str(value)


def write_json(path: Path, payload) -> None:
    """``payload`` as indented JSON (a report), arrays included."""
    path.write_text(json.dumps(payload, indent=2, default=jsonable) + "\n")


def response_names(pop) -> list[str]:
    """The population's response names, or ``"0", "1", ...`` when it has none."""
    return list(pop.names) if pop.names is not None else [str(i) for i in range(pop.num_responses)]


def by_position(names: list[str], policy) -> list[dict]:
    """A policy as ``[{"name", "probability"}]`` in response order (names may repeat)."""
    return [
        {"name": name, "probability": round(float(p), 6)}
        for name, p in zip(names, np.asarray(policy), strict=True)
    ]


def print_written(report) -> None:
    """Say which files a command wrote, and whether it replaced a previous output folder."""
    folder = Path(report["outputs"][0]).parent
    if report.get("replaced_previous_output"):
        print(f"replaced the previous outputs in {folder}")
    print(f"wrote {len(report['outputs'])} files in {folder}: ", end="")
    print(", ".join(Path(f).name for f in report["outputs"]))


def default_method() -> str:
    """The solver ``--method`` defaults to (``ualign_jax.solver.DEFAULT_METHOD``; loads JAX)."""
    from ..solver import DEFAULT_METHOD  # noqa: PLC0415

    return DEFAULT_METHOD


def solver_options(method, steps, tol) -> dict:
    """``ua.solve`` keywords for ``--method``, ``--steps`` and ``--tol`` (0: run every step)."""
    options = {"tol": None if tol == 0 else tol}
    if method is not None:
        options["method"] = method
    if steps is not None:
        options["steps"] = steps
    return options


def solve_for_each_k(pop, ks, method, steps, tol, progress, **checkpointing):
    """``ua.solve`` the (k+1)-player game for each k; returns the solutions. The library's
    ``ValueError`` (a bad option, a checkpoint from another run) propagates to ``main``."""
    import ualign_jax as ua  # noqa: PLC0415

    results = []
    for k in ks:
        try:
            sol = ua.solve(pop, k, **solver_options(method, steps, tol), **checkpointing)
        except OSError as err:  # the checkpoint could not be read or saved (disk full, removed)
            where = checkpointing.get("checkpoint", err.filename)
            raise UsageError(f"--checkpoint {where}: {why(err)} while solving") from err
        results.append(sol)
        progress.step(f"k={k}")
    progress.close()
    return results
