"""The ``ualign`` command: solve alignment games on preference data, evaluate, reproduce, plot.

Subcommands: ``demo`` (the main job on the bundled sushi data), ``solve``, ``evaluate``,
``reproduce`` (THEORY T1–T5 checked numerically) and ``bench``. Bad input exits with code 2 and
one line naming the file, line or option; outputs are written to a temporary folder first and
moved into place only when complete.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["main"]

EXIT_USAGE = 2
#: Largest k or ell a list option accepts (a range is expanded in memory).
MAX_LIST_VALUE = 100_000
#: The demo stops each solve once the exploitability is this small (float32 resolves ~1e-7).
DEMO_TOL = 1e-6


class UsageError(Exception):
    """Bad input: reported as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage dump
        raise UsageError(f"{self.prog}: {message} (see --help)")


# --------------------------------------------------------------------------- small helpers


class Progress:
    """A one-line progress bar on stderr (silent when disabled)."""

    def __init__(self, total: int, label: str, enabled: bool):
        self.total, self.label, self.enabled, self.done = total, label, enabled, 0

    def step(self, note: str = ""):
        self.done += 1
        if not self.enabled:
            return
        width = 24
        filled = round(width * self.done / self.total)
        bar = "#" * filled + "." * (width - filled)
        end = "\n" if self.done == self.total else ""
        sys.stderr.write(f"\r{self.label} [{bar}] {self.done}/{self.total} {note:<24}{end}")
        sys.stderr.flush()


def parse_int_list(text: str, option: str) -> list[int]:
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
    if max(hi for _, hi in ranges) > MAX_LIST_VALUE:  # checked before a range is expanded
        raise UsageError(f"{option} values must be at most {MAX_LIST_VALUE:,}; got {text!r}")
    values = [v for lo, hi in ranges for v in range(lo, hi + 1)]
    if not values:
        raise UsageError(f"{option} must be integers >= 1; got {text!r}")
    return sorted(set(values))


def check_out(out) -> Path:
    """``--out`` as a path that is, or can become, a folder (checked before any work)."""
    out = Path(out)
    for folder in [out, *out.parents]:
        if folder.exists():
            if not folder.is_dir():
                raise UsageError(f"--out {out}: {folder} exists and is not a folder")
            break
    return out


