"""``ualign bench``: run the benchmark suite of a clone (``benchmarks/suite.py``), its output
in a log, and list the JSON and PNG results it wrote."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
from pathlib import Path

from .common import Command, UsageError

PEERS_HINT = 'pip install -e ".[peers]"'


def add_arguments(parser) -> None:
    parser.add_argument("--full", action="store_true", help="the long benchmark (default: quick)")


def find_suite() -> Path | None:
    """``benchmarks/suite.py`` of a clone: beside the package (editable install) or under cwd."""
    package = Path(__file__).resolve().parent.parent  # ualign_jax/
    for root in (package.parent, Path.cwd()):
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


COMMAND = Command(
    "bench",
    "run the benchmark suite (quick unless --full)",
    add_arguments,
    run_bench,
    print_bench,
    failed=lambda report: report["exit_code"] != 0,
)
