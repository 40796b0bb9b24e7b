"""``ualign train``: simulated RL from sampled groups and judges (``ua.trainer``,
docs/theory.md §7), refereed exactly against the equilibrium ``ua.solve`` finds."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .common import (
    Command,
    by_position,
    load_data,
    provenance,
    response_names,
    write_json,
)
from .output import publish
from .progress import Progress

TRAIN_OUTPUTS = ("policy.json", "training.json", "report.json", "training.png")
#: What ``ualign train`` records as the method in policy.json and training.json.
TRAIN_METHOD = (
    "self_play_trainer: REINFORCE on sample_rewards, Adam (lr/sqrt(1 + t/1000)), "
    "KL tau=0.1 to the running average, polynomial averaging"
)


def add_arguments(parser) -> None:
    parser.add_argument("data", help="PrefLib file (.soc .soi .toc .toi) or .npz")
    parser.add_argument("--k", type=int, required=True, help="responses sampled per prompt")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--steps", type=int, default=None, help="maximum steps (20000)")
    parser.add_argument(
        "--tol", type=float, default=None, help="stop at this exploitability (0.005)"
    )
    parser.add_argument(
        "--eval-every", type=int, default=10, help="steps between exact checks (default: 10)"
    )
    parser.add_argument("--group-size", type=int, default=16, help="samples G per group (> k)")
    parser.add_argument("--judges", type=int, default=32, help="judges drawn per group")
    parser.add_argument("--groups", type=int, default=32, help="groups per step")
    parser.add_argument(  # named as default_optimizer's argument, so its errors name --lr
        "--lr",
        dest="learning_rate",
        metavar="LR",
        type=float,
        default=0.1,
        help="Adam step size (decays as 1/sqrt t)",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    parser.add_argument("--x64", action="store_true", help="compute in float64")


def run_train(args) -> dict:
    """``ualign train``: simulated RL from sampled groups and judges, refereed exactly."""
    import jax  # noqa: PLC0415

    import ualign_jax as ua  # noqa: PLC0415
    from ualign_jax import trainer  # noqa: PLC0415

    from ..files import write_policy_file  # noqa: PLC0415

    optimizer = trainer.default_optimizer(args.learning_rate)  # checks --lr before any work
    pop = load_data(args.data, args.x64)
    steps = args.steps if args.steps is not None else trainer.DEFAULT_TRAIN_STEPS
    tol = args.tol if args.tol is not None else trainer.DEFAULT_TRAIN_TOL
    eval_every = min(args.eval_every, steps)
    progress = Progress(-(-steps // eval_every), "training", not (args.quiet or args.json))
    run = trainer.train_population(
        jax.random.key(args.seed),
        pop,
        args.k,
        optimizer=optimizer,
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
    equilibrium = float(ua.robust_win_rate(pop, reference.policy, args.k))
    policy = np.asarray(run.policy, dtype=float)
    names = response_names(pop)
    value = args.k / (args.k + 1)
    report = {
        "data": str(args.data),
        "k": args.k,
        "method": TRAIN_METHOD,
        "num_users": pop.num_users,
        "num_responses": pop.num_responses,
        "settings": {
            "steps": steps,
            "eval_every": eval_every,
            "group_size": args.group_size,
            "judges": args.judges,
            "groups": args.groups,
            "lr": args.learning_rate,
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
        "policy": by_position(names, policy),
        **provenance(),
    }

    def write(folder: Path) -> None:
        write_policy_file(
            folder / "policy.json",
            policy,
            names,
            **{field: report[field] for field in ("k", "method", "data", "exploitability")},
        )
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

    return publish(report, args.out, write, TRAIN_OUTPUTS)


def print_train(report) -> None:
    print(
        f"k={report['k']}: exploitability {report['exploitability']:.4f} after "
        f"{report['steps']} steps (robust win rate {report['robust_win_rate']:.4f}; "
        f"solve equilibrium {report['equilibrium_robust_win_rate']:.4f})"
    )
    print("wrote: " + ", ".join(report["outputs"]))


COMMAND = Command(
    "train",
    "simulated RL training from sampled groups and judges",
    add_arguments,
    run_train,
    print_train,
)
