"""``ualign demo``: the main job on the bundled sushi data, beside the NLHF, RLHF and uniform
baselines (robust win rates R_{k,1}, docs/theory.md §2)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .common import (
    Command,
    UsageError,
    default_method,
    format_table,
    print_written,
    provenance,
    response_names,
    solve_for_each_k,
    write_json,
)
from .output import publish
from .parser import add_solver_options
from .progress import Progress

#: Largest ``demo --k-max`` (one compiled solve per k).
MAX_DEMO_K = 64
DEMO_OUTPUTS = ("report.json", "robust_win_rate.png", "policy.png")


def add_arguments(parser) -> None:
    parser.add_argument(
        "--k-max",
        type=int,
        default=16,
        help=f"solve for k = 1..K, K <= {MAX_DEMO_K} (default: 16)",
    )
    parser.add_argument(
        "--out", default="ualign-out/demo", help="output folder (default: ualign-out/demo)"
    )
    parser.add_argument("--x64", action="store_true", help="compute in float64 (default: float32)")
    add_solver_options(parser)


def robust_by_k(pop, policy, ks: list[int]) -> list[float]:
    """``R_{k,1}(policy^{⊗k})`` (``ua.robust_win_rate``) for each k in one call, k traced."""
    import jax  # noqa: PLC0415
    import jax.numpy as jnp  # noqa: PLC0415

    import ualign_jax as ua  # noqa: PLC0415

    policy = jnp.asarray(policy, dtype=pop.dtype)
    rates = jax.vmap(lambda k: ua.robust_win_rate(pop, policy, k))(jnp.asarray(ks, jnp.int32))
    return [float(r) for r in rates]


def run_demo(args) -> dict:
    import jax.numpy as jnp  # noqa: PLC0415

    import ualign_jax as ua  # noqa: PLC0415

    if args.k_max > MAX_DEMO_K:
        raise UsageError(f"--k-max must be at most {MAX_DEMO_K}, got {args.k_max}")
    ks = list(range(1, args.k_max + 1))
    pop = ua.prepare(ua.load_dataset("sushi", dtype=jnp.float64 if args.x64 else None))
    names = response_names(pop)
    progress = Progress(len(ks), "solving", not (args.quiet or args.json))
    sols = solve_for_each_k(pop, ks, args.method, args.steps, args.tol, progress)
    equilibrium = [
        float(ua.robust_win_rate(pop, s.policy, k)) for s, k in zip(sols, ks, strict=True)
    ]
    baselines = {
        "NLHF (maximal lottery)": ua.nlhf(pop),
        "RLHF (Bradley-Terry, beta=1)": ua.rlhf(pop),
        "reference (uniform)": ua.uniform_policy(pop.num_responses, pop.dtype),
    }
    rates = {"ualign (k+1)-player equilibrium": equilibrium}
    rates.update({name: robust_by_k(pop, policy, ks) for name, policy in baselines.items()})
    shown = {
        f"equilibrium k={k}": s.policy for s, k in zip(sols, ks, strict=True) if k in (1, 4, ks[-1])
    }
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

    return publish(report, args.out, write, DEMO_OUTPUTS)


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
    print_written(report)


COMMAND = Command(
    "demo", "the main job on the bundled sushi data", add_arguments, run_demo, print_demo
)
