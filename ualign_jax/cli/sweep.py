"""``ualign sweep DIR_OR_FILES... --k 1,2,4,8 --ell 1,2 --out DIR``: the benchmark sweep of
``ualign_jax.sweep.run_sweep`` (equilibrium, NLHF, RLHF and uniform robust win rates
``R_{k,ℓ}``, docs/theory.md §4–5) over PrefLib files or ``.npz`` populations.

Unlike ``solve`` and ``demo``, the sweep adds to ``--out`` in place: each (file, k) is appended
and flushed as it finishes, and a rerun into the same folder skips the rows already there. So
Ctrl-C keeps every row written (run the same command again to resume), and ``--out`` must be
new, empty, or a folder an earlier sweep wrote (:func:`check_sweep_out`).
"""

from __future__ import annotations

import os
from pathlib import Path

from .common import Command, UsageError, parse_int_list, provenance, why
from .output import check_appendable_out, stop_if_cancelled
from .parser import add_solver_options
from .progress import Progress

#: Errors listed one per line by the printed summary; the rest are counted.
MAX_ERRORS_SHOWN = 5


def add_arguments(parser) -> None:
    parser.add_argument(
        "sources",
        nargs="+",
        metavar="DIR_OR_FILE",
        help="PrefLib files (.soc .soi .toc .toi), .npz populations, or folders searched for them",
    )
    parser.add_argument(
        "--k", default="1,2,4,8", help="k values, e.g. 1,2,4 or 1-8 (default: 1,2,4,8)"
    )
    parser.add_argument(
        "--ell", default="1,2", help="opponent output counts, e.g. 1,2 (default: 1,2)"
    )
    parser.add_argument(
        "--out",
        required=True,
        help="output folder: new, empty, or an earlier sweep's (its rows are kept and skipped)",
    )
    parser.add_argument("--x64", action="store_true", help="compute in float64 (default: float32)")
    parser.add_argument(
        "--retry-errors",
        action="store_true",
        help="recompute the files and (file, k) pairs that have error rows in --out",
    )
    add_solver_options(parser, zero_tol=False)


def check_sweep_out(out) -> Path:
    """``--out`` as a folder the sweep may add to: new, empty or an earlier sweep's (it holds
    ``rows.jsonl``); one-line errors before any work."""
    from ..sweep import ROWS_JSONL  # noqa: PLC0415

    return check_appendable_out(out, ROWS_JSONL)


def sweep_keywords(args) -> dict:
    """``run_sweep`` keywords for the options given (the rest keep ``run_sweep``'s defaults)."""
    keywords = {"tol": args.tol, "retry_errors": args.retry_errors}
    if args.method is not None:
        keywords["method"] = args.method
    if args.steps is not None:
        keywords["steps"] = args.steps
    return keywords


def run_sweep(args) -> dict:
    from .. import sweep  # noqa: PLC0415  (the library's sweep, loads JAX)

    ks = parse_int_list(args.k, "--k")
    ells = parse_int_list(args.ell, "--ell")
    for source in args.sources:
        if not os.path.lexists(source):
            raise UsageError(f"{source}: no such file or folder")
    try:
        files = sweep.find_data_files(args.sources)
    except ValueError as err:  # no data file among the sources
        raise UsageError(str(err).removeprefix("sources: ")) from err
    progress = Progress(len(files) * len(ks), "sweeping", not (args.quiet or args.json))

    def report_progress(event) -> None:
        progress.step(f"{event.file} k={event.k} {event.status}")
        stop_if_cancelled()  # after Ctrl-C an abandoned in-process worker adds nothing more

    try:
        result = sweep.run_sweep(
            args.sources, args.out, ks, ells, progress=report_progress, **sweep_keywords(args)
        )
    except OSError as err:  # --out became unwritable, or the disk is full: rows so far are kept
        raise UsageError(
            f"--out {args.out}: writing failed ({why(err)}); the rows written so far are kept "
            "and a rerun resumes after them"
        ) from err
    except ValueError as err:  # run_sweep names the argument: "out: ..." or "method ..."
        message = str(err)
        if message.startswith("out: "):
            raise UsageError(f"--out {message.removeprefix('out: ')}") from err
        raise
    finally:
        progress.close()
    errors = [r for r in result.rows if r["error"]]
    return {
        "sources": [str(s) for s in args.sources],
        "out": str(args.out),
        "files": len(files),
        "ks": ks,
        "ells": ells,
        "settings": result.summary["settings"],
        "rows": len(result.rows),
        "rows_computed": result.computed,
        "pairs_skipped": result.skipped,
        "error_rows_this_run": result.errors,
        "error_rows": [
            {field: row[field] for field in ("file", "k", "method", "error")} for row in errors
        ],
        "seconds": round(result.seconds, 3),
        "outputs": [str(path) for path in result.outputs],
        **provenance(),
    }


def print_sweep(report) -> None:
    print(
        f"swept {report['files']} files x k in {report['ks']} x ell in {report['ells']} in "
        f"{report['seconds']:.1f} s: {report['rows_computed']} rows computed, "
        f"{report['pairs_skipped']} (file, k) pairs skipped (already in {report['out']}), "
        f"{report['error_rows_this_run']} error rows this run"
    )
    errors = report["error_rows"]
    if errors:
        print(f"{len(errors)} error rows in the folder (each file that failed is one row):")
        for row in errors[:MAX_ERRORS_SHOWN]:
            where = "".join(f" {f}={row[f]}" for f in ("k", "method") if row[f] is not None)
            print(f"  {row['file']}{where}: {row['error'][:200]}")
        if len(errors) > MAX_ERRORS_SHOWN:
            print(f"  ... and {len(errors) - MAX_ERRORS_SHOWN} more (see summary.md)")
    print(f"{report['rows']} rows in {report['out']}; wrote ", end="")
    print(", ".join(Path(f).name for f in report["outputs"]))
    summary = next(f for f in report["outputs"] if f.endswith(".md"))
    print(f"summary: {summary}")


COMMAND = Command(
    "sweep",
    "robust win rates of the equilibrium, NLHF, RLHF and uniform over many data files",
    add_arguments,
    run_sweep,
    print_sweep,
    check_out=check_sweep_out,
    after_interrupt=lambda args: (
        f"the rows written so far are kept in {args.out}; run the same command again to resume"
    ),
)
