"""``ualign reproduce [CLAIM ...]``: the claims of docs/theory.md §4 (T1–T5) checked numerically,
in float64 (``ualign_jax.reproduce.check_theory``); all of them, or the ones named."""

from __future__ import annotations

import textwrap

from .common import Command, UsageError, provenance
from .progress import Progress


def add_arguments(parser) -> None:
    parser.add_argument(
        "claims",
        nargs="*",
        metavar="CLAIM",
        help="claims to check, e.g. T4 or T2 T5 (default: all, T1-T5)",
    )


def run_reproduce(args) -> dict:
    import jax  # noqa: PLC0415

    from ..reproduce import CLAIMS, check_theory, claim_id  # noqa: PLC0415

    jax.config.update("jax_enable_x64", True)  # exact checks: float64 throughout this process

    named = {name.upper() for name in args.claims}
    count = len(named) if named else len(CLAIMS)
    progress = Progress(count, "checking", not (args.quiet or args.json))
    try:
        rows = check_theory(progress=progress.step, claims=args.claims or None)
    except ValueError as err:  # an unknown claim: the message lists the valid ones
        raise UsageError(f"reproduce: {str(err).removeprefix('claims: ')}") from err
    finally:
        progress.close()
    return {
        "claims": [claim_id(c) for c in CLAIMS if not named or claim_id(c) in named],
        "rows": rows,
        "all_passed": all(r["passed"] for r in rows),
        **provenance(),
    }


def print_reproduce(report, width: int = 100) -> None:
    """One block per claim, the numbers wrapped to ``width`` columns."""
    for row in report["rows"]:
        print(f"{'pass' if row['passed'] else 'FAIL'}  {row['claim']}")
        for line in textwrap.wrap(row["detail"], width - 6):
            print(f"      {line}")
    passed = sum(r["passed"] for r in report["rows"])
    print(f"{passed} of {len(report['rows'])} claims hold")


COMMAND = Command(
    "reproduce",
    "check docs/theory.md §4 (T1-T5) numerically, all or the claims named",
    add_arguments,
    run_reproduce,
    print_reproduce,
    failed=lambda report: not report["all_passed"],
)
