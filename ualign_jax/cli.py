"""The ``ualign`` command: solve alignment games on preference data, evaluate, reproduce, plot.

Subcommands: ``demo`` (the main job on the bundled sushi data), ``solve``, ``evaluate``,
``train`` (simulated RL from sampled groups, refereed exactly), ``reproduce`` (docs/theory.md §4
(T1–T5) checked numerically) and ``bench``. Bad input exits with code 2 and one line naming the
file, line or option; output folders are checked before any work, written
into a staging folder beside the real target and swapped in whole (:func:`write_outputs`);
Ctrl-C exits with code 130 at once, leaving no partial files. JAX loads only once a command
runs, so ``ualign --help`` is immediate. Helpers meant for reuse by further subcommands:
:func:`check_out`, :func:`atomic_output`/:func:`write_outputs`, :func:`load_data`,
:class:`Progress`, :func:`provenance`.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading
from pathlib import Path

import numpy as np

__all__ = ["main"]

EXIT_USAGE = 2
#: Exit code after Ctrl-C (128 + SIGINT), as shells report it.
EXIT_INTERRUPTED = 130
#: Largest k or ell a list option accepts (a range is expanded in memory).
MAX_LIST_VALUE = 100_000
#: Most (k, ell) pairs one ``evaluate`` run computes (each k compiles its own program).
MAX_EVALUATIONS = 256
#: Largest ``demo --k-max`` (one compiled solve per k).
MAX_DEMO_K = 64
#: Solves stop once the exploitability is this small (float32 resolves ~1e-7); 0 runs every step.
DEFAULT_TOL = 1e-6


class UsageError(Exception):
    """Bad input: reported as one line, exit code 2."""


class _HelpFormatter(argparse.HelpFormatter):
    """Fills ``{methods}`` and ``{default_method}`` in a help text only when it is printed."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "{methods}" in text:
            from .solve import DEFAULT_METHOD, METHODS  # noqa: PLC0415  (loads JAX)

            text = text.format(methods=", ".join(METHODS), default_method=DEFAULT_METHOD)
        return text


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message):  # one line, no usage dump
        raise UsageError(f"{self.prog}: {message} (see --help)")


# --------------------------------------------------------------------------- small helpers


class Progress:
    """Progress over a loop, on stderr.

    On a terminal: a ``tqdm`` bar. Otherwise (a log file, a pipe): a plain line at every tenth of
    the loop, never a carriage return. Silent when ``enabled`` is false.

    Example:
        >>> bar = Progress(2, "solving", enabled=False)
        >>> bar.step("k=1"); bar.step("k=2"); bar.done
        2
    """

    def __init__(self, total: int, label: str, enabled: bool = True):
        self.total, self.label, self.enabled, self.done = max(int(total), 1), label, enabled, 0
        self._tenths = 0
        self._bar = None
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm  # noqa: PLC0415

            self._bar = tqdm(total=self.total, desc=label, file=sys.stderr, dynamic_ncols=True)

    def step(self, note: str = "") -> None:
        self.done += 1
        if self._bar is not None:
            self._bar.set_postfix_str(note, refresh=False)
            self._bar.update(1)
            if self.done >= self.total:
                self.close()
        elif self.enabled:
            tenths = 10 * self.done // self.total
            if tenths > self._tenths:
                self._tenths = tenths
                print(f"{self.label}: {self.done}/{self.total} {note}".rstrip(), file=sys.stderr)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def parse_int_list(text: str, option: str, limit: int = MAX_LIST_VALUE) -> list[int]:
    """``"1,2,4"`` or ``"1-16"`` as a list of positive ints, else a UsageError naming the option."""
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


# --------------------------------------------------------------------------- output folders
#
# An output set is written into a hidden staging folder created beside the real target (the
# target's own folder, after following symlinks, so the final rename never crosses filesystems),
# then swapped in as one directory. An existing --out is replaced only if it is a previous ualign
# output (a folder of plain files holding a report.json that ualign wrote); anything else is
# refused before the work starts, so no user file is ever deleted.

#: Folders being staged and checkpoint files being written (removed on Ctrl-C).
_STAGING: set[Path] = set()
_CHECKPOINTS: set[Path] = set()
#: Held while an output folder is swapped in; Ctrl-C waits for it (never a half swap).
_SWAP_LOCK = threading.Lock()
#: Set on Ctrl-C: a worker still running must not swap its outputs in afterwards.
_CANCELLED = threading.Event()


def _why(err: OSError) -> str:
    return err.strerror or type(err).__name__


def _existing_ancestor(path: Path) -> Path:
    for folder in [path, *path.parents]:
        if folder.exists():
            return folder
    return Path(path.anchor or ".")


def _probe_writable(folder: Path, option: str, path: Path) -> None:
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".ualign-probe-", dir=folder))
    except OSError as err:
        raise UsageError(f"{option} {path}: cannot write in {folder} ({_why(err)})") from err