@contextlib.contextmanager
def atomic_output(out: Path):
    """Yield a temporary folder beside ``out``; on success move its files into ``out``."""
    out = check_out(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        yield staging
        out.mkdir(exist_ok=True)
        for item in staging.iterdir():
            os.replace(item, out / item.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_json(path: Path, payload) -> None:
    path.write_text(json.dumps(payload, indent=2, default=_jsonable) + "\n")


def _jsonable(value):
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    try:
        return np.asarray(value).tolist()
    except Exception:  # noqa: BLE001
        return str(value)


def load_data(path: str, x64: bool = False):
    """A population from ``path`` (PrefLib or .npz); problems become one-line UsageErrors."""
    import jax.numpy as jnp  # noqa: PLC0415  (keep `ualign --help` fast)

    import ualign_jax as ua  # noqa: PLC0415

    try:
        return ua.load_population(path, dtype=jnp.float64 if x64 else None)
    except FileNotFoundError as err:
        raise UsageError(f"{path}: no such file") from err
    except ValueError as err:
        raise UsageError(str(err)) from err


def load_policy(path: str, num_responses: int):
    """A policy from ``.json`` (a list, or ``{"policy": [...]}``), ``.npy`` or ``.npz``."""
    file = Path(path)
    if not file.is_file():
        raise UsageError(f"--policy {path}: no such file")
    try:
        if file.suffix == ".json":
            payload = json.loads(file.read_text())
            values = payload["policy"] if isinstance(payload, dict) else payload
        elif file.suffix == ".npy":
            values = np.load(file, allow_pickle=False)
        elif file.suffix == ".npz":
            with np.load(file, allow_pickle=False) as archive:
                values = archive["policy"]
        else:
            raise UsageError(f"--policy {path}: expected .json, .npy or .npz")
        raw = np.asarray(values)
        if raw.dtype.kind not in "iuf":
            raise UsageError(f"--policy {path}: must hold real numbers, got {raw.dtype} values")
        policy = raw.astype(float)
    except (KeyError, json.JSONDecodeError, ValueError, TypeError, EOFError, OSError) as err:
        raise UsageError(f"--policy {path}: cannot read a policy ({err})") from err
    if policy.shape != (num_responses,):
        raise UsageError(
            f"--policy {path}: has shape {policy.shape}, the data has {num_responses} responses"
        )
    if not np.all(np.isfinite(policy)) or policy.min() < 0 or abs(policy.sum() - 1) > 1e-6:
        raise UsageError(f"--policy {path}: must be finite, nonnegative and sum to 1")
    return policy


def format_table(header: list[str], rows: list[list]) -> str:
    cells = [header] + [[f"{v:.4f}" if isinstance(v, float) else str(v) for v in r] for r in rows]
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
        results.append(sol)
        progress.step(f"k={k}")
    return results


def _solver_options(method, steps, tol) -> dict:
    options = {}
    if method is not None:
        options["method"] = method
    if steps is not None:
        options["steps"] = steps
    if tol is not None:
        options["tol"] = tol
    return options


def default_method() -> str:
    from .solve import DEFAULT_METHOD  # noqa: PLC0415

    return DEFAULT_METHOD


def run_demo(args) -> dict:
    import jax.numpy as jnp  # noqa: PLC0415

    import ualign_jax as ua  # noqa: PLC0415

    ks = list(range(1, args.k_max + 1))
    pop = ua.load_dataset("sushi", dtype=jnp.float64 if args.x64 else None)
    progress = Progress(len(ks), "solving", not (args.quiet or args.json))
    tol = args.tol if args.tol is not None else DEMO_TOL
    sols = solve_for_each_k(pop, ks, args.method, args.steps, tol, progress)
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
    report = {
        "data": "sushi (PrefLib 00014-00000001, 5000 voters, 10 sushi)",
        "num_users": pop.num_users,
        "num_responses": pop.num_responses,
        "k": ks,
        "guarantee_k_over_k_plus_1": [k / (k + 1) for k in ks],
        "robust_win_rate": rates,
        "exploitability": [
            float(ua.exploitability(pop, s.policy, k)) for s, k in zip(sols, ks, strict=True)
        ],
        "policies": {
            **{
                f"equilibrium k={k}": _named(pop, s.policy)
                for s, k in zip(sols, ks, strict=True)
                if k in (1, 4, ks[-1])
            },
            **{name: _named(pop, p) for name, p in baselines.items()},
        },
        **provenance(),
    }
    with atomic_output(Path(args.out)) as staging:
        write_json(staging / "report.json", report)
        ua.plotting.plot_robust_win_rates(
            ks,
            rates,
            staging / "robust_win_rate.png",
            title="Sushi (5000 users): robust win rate of k samples",
        )
        pick = 4 if 4 in ks else ks[-1]
        ua.plotting.plot_policy(
            sols[ks.index(pick)].policy,
            pop.names,
            staging / "policy.png",
            title=f"Equilibrium policy for k={pick} on sushi",
        )
    report["outputs"] = [
        str(Path(args.out) / f) for f in ("report.json", "robust_win_rate.png", "policy.png")
    ]
    return report


def _named(pop, policy) -> dict:
    names = pop.names or [str(i) for i in range(pop.num_responses)]
    return {name: round(float(p), 6) for name, p in zip(names, np.asarray(policy), strict=True)}


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
    print("wrote: " + ", ".join(report["outputs"]))


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
        checkpointing = {"checkpoint": args.checkpoint, "checkpoint_every": args.checkpoint_every}
    elif args.checkpoint_every is not None:
        raise UsageError("--checkpoint-every needs --checkpoint FILE")
    (sol,) = solve_for_each_k(
        pop, [args.k], args.method, args.steps, args.tol, progress, **checkpointing
    )
    sol = ua.sharding.gather(sol) if args.distributed else sol
    policy = np.asarray(sol.policy)
    report = {
        "data": str(args.data),
        "k": args.k,
        "num_users": pop.num_users,
        "num_responses": pop.num_responses,
        "method": args.method or default_method(),
        "robust_win_rate": 1.0 - float(np.max(ua.response_payoffs(pop, sol.policy, args.k))),
        "guarantee": args.k / (args.k + 1),
        "exploitability": float(ua.exploitability(pop, sol.policy, args.k)),
        "outcome": sol.outcome_name,
        "steps": int(sol.num_steps),
        "checkpoint": args.checkpoint,
        "policy": _named(pop, policy),
        **provenance(),
    }
    if args.out is None:  # a --distributed process other than 0
        return report
    with atomic_output(Path(args.out)) as staging:
        write_json(
            staging / "policy.json", {"policy": policy.tolist(), "names": list(report["policy"])}
        )
        np.savez(
            staging / "mixture.npz",
            policies=np.asarray(sol.mixture.policies),
            weights=np.asarray(sol.mixture.weights),
        )
        trace = {f: np.asarray(v) for f, v in sol.trace._asdict().items()}
        np.savez(staging / "trace.npz", **trace)
        write_json(staging / "report.json", report)
        ua.plotting.plot_policy(
            policy, pop.names, staging / "policy.png", title=f"Equilibrium policy, k={args.k}"
        )
        if "regret" in trace:
            ua.plotting.plot_regret(trace["regret"], pop.num_responses, staging / "regret.png")
    return report


def run_evaluate(args) -> dict:
    import jax.numpy as jnp  # noqa: PLC0415

    import ualign_jax as ua  # noqa: PLC0415

    ks = parse_int_list(args.k, "--k")
    ells = parse_int_list(args.ell, "--ell")
    pop = load_data(args.data)
    policy = jnp.asarray(load_policy(args.policy, pop.num_responses), pop.dtype)
    reference = ua.uniform_policy(pop.num_responses, pop.dtype)
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
                    "win_rate_vs_reference": versus_reference,
                    "robust_win_rate": robust,
                    "one_minus_ell_over_k_plus_1": 1 - ell / (k + 1),
                }
            )
    return {"data": str(args.data), "policy": str(args.policy), "rows": rows}


