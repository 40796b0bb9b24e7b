"""``ualign solve``: the (k+1)-player equilibrium of a data file (docs/theory.md §4), with its
mixture, trace and figures; optionally checkpointed and spread over a ``jax.distributed``
cluster."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .common import (
    Command,
    UsageError,
    by_position,
    default_method,
    format_table,
    load_data,
    print_written,
    provenance,
    response_names,
    solve_for_each_k,
    write_json,
)
from .output import publish, track_checkpoint
from .parser import add_solver_options
from .progress import Progress

SOLVE_OUTPUTS = (
    "policy.json",
    "mixture.npz",
    "trace.npz",
    "report.json",
    "policy.png",
    "convergence.png",
)


def add_arguments(parser) -> None:
    parser.add_argument("data", help="PrefLib file (.soc .soi .toc .toi) or .npz")
    parser.add_argument("--k", type=int, required=True, help="responses sampled per prompt")
    parser.add_argument(
        "--out",
        required=True,
        help="output folder: new, empty, or a previous ualign output (replaced as a whole)",
    )
    parser.add_argument(
        "--checkpoint",
        default=None,
        help="save the run's state to this .npz as it goes; if it exists, resume from it "
        "(default: none)",
    )
    parser.add_argument(
        "--checkpoint-every",
        type=int,
        default=None,
        help="steps between checkpoints (default: 1000)",
    )
    parser.add_argument("--x64", action="store_true", help="compute in float64 (default: float32)")
    parser.add_argument(
        "--distributed",
        action="store_true",
        help="join the jax.distributed cluster in the environment (SLURM, Open MPI, TPU pod, "
        "JAX_COORDINATOR_ADDRESS) and split the users over all its devices",
    )
    add_solver_options(parser)


def run_solve(args) -> dict:
    import ualign_jax as ua  # noqa: PLC0415

    from ..files import write_policy_file  # noqa: PLC0415

    if args.distributed:  # before any JAX work: join the cluster (ualign_jax.sharding)
        try:
            ua.initialize_distributed()
        except ValueError as err:
            raise UsageError(f"--distributed: {err}") from err
    pop = load_data(args.data, args.x64)
    if args.distributed:  # every process loaded the file: split the users over all devices
        import jax  # noqa: PLC0415

        pop = ua.shard_users(pop, ua.user_mesh())
        if jax.process_index() != 0:  # process 0 alone writes and prints
            args.out, args.quiet, args.json = None, True, False
    progress = Progress(1, "solving", not (args.quiet or args.json))
    checkpointing = {}
    if args.checkpoint is not None:
        track_checkpoint(args.checkpoint)
        checkpointing = {"checkpoint": args.checkpoint, "checkpoint_every": args.checkpoint_every}
    (sol,) = solve_for_each_k(
        pop, [args.k], args.method, args.steps, args.tol, progress, **checkpointing
    )
    if args.distributed:  # bring the solution's arrays to every process
        from ..sharding import gather  # noqa: PLC0415

        sol = gather(sol)
    policy = np.asarray(sol.policy)
    names = response_names(pop)
    method = args.method or default_method()
    report = {
        "data": str(args.data),
        "k": args.k,
        "method": method,
        "tol": args.tol,
        "num_users": pop.num_users,
        "num_responses": pop.num_responses,
        "robust_win_rate": float(ua.robust_win_rate(pop, sol.policy, args.k)),
        "guarantee": args.k / (args.k + 1),
        "exploitability": float(ua.exploitability(pop, sol.policy, args.k)),
        "outcome": str(sol.outcome_name),
        "steps": int(sol.num_steps),
        "checkpoint": args.checkpoint,
        "policy": by_position(names, policy),
        **provenance(),
    }
    if args.out is None:  # a --distributed process other than 0
        return report
    trace = sol.recorded_trace()
    label = f"{Path(args.data).name}, k={args.k}, {method}"

    def write(folder: Path) -> None:
        write_policy_file(
            folder / "policy.json",
            policy,
            names,
            **{field: report[field] for field in ("k", "method", "data", "exploitability")},
        )
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

    return publish(report, args.out, write, SOLVE_OUTPUTS)


def print_solve(report) -> None:
    print(
        f"k={report['k']} ({report['method']}, {report['steps']} steps, {report['outcome']}): "
        f"robust win rate {report['robust_win_rate']:.4f} (guarantee k/(k+1) = "
        f"{report['guarantee']:.4f}), exploitability {report['exploitability']:.2e}"
    )
    rows = [[e["name"], e["probability"]] for e in report["policy"]]
    print(format_table(["response", "probability"], rows))
    print_written(report)


COMMAND = Command(
    "solve", "solve the (k+1)-player game on a data file", add_arguments, run_solve, print_solve
)