def _is_previous_output(folder: Path) -> bool:
    report = folder / "report.json"
    if report.is_symlink() or not report.is_file():
        return False
    try:
        payload = json.loads(report.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(payload, dict) and "ualign_jax" in payload


def check_out(out, option: str = "--out") -> Path:
    """``out`` as a folder ualign may write or replace; checked before any work.

    Refuses (UsageError) a dangling symlink, a path under a file, a folder that ualign cannot
    write in, and an existing non-empty folder that is not a previous ualign output.
    """
    out = Path(out)
    if out.is_symlink() and not out.exists():
        raise UsageError(f"{option} {out}: a symlink to {os.readlink(out)}, which does not exist")
    target = Path(os.path.realpath(out))
    if target.exists():
        if not target.is_dir():
            raise UsageError(f"{option} {out}: exists and is not a folder")
        entries = sorted(p.name for p in target.iterdir())
        if entries and not _is_previous_output(target):
            raise UsageError(
                f"{option} {out}: folder is not empty and is not a previous ualign output "
                f"(holds {', '.join(entries[:3])}{', ...' if len(entries) > 3 else ''}); "
                "choose a new or empty folder"
            )
        odd = [p.name for p in target.iterdir() if p.is_symlink() or not p.is_file()]
        if odd:
            raise UsageError(
                f"{option} {out}: holds {odd[0]!r}, which is not a plain file; "
                "ualign replaces whole output folders, so move it away or choose another folder"
            )
    ancestor = _existing_ancestor(target.parent)
    if not ancestor.is_dir():
        raise UsageError(f"{option} {out}: {ancestor} exists and is not a folder")
    _probe_writable(ancestor, option, out)
    return out


def check_checkpoint(path) -> Path:
    """``--checkpoint`` as a file that can be read (if present) and written; checked up front."""
    path = Path(path)
    if path.is_symlink() and not path.exists():
        raise UsageError(f"--checkpoint {path}: a symlink to {os.readlink(path)}, which is missing")
    target = Path(os.path.realpath(path))
    if target.exists() and not target.is_file():
        raise UsageError(f"--checkpoint {path}: exists and is not a file")
    ancestor = _existing_ancestor(target.parent)
    if not ancestor.is_dir():
        raise UsageError(f"--checkpoint {path}: {ancestor} exists and is not a folder")
    _probe_writable(ancestor, "--checkpoint", path)
    return path


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes  # noqa: PLC0415

        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    return False  # EINVAL/ENOSYS (filesystem without exchange): fall back to two renames


def _swap_in(staging: Path, target: Path) -> None:
    """Make ``staging`` the folder ``target`` (replacing a previous one) in one step."""
    with _SWAP_LOCK:
        if _CANCELLED.is_set():
            raise KeyboardInterrupt
        if not target.exists():
            os.rename(staging, target)
            return
        if _exchange(staging, target):  # staging now holds the old outputs
            shutil.rmtree(staging, ignore_errors=True)
            return
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}-old-", dir=target.parent))
        _STAGING.add(old)
        os.rename(target, old)
        try:
            os.rename(staging, target)
        except OSError:
            os.rename(old, target)
            raise
        shutil.rmtree(old, ignore_errors=True)
        _STAGING.discard(old)


class OutputError(UsageError):
    """Writing the outputs failed; ``kept`` is where the finished results are, if anywhere."""

    def __init__(self, message: str, kept: Path | None = None):
        super().__init__(message)
        self.kept = kept


@contextlib.contextmanager
def atomic_output(out):
    """Yield a staging folder; when the block ends, swap it in as ``out`` (all files or none).

    The staging folder lies beside the real target (so the swap never crosses filesystems). A
    failure while writing raises :class:`OutputError`; one while swapping keeps the finished
    staging folder and names it. Write a ``report.json`` holding ``provenance()`` so that a later
    run may replace the folder.
    """
    out = check_out(out)
    target = Path(os.path.realpath(out))
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    except OSError as err:
        raise UsageError(f"--out {out}: cannot write in {target.parent} ({_why(err)})") from err
    _STAGING.add(staging)
    kept = False
    try:
        try:
            yield staging
        except OSError as err:
            raise OutputError(f"--out {out}: writing the results failed ({_why(err)})") from err
        try:
            _swap_in(staging, target)
        except OSError as err:
            kept = True
            raise OutputError(
                f"--out {out}: could not move the results into place ({_why(err)}); "
                f"they are in {staging}",
                kept=staging,
            ) from err
    finally:
        _STAGING.discard(staging)
        if not kept:
            shutil.rmtree(staging, ignore_errors=True)


def write_outputs(out, write) -> None:
    """``write(folder)`` into a staging folder swapped in as ``out`` (see :func:`atomic_output`).

    If writing fails (a full or read-only disk), the results are written again into a new folder
    in the system's temporary directory and the one-line error says where.
    """
    try:
        with atomic_output(out) as staging:
            write(staging)
    except OutputError as err:
        if err.kept is not None:
            raise
        try:
            fallback = Path(tempfile.mkdtemp(prefix="ualign-results-"))
            write(fallback)
        except OSError as again:
            raise UsageError(f"{err}; keeping them elsewhere failed too ({_why(again)})") from err
        raise UsageError(f"{err}; the finished results are in {fallback}") from err


def _remove_partial_files() -> None:
    """Delete staging folders and checkpoint temporaries (after Ctrl-C)."""
    for folder in list(_STAGING):
        shutil.rmtree(folder, ignore_errors=True)
    for checkpoint in list(_CHECKPOINTS):
        for temporary in checkpoint.parent.glob(f".{checkpoint.name}-*"):
            with contextlib.suppress(OSError):
                temporary.unlink()


def write_json(path: Path, payload) -> None:
    path.write_text(json.dumps(payload, indent=2, default=_jsonable) + "\n")