def run_reproduce(args) -> dict:
    import jax  # noqa: PLC0415

    from .reproduce import check_theory  # noqa: PLC0415

    jax.config.update("jax_enable_x64", True)  # exact checks: float64 throughout this process

    progress = Progress(5, "checking", not (args.quiet or args.json))
    rows = check_theory(progress=progress.step)
    return {"rows": rows, "all_passed": all(r["passed"] for r in rows), **provenance()}


def run_bench(args) -> dict:
    suite = Path(__file__).resolve().parent.parent / "benchmarks" / "suite.py"
    if not suite.is_file():
        raise UsageError(
            "bench: benchmarks/suite.py not found next to the package; run from a clone"
        )
    command = [sys.executable, str(suite)] + ([] if args.full else ["--quick"])
    if not args.quiet:
        print("+ " + " ".join(command), file=sys.stderr)
    # With --json, stdout carries only this command's report; the suite prints to stderr.
    code = subprocess.call(command, stdout=sys.stderr if args.json or args.quiet else None)
    stem = "suite" if args.full else "suite_quick"
    results = suite.parent / "results"
    return {
        "exit_code": code,
        "results": [str(results / f"{stem}.json"), str(results / f"{stem}.png")],
    }


# --------------------------------------------------------------------------- argument parsing


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ualign",
        description="Alignment games: the policy whose k samples serve a whole population.",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def common(p):
        p.add_argument("--quiet", action="store_true", help="no progress bar or table")
        p.add_argument("--json", action="store_true", help="print the JSON report on stdout")

    def solver(p):
        p.add_argument("--method", default=None, help="solver method (default: the library's)")
        p.add_argument("--steps", type=int, default=None, help="maximum solver steps")
        p.add_argument("--tol", type=float, default=None, help="stop at this exploitability")

    demo = sub.add_parser("demo", help="the main job on the bundled sushi data")
    demo.add_argument("--k-max", type=int, default=16, help="solve for k = 1..K (default 16)")
    demo.add_argument("--out", default="ualign-out/demo", help="output folder")
    demo.add_argument("--x64", action="store_true", help="compute in float64")
    solver(demo)
    common(demo)

    solve = sub.add_parser("solve", help="solve the (k+1)-player game on a data file")
    solve.add_argument("data", help="PrefLib file (.soc .soi .toc .toi) or .npz")
    solve.add_argument("--k", type=int, required=True, help="responses sampled per prompt")
    solve.add_argument("--out", required=True, help="output folder")
    solve.add_argument(
        "--checkpoint",
        default=None,
        help="save the run's state to this .npz as it goes; if it exists, resume from it",
    )
    solve.add_argument(
        "--checkpoint-every", type=int, default=None, help="steps between checkpoints (1000)"
    )
    solve.add_argument("--x64", action="store_true", help="compute in float64")
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
    evaluate.add_argument("--policy", required=True, help="policy file (.json, .npy, .npz)")
    evaluate.add_argument("--k", default="1,2,4,8", help="k values, e.g. 1,2,4 or 1-8")
    evaluate.add_argument("--ell", default="1", help="opponent output counts, e.g. 1,2")
    common(evaluate)

    reproduce = sub.add_parser("reproduce", help="check THEORY T1-T5 numerically")
    common(reproduce)

    bench = sub.add_parser("bench", help="run the benchmark suite (quick unless --full)")
    bench.add_argument("--full", action="store_true", help="the long benchmark")
    common(bench)
    return parser


