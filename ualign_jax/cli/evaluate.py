"""``ualign evaluate``: a policy's win rate against the uniform policy and its robust win rate
``R_{k,ℓ}`` for each (k, ℓ) asked (docs/theory.md §2), beside the guarantee ``1 − ℓ/(k+1)``.

The policy is probabilities over responses (sampled k times: ``π^{⊗k}``) or a correlated
k-output law over k-tuples (docs/theory.md §1, ``ua.KOutputPolicy``), whose k is its tuple
length."""

from __future__ import annotations

from .common import (
    MAX_LIST_VALUE,
    Command,
    UsageError,
    format_table,
    load_data,
    load_policy,
    parse_int_list,
)
from .progress import Progress

#: Most (k, ell) pairs one ``evaluate`` run computes (each k compiles its own program).
MAX_EVALUATIONS = 256
#: The k values evaluated when ``--k`` is not given (a policy over responses).
DEFAULT_KS = [1, 2, 4, 8]


def add_arguments(parser) -> None:
    parser.add_argument("data", help="PrefLib file or .npz")
    parser.add_argument(
        "--policy",
        required=True,
        help="policy file: probabilities (.json as solve writes it, .npy, .npz) or a law over "
        'k-tuples (.json {"tuples": [[0, 3], ...], "weights": [...]} or .npz with tuples)',
    )
    parser.add_argument(
        "--k",
        default=None,
        help=f"k values, e.g. 1,2,4 or 1-8; each <= {MAX_LIST_VALUE:,} (default: 1,2,4,8; for "
        "a law over k-tuples, its tuple length, the only k it has)",
    )
    parser.add_argument(
        "--ell",
        default="1",
        help=f"opponent output counts, e.g. 1,2; at most {MAX_EVALUATIONS} (k, ell) pairs "
        "(default: 1)",
    )


def solved_for(path: str) -> dict:
    """The k and method a ``policy.json`` records it was solved for (``{}`` if none)."""
    from ..files import load_policy_record  # noqa: PLC0415

    record = load_policy_record(path)
    return {field: record[field] for field in ("k", "method") if field in record}


def load_k_output(path: str, pop):
    """The law over k-tuples in ``path`` for ``pop`` (``ua.KOutputPolicy``), or ``None`` when
    the file holds probabilities over responses; errors name ``--policy`` and the file."""
    from ..files import holds_k_output, load_k_output_file  # noqa: PLC0415

    try:
        if not holds_k_output(path):
            return None
        return load_k_output_file(path, pop.num_responses, pop.names, dtype=pop.dtype)
    except FileNotFoundError as err:
        raise UsageError(f"--policy {path}: no such file") from err
    except ValueError as err:
        raise UsageError(f"--policy {err}") from err


def run_evaluate(args) -> dict:
    import jax.numpy as jnp  # noqa: PLC0415

    import ualign_jax as ua  # noqa: PLC0415

    ks = parse_int_list(args.k, "--k") if args.k is not None else None
    ells = parse_int_list(args.ell, "--ell")
    pairs = len(ks or DEFAULT_KS) * len(ells)
    if pairs > MAX_EVALUATIONS:
        raise UsageError(
            f"--k and --ell ask for {pairs:,} (k, ell) pairs; at most {MAX_EVALUATIONS} per run"
        )
    pop = load_data(args.data)
    law = load_k_output(args.policy, pop)
    if law is not None:  # a correlated k-output policy: its one k is its tuple length
        ks = ks or [law.num_outputs]
        if ks != [law.num_outputs]:
            raise UsageError(
                f"--k {args.k}: the policy {args.policy} is a law over {law.num_outputs}-tuples, "
                f"so --k must be {law.num_outputs}"
            )
        policy, solved = law, {}
    else:
        policy = jnp.asarray(load_policy(args.policy, pop.num_responses, pop.names), pop.dtype)
        solved = solved_for(args.policy)
    ks = ks or DEFAULT_KS
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
                    "policy_solved_for_this_k": solved.get("k") == k,
                }
            )
            progress.step(f"k={k} ell={ell}")
    progress.close()
    return {
        "data": str(args.data),
        "policy": str(args.policy),
        "policy_kind": "probabilities" if law is None else "k_tuples",
        "num_tuples": None if law is None else law.num_tuples,
        "solved_for": solved or None,
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
    if report.get("policy_kind") == "k_tuples":
        print(
            f"The policy is a law over {report['num_tuples']} tuples of k={report['rows'][0]['k']} "
            "responses, evaluated as it is (not solved here; no row is its own guarantee)."
        )
    elif solved and "k" in solved:
        print(
            f"This policy was solved for k={solved['k']} ({solved.get('method', '?')}); "
            "at other k it carries no guarantee."
        )
    else:
        print("The policy file records no k, so no row is its own guarantee.")


COMMAND = Command(
    "evaluate",
    "win rates and robust win rates of a policy",
    add_arguments,
    run_evaluate,
    print_evaluate,
)