def write_policy(path: Path, policy, names: list[str], report: dict) -> None:
    """``policy.json``: probabilities by position, the names, and the k, method, data and
    exploitability of the run (``report``) that made it; ``evaluate`` reads them back."""
    fields = ("k", "method", "data", "exploitability")
    write_json(
        path,
        {"policy": np.asarray(policy).tolist(), "names": names} | {f: report[f] for f in fields},
    )


def _jsonable(value):
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    try:
        return np.asarray(value).tolist()
    except Exception:  # noqa: BLE001
        return str(value)


def load_data(path: str, x64: bool = False):
    """A population from ``path`` (PrefLib or .npz), prepared (``ua.prepare``: sorted once for
    every call the command makes); problems become one-line UsageErrors."""
    import jax.numpy as jnp  # noqa: PLC0415  (keep `ualign --help` fast)

    import ualign_jax as ua  # noqa: PLC0415

    try:
        return ua.prepare(ua.load_population(path, dtype=jnp.float64 if x64 else None))
    except FileNotFoundError as err:
        raise UsageError(f"{path}: no such file") from err
    except ValueError as err:
        raise UsageError(str(err)) from err
    except OSError as err:  # a folder, no permission, an I/O error
        raise UsageError(f"{path}: cannot read ({_why(err)})") from err


def load_policy(path: str, num_responses: int):
    """A policy from ``.json``, ``.npy`` or ``.npz`` (see ``load_policy_file``); one-line errors."""
    from .data import load_policy_file  # noqa: PLC0415

    try:
        return load_policy_file(path, num_responses)
    except FileNotFoundError as err:
        raise UsageError(f"--policy {path}: no such file") from err
    except ValueError as err:
        raise UsageError(f"--policy {err}") from err


def format_table(header: list[str], rows: list[list]) -> str:
    from .plotting import literal  # noqa: PLC0415  (names may hold lone surrogates)

    cells = [header] + [
        [f"{v:.4f}" if isinstance(v, float) else literal(v) for v in r] for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def provenance() -> dict:
    import jax  # noqa: PLC0415

    import ualign_jax as ua  # noqa: PLC0415

    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "ualign_jax": ua.__version__,
        "jax": jax.__version__,
        "device": str(jax.devices()[0].device_kind),
    }


# --------------------------------------------------------------------------- the work


def robust_by_k(pop, policy, ks: list[int]) -> list[float]:
    """``R_{k,1}(policy^{⊗k})`` for each k in one compiled call (k is traced)."""
    import jax  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415

    import ualign_jax as ua  # noqa: PLC0415

    policy = jnp.asarray(policy, dtype=pop.dtype)
    rates = jax.vmap(lambda k: 1.0 - jnp.max(ua.response_payoffs(pop, policy, k)))(
        jnp.asarray(ks, dtype=jnp.int32)
    )
    return [float(r) for r in rates]


def solve_for_each_k(pop, ks, method, steps, tol, progress, **checkpointing):
    """Solve the (k+1)-player game for each k; returns policies and diagnostics per k."""
    import ualign_jax as ua  # noqa: PLC0415

    results = []
    for k in ks:
        try:
            sol = ua.solve(pop, k, **_solver_options(method, steps, tol), **checkpointing)
        except ValueError as err:  # e.g. a checkpoint from another run
            raise UsageError(str(err)) from err
        except OSError as err:  # the checkpoint could not be read or saved (disk full, removed)
            where = checkpointing.get("checkpoint", err.filename)
            raise UsageError(f"--checkpoint {where}: {_why(err)} while solving") from err
        results.append(sol)
        progress.step(f"k={k}")
    progress.close()
    return results


def _solver_options(method, steps, tol) -> dict:
    options = {"tol": tol if tol > 0 else None}  # --tol 0: run every step
    if method is not None:
        options["method"] = method
    if steps is not None:
        options["steps"] = steps
    return options


def default_method() -> str:
    from .solve import DEFAULT_METHOD  # noqa: PLC0415

    return DEFAULT_METHOD


def _names(pop) -> list[str]:
    return list(pop.names) if pop.names is not None else [str(i) for i in range(pop.num_responses)]


def _by_position(names: list[str], policy) -> list[dict]:
    """A policy as ``[{"name", "probability"}]`` in response order (names may repeat)."""
    return [
        {"name": name, "probability": round(float(p), 6)}
        for name, p in zip(names, np.asarray(policy), strict=True)
    ]


def _replaces(out) -> bool:
    target = Path(os.path.realpath(out))
    return target.is_dir() and any(target.iterdir())