def _validate(args) -> None:
    for option in ("k", "k_max", "steps", "checkpoint_every"):
        value = getattr(args, option, None)
        if isinstance(value, int) and value < 1:
            raise UsageError(f"--{option.replace('_', '-')} must be >= 1, got {value}")
    tol = getattr(args, "tol", None)
    if tol is not None and not (tol > 0 and np.isfinite(tol)):
        raise UsageError(f"--tol must be a positive number, got {tol}")
    method = getattr(args, "method", None)
    if method is not None:
        from .solve import METHODS  # noqa: PLC0415

        if method not in METHODS:
            raise UsageError(f"--method {method!r} is unknown; choose from {', '.join(METHODS)}")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``ualign`` console script."""
    try:
        args = build_parser().parse_args(argv)
        _validate(args)
        if getattr(args, "out", None) is not None:
            check_out(args.out)
        if getattr(args, "x64", False):
            import jax  # noqa: PLC0415

            jax.config.update("jax_enable_x64", True)
        runner = {
            "demo": run_demo,
            "solve": run_solve,
            "evaluate": run_evaluate,
            "reproduce": run_reproduce,
            "bench": run_bench,
        }[args.command]
        report = runner(args)
    except UsageError as err:
        print(f"ualign: error: {err}", file=sys.stderr)
        return EXIT_USAGE
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
            f"k={report['k']}: robust win rate {report['robust_win_rate']:.4f} "
            f"(guarantee k/(k+1) = {report['guarantee']:.4f}), exploitability "
            f"{report['exploitability']:.2e}"
        )
        print(
            format_table(["response", "probability"], [[n, p] for n, p in report["policy"].items()])
        )
    elif command == "evaluate":
        header = ["k", "ell", "WR vs uniform", "robust WR", "1-ell/(k+1)"]
        print(format_table(header, [list(r.values()) for r in report["rows"]]))
    elif command == "reproduce":
        rows = [
            [r["claim"], "pass" if r["passed"] else "FAIL", r["detail"]] for r in report["rows"]
        ]
        print(format_table(["claim", "result", "numbers"], rows))
    else:
        print(json.dumps(report, indent=2))


if __name__ == "__main__":
    sys.exit(main())