def run_demo(args) -> dict:
    import jax.numpy as jnp  # noqa: PLC0415

    import ualign_jax as ua  # noqa: PLC0415

    ks = list(range(1, args.k_max + 1))
    pop = ua.prepare(ua.load_dataset("sushi", dtype=jnp.float64 if args.x64 else None))
    names = _names(pop)
    progress = Progress(len(ks), "solving", not (args.quiet or args.json))
    sols = solve_for_each_k(pop, ks, args.method, args.steps, args.tol, progress)
    equilibrium = [
        1.0 - float(jnp.max(ua.response_payoffs(pop, s.policy, k)))
        for s, k in zip(sols, ks, strict=True)
    ]
    baselines = {
        "NLHF (maximal lottery)": ua.nlhf(pop),
        "RLHF (Bradley-Terry, beta=1)": ua.rlhf(pop),
        "reference (uniform)": ua.uniform_policy(pop.num_responses, pop.dtype),
    }
    rates = {"ualign (k+1)-player equilibrium": equilibrium}
    rates.update({name: robust_by_k(pop, policy, ks) for name, policy in baselines.items()})
    shown = {f"equilibrium k={k}": s.policy for s, k in zip(sols, ks, strict=True)}
    shown = {label: p for label, p in shown.items() if int(label[14:]) in (1, 4, ks[-1])}
    report = {
        "data": "sushi (PrefLib 00014-00000001, 5000 voters, 10 sushi)",
        "num_users": pop.num_users,
        "num_responses": pop.num_responses,
        "method": args.method or default_method(),
        "tol": args.tol,
        "k": ks,
        "guarantee_k_over_k_plus_1": [k / (k + 1) for k in ks],
        "robust_win_rate": rates,
        "exploitability": [
            float(ua.exploitability(pop, s.policy, k)) for s, k in zip(sols, ks, strict=True)
        ],
        "names": names,
        "policies": {
            label: [float(v) for v in np.asarray(p)] for label, p in {**shown, **baselines}.items()
        },
        **provenance(),
    }
    pick = 4 if 4 in ks else ks[-1]

    def write(folder: Path) -> None:
        write_json(folder / "report.json", report)
        ua.plotting.plot_robust_win_rates(
            ks,
            rates,
            folder / "robust_win_rate.png",
            title="Sushi (5000 users): robust win rate of k samples",
        )
        ua.plotting.plot_policy(
            sols[ks.index(pick)].policy,
            names,
            folder / "policy.png",
            title=f"Sushi: equilibrium policy for k={pick} ({report['method']})",
        )

    report["replaced_previous_output"] = _replaces(args.out)
    write_outputs(args.out, write)
    report["outputs"] = [
        str(Path(args.out) / f) for f in ("report.json", "robust_win_rate.png", "policy.png")
    ]
    return report


def print_demo(report) -> None:
    names = list(report["robust_win_rate"])
    short = ["equilibrium", "NLHF", "RLHF", "reference"]
    rows = []
    for i, k in enumerate(report["k"]):
        rows.append(
            [
                k,
                *[report["robust_win_rate"][n][i] for n in names],
                report["guarantee_k_over_k_plus_1"][i],
            ]
        )
    print("Robust win rate against any single response, sushi data (5000 users, 10 sushi):")
    print(format_table(["k", *short, "k/(k+1)"], rows))
    _print_written(report)


def _print_written(report) -> None:
    folder = Path(report["outputs"][0]).parent
    if report.get("replaced_previous_output"):
        print(f"replaced the previous outputs in {folder}")
    print(f"wrote {len(report['outputs'])} files in {folder}: ", end="")
    print(", ".join(Path(f).name for f in report["outputs"]))


SOLVE_OUTPUTS = (
    "policy.json",
    "mixture.npz",
    "trace.npz",
    "report.json",
    "policy.png",
    "convergence.png",
)


def run_solve(args) -> dict:
    import ualign_jax as ua  # noqa: PLC0415

    if args.distributed:  # before any JAX work: join the cluster (ualign_jax.sharding)
        try:
            ua.initialize_distributed()
        except ValueError as err:
            raise UsageError(str(err)) from err
    pop = load_data(args.data, args.x64)
    if pop.batch_shape:
        raise UsageError(f"{args.data}: one prompt expected")
    if args.distributed:  # every process loaded the file: split the users over all devices
        import jax  # noqa: PLC0415

        pop = ua.shard_users(pop, ua.user_mesh())
        if jax.process_index() != 0:  # process 0 alone writes and prints
            args.out, args.quiet, args.json = None, True, False
    progress = Progress(1, "solving", not (args.quiet or args.json))
    checkpointing = {}
    if args.checkpoint is not None:
        _CHECKPOINTS.add(Path(os.path.realpath(args.checkpoint)))
        checkpointing = {"checkpoint": args.checkpoint, "checkpoint_every": args.checkpoint_every}
    (sol,) = solve_for_each_k(
        pop, [args.k], args.method, args.steps, args.tol, progress, **checkpointing
    )
    if args.distributed:  # bring the solution's arrays to every process
        from ualign_jax.sharding import gather  # noqa: PLC0415

        sol = gather(sol)
    policy = np.asarray(sol.policy)
    names = _names(pop)
    method = args.method or default_method()
    steps_taken = int(sol.num_steps)
    report = {
        "data": str(args.data),
        "k": args.k,
        "method": method,
        "tol": args.tol,
        "num_users": pop.num_users,
        "num_responses": pop.num_responses,
        "robust_win_rate": 1.0 - float(np.max(ua.response_payoffs(pop, sol.policy, args.k))),
        "guarantee": args.k / (args.k + 1),
        "exploitability": float(ua.exploitability(pop, sol.policy, args.k)),
        "outcome": str(sol.outcome_name),
        "steps": steps_taken,
        "checkpoint": args.checkpoint,
        "policy": _by_position(names, policy),
        **provenance(),
    }
    if args.out is None:  # a --distributed process other than 0
        return report
    trace = sol.recorded_trace()
    label = f"{Path(args.data).name}, k={args.k}, {method}"

    def write(folder: Path) -> None:
        write_policy(folder / "policy.json", policy, names, report)
        np.savez(
            folder / "mixture.npz",
            policies=np.asarray(sol.mixture.policies),
            weights=np.asarray(sol.mixture.component_weights),
        )
        np.savez(folder / "trace.npz", **trace)
        write_json(folder / "report.json", report)
        ua.plotting.plot_policy(
            policy, names, folder / "policy.png", title=f"Equilibrium policy ({label})"
        )
        ua.plotting.plot_convergence(
            trace,
            method,
            pop.num_responses,
            folder / "convergence.png",
            title=label,
            horizon=args.steps or 2000,
        )

    report["replaced_previous_output"] = _replaces(args.out)
    write_outputs(args.out, write)
    report["outputs"] = [str(Path(args.out) / f) for f in SOLVE_OUTPUTS]
    return report


def _policy_metadata(path: str, pop) -> dict:
    """The k, method and names a ``policy.json`` records; names must match the data's."""
    file = Path(path)
    if file.suffix != ".json":
        return {}
    try:
        payload = json.loads(file.read_text())
    except (OSError, ValueError, RecursionError):
        return {}  # load_policy has reported it already
    if not isinstance(payload, dict):
        return {}
    names = payload.get("names")
    if names is not None and pop.names is not None:
        mine = [str(n) for n in names] if isinstance(names, list) else [repr(names)]
        theirs = list(pop.names)
        if mine != theirs:
            i = next(
                (i for i, (a, b) in enumerate(zip(mine, theirs, strict=False)) if a != b),
                min(len(mine), len(theirs)),
            )
            ours = mine[i] if i < len(mine) else None
            data = theirs[i] if i < len(theirs) else None
            raise UsageError(
                f"--policy {path}: its names do not match the data's "
                f"(response {i}: {ours!r} in the policy, {data!r} in the data)"
            )
    meta = {}
    k = payload.get("k")
    if isinstance(k, int) and not isinstance(k, bool) and k >= 1:
        meta["k"] = k
    if isinstance(payload.get("method"), str):
        meta["method"] = payload["method"]
    return meta


def run_evaluate(args) -> dict:
    import jax.numpy as jnp  # noqa: PLC0415

    import ualign_jax as ua  # noqa: PLC0415

    ks = parse_int_list(args.k, "--k")
    ells = parse_int_list(args.ell, "--ell")
    if len(ks) * len(ells) > MAX_EVALUATIONS:
        raise UsageError(
            f"--k and --ell ask for {len(ks) * len(ells):,} (k, ell) pairs; "
            f"at most {MAX_EVALUATIONS} per run"
        )
    pop = load_data(args.data)
    policy = jnp.asarray(load_policy(args.policy, pop.num_responses), pop.dtype)
    solved_for = _policy_metadata(args.policy, pop)
    reference = ua.uniform_policy(pop.num_responses, pop.dtype)
    progress = Progress(len(ks) * len(ells), "evaluating", not (args.quiet or args.json))
    rows = []
    for k in ks:
        for ell in ells:
            try:
                robust = float(ua.robust_win_rate(pop, policy, k, ell))
            except ValueError as err:
                raise UsageError(f"--ell {ell}: {err}") from err
            versus_reference = float(ua.win_rate(pop, policy, k, reference, ell))
            rows.append(
                {
                    "k": k,
                    "ell": ell,
                    "win_rate_vs_uniform": versus_reference,
                    "robust_win_rate": robust,
                    "equilibrium_guarantee": 1 - ell / (k + 1),
                    "policy_solved_for_this_k": solved_for.get("k") == k,
                }
            )
            progress.step(f"k={k} ell={ell}")
    progress.close()
    return {
        "data": str(args.data),
        "policy": str(args.policy),
        "solved_for": solved_for or None,
        "rows": rows,
    }


def print_evaluate(report) -> None:
    header = ["k", "ell", "WR vs uniform", "robust WR", "1-ell/(k+1)", "solved for"]
    rows = [
        [r["k"], r["ell"], r["win_rate_vs_uniform"], r["robust_win_rate"]]
        + [r["equilibrium_guarantee"], "this k" if r["policy_solved_for_this_k"] else ""]
        for r in report["rows"]
    ]
    print(format_table(header, rows))
    solved = report["solved_for"]
    print(
        "1-ell/(k+1): what the equilibrium solved for that k guarantees against ell-output "
        "opponents (T4)."
    )
    if solved and "k" in solved:
        print(
            f"This policy was solved for k={solved['k']} ({solved.get('method', '?')}); "
            "at other k it carries no guarantee."
        )
    else:
        print("The policy file records no k, so no row is its own guarantee.")


def run_reproduce(args) -> dict:
    import jax  # noqa: PLC0415

    from .reproduce import check_theory  # noqa: PLC0415

    jax.config.update("jax_enable_x64", True)  # exact checks: float64 throughout this process

    progress = Progress(5, "checking", not (args.quiet or args.json))
    rows = check_theory(progress=progress.step)
    progress.close()
    return {"rows": rows, "all_passed": all(r["passed"] for r in rows), **provenance()}


PEERS_HINT = 'pip install -e ".[peers]"'


def find_suite() -> Path | None:
    """``benchmarks/suite.py`` of a clone: beside the package (editable install) or under cwd."""
    for root in (Path(__file__).resolve().parent.parent, Path.cwd()):
        suite = root / "benchmarks" / "suite.py"
        if suite.is_file():
            return suite
    return None


def run_bench(args) -> dict:
    suite = find_suite()
    if suite is None:
        raise UsageError(
            "bench: the benchmarks are not installed with the package; clone the repository, "
            "then run `ualign bench` inside the clone (or `python benchmarks/suite.py --quick`)"
        )
    results = suite.parent / "results"
    tag = "" if args.full else "_quick"
    log = results / f"bench{tag}.log"
    results.mkdir(exist_ok=True)
    command = [sys.executable, str(suite)] + ([] if args.full else ["--quick"])
    if not (args.quiet or args.json):
        print(f"running {' '.join(command)}\n  its output goes to {log}", file=sys.stderr)
    started = datetime.datetime.now().timestamp()
    with log.open("w") as handle:
        code = subprocess.call(command, stdout=handle, stderr=subprocess.STDOUT)
    written = sorted(
        str(f)
        for f in results.iterdir()
        if f.suffix in (".json", ".png") and f.stat().st_mtime >= started - 1
    )
    missing = sorted(_missing_peers(results / f"peers{tag}.json"))
    return {
        "exit_code": code,
        "log": str(log),
        "results": written,
        "peers_not_installed": missing,
        "peers_hint": PEERS_HINT if missing else None,
    }


def _missing_peers(path: Path) -> set[str]:
    try:
        games = json.loads(path.read_text())["games"]
        return {
            record["library"]
            for game in games.values()
            for record in game["solvers"].values()
            if record.get("status") == "not installed"
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return set()


def print_bench(report) -> None:
    status = "finished" if report["exit_code"] == 0 else f"FAILED (exit {report['exit_code']})"
    print(f"benchmark suite {status}; full output in {report['log']}")
    if report["peers_not_installed"]:
        print(
            f"peers not installed ({', '.join(report['peers_not_installed'])}): "
            f"{report['peers_hint']} adds them"
        )
    print(f"wrote {len(report['results'])} files:")
    for path in report["results"]:
        print(f"  {path}")


# --------------------------------------------------------------------------- argument parsing


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ualign",
        description="Alignment games: the policy whose k samples serve a whole population.",
        epilog="Bad input exits with code 2 and one line; Ctrl-C exits with code 130.",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def common(p):
        p.add_argument("--quiet", action="store_true", help="no progress, table or file list")
        p.add_argument("--json", action="store_true", help="print the JSON report on stdout")

    def solver(p, steps_default="2000"):
        p.add_argument(
            "--method",
            default=None,
            metavar="METHOD",
            help="solver: {methods} (default: {default_method})",
        )
        p.add_argument(
            "--steps", type=int, default=None, help=f"most solver steps (default: {steps_default})"
        )
        p.add_argument(
            "--tol",
            type=float,
            default=DEFAULT_TOL,
            help=f"stop once the exploitability is this small; 0 runs every step "
            f"(default: {DEFAULT_TOL:g})",
        )

    demo = sub.add_parser("demo", help="the main job on the bundled sushi data")
    demo.add_argument(
        "--k-max",
        type=int,
        default=16,
        help=f"solve for k = 1..K, K <= {MAX_DEMO_K} (default: 16)",
    )
    demo.add_argument(
        "--out", default="ualign-out/demo", help="output folder (default: ualign-out/demo)"
    )
    demo.add_argument("--x64", action="store_true", help="compute in float64 (default: float32)")
    solver(demo)
    common(demo)

    solve = sub.add_parser("solve", help="solve the (k+1)-player game on a data file")
    solve.add_argument("data", help="PrefLib file (.soc .soi .toc .toi) or .npz")
    solve.add_argument("--k", type=int, required=True, help="responses sampled per prompt")
    solve.add_argument(
        "--out",
        required=True,
        help="output folder: new, empty, or a previous ualign output (replaced as a whole)",
    )
    solve.add_argument(
        "--checkpoint",
        default=None,
        help="save the run's state to this .npz as it goes; if it exists, resume from it "
        "(default: none)",
    )
    solve.add_argument(
        "--checkpoint-every",
        type=int,
        default=None,
        help="steps between checkpoints (default: 1000)",
    )
    solve.add_argument("--x64", action="store_true", help="compute in float64 (default: float32)")
    solve.add_argument(
        "--distributed",
        action="store_true",
        help="join the jax.distributed cluster in the environment (SLURM, Open MPI, TPU pod, "
        "JAX_COORDINATOR_ADDRESS) and split the users over all its devices",
    )
    solver(solve)
    common(solve)

    evaluate = sub.add_parser("evaluate", help="win rates and robust win rates of a policy")
    evaluate.add_argument("data", help="PrefLib file or .npz")
    evaluate.add_argument(
        "--policy", required=True, help="policy file (.json as solve writes it, .npy, .npz)"
    )
    evaluate.add_argument(
        "--k",
        default="1,2,4,8",
        help=f"k values, e.g. 1,2,4 or 1-8; each <= {MAX_LIST_VALUE:,} (default: 1,2,4,8)",
    )
    evaluate.add_argument(
        "--ell",
        default="1",
        help=f"opponent output counts, e.g. 1,2; at most {MAX_EVALUATIONS} (k, ell) pairs "
        "(default: 1)",
    )
    common(evaluate)

    train = sub.add_parser("train", help="simulated RL training from sampled groups and judges")
    train.add_argument("data", help="PrefLib file (.soc .soi .toc .toi) or .npz")
    train.add_argument("--k", type=int, required=True, help="responses sampled per prompt")
    train.add_argument("--out", required=True, help="output folder")
    train.add_argument("--steps", type=int, default=None, help="maximum steps (20000)")
    train.add_argument(
        "--tol", type=float, default=None, help="stop at this exploitability (0.005)"
    )
    train.add_argument(
        "--eval-every", type=int, default=10, help="steps between exact checks (default: 10)"
    )
    train.add_argument("--group-size", type=int, default=16, help="samples G per group (> k)")
    train.add_argument("--judges", type=int, default=32, help="judges drawn per group")
    train.add_argument("--groups", type=int, default=32, help="groups per step")
    train.add_argument("--lr", type=float, default=0.1, help="Adam step size (decays as 1/sqrt t)")
    train.add_argument("--seed", type=int, default=0, help="random seed")
    train.add_argument("--x64", action="store_true", help="compute in float64")
    common(train)

    reproduce = sub.add_parser("reproduce", help="check docs/theory.md §4 (T1-T5) numerically")
    common(reproduce)

    bench = sub.add_parser("bench", help="run the benchmark suite (quick unless --full)")
    bench.add_argument("--full", action="store_true", help="the long benchmark (default: quick)")
    common(bench)
    return parser


def _validate(args) -> None:
    for option in ("k", "k_max", "steps", "checkpoint_every"):
        value = getattr(args, option, None)
        if isinstance(value, int) and value < 1:
            raise UsageError(f"--{option.replace('_', '-')} must be >= 1, got {value}")
    if getattr(args, "k_max", None) is not None and args.k_max > MAX_DEMO_K:
        raise UsageError(f"--k-max must be at most {MAX_DEMO_K}, got {args.k_max}")
    tol = getattr(args, "tol", None)
    if tol is not None and not (tol >= 0 and np.isfinite(tol)):
        raise UsageError(f"--tol must be a number >= 0, got {tol}")
    method = getattr(args, "method", None)
    if method is not None:
        from .solve import METHODS  # noqa: PLC0415

        if method not in METHODS:
            raise UsageError(f"--method {method!r} is unknown; choose from {', '.join(METHODS)}")
    if getattr(args, "checkpoint_every", None) is not None and args.checkpoint is None:
        raise UsageError("--checkpoint-every needs --checkpoint FILE")


TRAIN_OUTPUTS = ("policy.json", "training.json", "report.json", "training.png")


def run_train(args) -> dict:
    """``ualign train``: simulated RL from sampled groups and judges, refereed exactly."""
    import jax  # noqa: PLC0415

    import ualign_jax as ua  # noqa: PLC0415
    from ualign_jax import trainer  # noqa: PLC0415

    if args.group_size < 2:
        raise UsageError(f"--group-size must be >= 2, got {args.group_size}")
    if args.k >= args.group_size:
        raise UsageError(
            f"--k must be at most --group-size - 1 = {args.group_size - 1}, got {args.k}"
        )
    for option in ("judges", "groups", "eval_every"):
        if getattr(args, option) < 1:
            raise UsageError(f"--{option.replace('_', '-')} must be >= 1")
    if args.steps is not None and args.steps < 1:
        raise UsageError(f"--steps must be >= 1, got {args.steps}")
    if not (args.lr > 0 and math.isfinite(args.lr)):
        raise UsageError(f"--lr must be a positive number, got {args.lr}")
    if args.tol is not None and not (args.tol >= 0 and math.isfinite(args.tol)):
        raise UsageError(f"--tol must be a number >= 0, got {args.tol}")
    pop = load_data(args.data, args.x64)
    if pop.batch_shape:
        raise UsageError(f"{args.data}: one prompt expected")
    try:
        pop.judge_scores()  # simulated judges need each user's scores
    except ValueError as err:
        raise UsageError(f"{args.data}: ranking or Plackett-Luce users expected ({err})") from err
    steps = args.steps if args.steps is not None else trainer.DEFAULT_TRAIN_STEPS
    tol = args.tol if args.tol is not None else trainer.DEFAULT_TRAIN_TOL
    eval_every = min(args.eval_every, steps)
    progress = Progress(-(-steps // eval_every), "training", not (args.quiet or args.json))
    run = trainer.train_population(
        pop,
        args.k,
        jax.random.key(args.seed),
        optimizer=trainer.default_optimizer(args.lr),
        steps=steps,
        eval_every=eval_every,
        group_size=args.group_size,
        judges=args.judges,
        groups=args.groups,
        tol=tol,
        progress=progress.step,
    )
    progress.close()
    reference = ua.solve(pop, args.k)
    equilibrium = 1.0 - float(np.max(ua.response_payoffs(pop, reference.policy, args.k)))
    policy = np.asarray(run.policy, dtype=float)
    names = _names(pop)
    value = args.k / (args.k + 1)
    report = {
        "data": str(args.data),
        "k": args.k,
        "method": trainer.TRAIN_METHOD,
        "num_users": pop.num_users,
        "num_responses": pop.num_responses,
        "settings": {
            "steps": steps,
            "eval_every": eval_every,
            "group_size": args.group_size,
            "judges": args.judges,
            "groups": args.groups,
            "lr": args.lr,
            "tol": tol,
            "seed": args.seed,
        },
        "steps": int(run.num_steps),
        "reached_tol": bool(run.reached),
        "seconds": round(run.seconds, 3),
        "exploitability": float(run.exploitability[-1]),
        "robust_win_rate": value - float(run.exploitability[-1]),
        "equilibrium_robust_win_rate": equilibrium,
        "guarantee": value,
        "curve": {
            "steps": run.steps.tolist(),
            "exploitability": run.exploitability.tolist(),
            "last_exploitability": run.last_exploitability.tolist(),
        },
        "policy": _by_position(names, policy),
        **provenance(),
    }

    def write(folder: Path) -> None:
        write_policy(folder / "policy.json", policy, names, report)
        write_json(folder / "training.json", report)
        write_json(folder / "report.json", report)
        ua.plotting.plot_training(
            run,
            args.k,
            equilibrium,
            folder / "training.png",
            title=f"{Path(args.data).name}: self-play training from sampled groups, k={args.k}",
            tol=tol,
        )

    report["replaced_previous_output"] = _replaces(args.out)
    write_outputs(args.out, write)
    report["outputs"] = [str(Path(args.out) / f) for f in TRAIN_OUTPUTS]
    return report


RUNNERS = {
    "demo": run_demo,
    "solve": run_solve,
    "evaluate": run_evaluate,
    "reproduce": run_reproduce,
    "bench": run_bench,
    "train": run_train,
}


def _run_interruptibly(runner, args):
    """``runner(args)`` in a worker thread, so that Ctrl-C is answered at once.

    A compiled JAX loop does not return to Python until it ends, so the main thread would see
    Ctrl-C only then; here it waits on the worker instead and raises KeyboardInterrupt promptly.
    """
    outcome = {}

    def work():
        try:
            outcome["report"] = runner(args)
        except BaseException as err:  # noqa: BLE001  (re-raised in the main thread)
            outcome["error"] = err

    worker = threading.Thread(target=work, name="ualign-work", daemon=True)
    worker.start()
    while worker.is_alive():
        worker.join(0.05)
    if "error" in outcome:
        raise outcome["error"]
    return outcome["report"]


def _interrupted(in_process: bool) -> None:
    """Ctrl-C: remove partial files, say so in one line, exit 130 without waiting on JAX.

    From the command line the process ends at once (``os._exit``: the worker may be inside a
    compiled loop). Called in-process (``main(argv)``), it raises ``SystemExit(130)`` instead;
    the abandoned worker then finds the run cancelled and writes nothing.
    """
    _CANCELLED.set()
    acquired = _SWAP_LOCK.acquire(timeout=10)  # never leave a half-swapped output folder
    _remove_partial_files()
    print("ualign: interrupted; no partial output was left behind", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    if acquired:
        _SWAP_LOCK.release()
    if in_process:
        raise SystemExit(EXIT_INTERRUPTED)
    os._exit(EXIT_INTERRUPTED)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``ualign`` console script."""
    _CANCELLED.clear()
    try:
        try:
            args = build_parser().parse_args(argv)
            _validate(args)
            if getattr(args, "out", None) is not None:
                check_out(args.out)
            if getattr(args, "checkpoint", None) is not None:
                check_checkpoint(args.checkpoint)
            if getattr(args, "x64", False):
                import jax  # noqa: PLC0415

                jax.config.update("jax_enable_x64", True)
            report = _run_interruptibly(RUNNERS[args.command], args)
        except UsageError as err:
            print(f"ualign: error: {err}", file=sys.stderr)
            return EXIT_USAGE
    except KeyboardInterrupt:
        _interrupted(in_process=argv is not None)
    if args.json:
        print(json.dumps(report, indent=2, default=_jsonable))
    elif not args.quiet:
        _print(args.command, report)
    if args.command == "reproduce" and not report["all_passed"]:
        return 1
    if args.command == "bench" and report["exit_code"] != 0:
        return 1
    return 0


def _print(command: str, report: dict) -> None:
    if command == "demo":
        print_demo(report)
    elif command == "solve":
        print(
            f"k={report['k']} ({report['method']}, {report['steps']} steps, {report['outcome']}): "
            f"robust win rate {report['robust_win_rate']:.4f} (guarantee k/(k+1) = "
            f"{report['guarantee']:.4f}), exploitability {report['exploitability']:.2e}"
        )
        rows = [[e["name"], e["probability"]] for e in report["policy"]]
        print(format_table(["response", "probability"], rows))
        _print_written(report)
    elif command == "train":
        print(
            f"k={report['k']}: exploitability {report['exploitability']:.4f} after "
            f"{report['steps']} steps (robust win rate {report['robust_win_rate']:.4f}; "
            f"solve equilibrium {report['equilibrium_robust_win_rate']:.4f})"
        )
        print("wrote: " + ", ".join(report["outputs"]))
    elif command == "evaluate":
        print_evaluate(report)
    elif command == "reproduce":
        print_reproduce(report)
    else:
        print_bench(report)


def print_reproduce(report, width: int = 100) -> None:
    """One block per claim, the numbers wrapped to ``width`` columns."""
    for row in report["rows"]:
        print(f"{'pass' if row['passed'] else 'FAIL'}  {row['claim']}")
        for line in textwrap.wrap(row["detail"], width - 6):
            print(f"      {line}")
    passed = sum(r["passed"] for r in report["rows"])
    print(f"{passed} of {len(report['rows'])} claims hold")


if __name__ == "__main__":
    sys.exit(main())
