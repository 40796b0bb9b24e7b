"""``main``: parse, check, run a command in a worker thread, print its report; map errors.

A command is registered by adding its module's ``COMMAND`` to :data:`COMMANDS`.
"""

from __future__ import annotations

import json
import os
import re
import sys
import threading

from . import bench, demo, evaluate, reproduce, solve, sweep, train
from .common import EXIT_INTERRUPTED, EXIT_USAGE, NOTHING_LEFT, UsageError, jsonable
from .output import cancelled, check_checkpoint, check_out, start_run
from .parser import build_parser, validate

#: The subcommands, in the order ``ualign --help`` lists them.
COMMANDS = (
    demo.COMMAND,
    solve.COMMAND,
    evaluate.COMMAND,
    train.COMMAND,
    sweep.COMMAND,
    reproduce.COMMAND,
    bench.COMMAND,
)

_UNDERSCORED_NAME = re.compile(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b")


def in_option_terms(message: str, options: dict[str, str]) -> str:
    """A library ``ValueError`` message with the arguments it names put as the options that set
    them: the leading word (the library names the argument first: ``"tol must be ..."``) and any
    underscored name (``group_size``), when the command has such an option.

    Example:
        >>> in_option_terms("k must be at most group_size - 1", {"k": "--k", "group_size": "--g"})
        '--k must be at most --g - 1'
    """
    head, space, rest = message.partition(" ")
    rest = _UNDERSCORED_NAME.sub(lambda m: options.get(m[0], m[0]), rest)
    return options.get(head, head) + space + rest


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


def _interrupted(in_process: bool, what_is_left: str) -> None:
    """Ctrl-C: remove partial files, say so (and ``what_is_left``) in one line, exit 130
    without waiting on JAX.

    From the command line the process ends at once (``os._exit``: the worker may be inside a
    compiled loop). Called in-process (``main(argv)``), it raises ``SystemExit(130)`` instead;
    the abandoned worker then finds the run cancelled and swaps in no outputs (a checkpoint it
    goes on to save is written whole, as any checkpoint).
    """
    with cancelled():
        print(f"ualign: interrupted; {what_is_left}", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        if not in_process:  # still holding the locks: the worker cannot start another write
            os._exit(EXIT_INTERRUPTED)
    raise SystemExit(EXIT_INTERRUPTED)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``ualign`` console script; returns the exit code.

    0 on success; 1 when ``reproduce`` finds a claim that fails or ``bench`` fails; 2 and one
    line on stderr for bad input (the CLI's own checks, and any ``ValueError`` the library
    raises); 130 on Ctrl-C.
    """
    start_run()
    commands = {command.name: command for command in COMMANDS}
    parser = build_parser(COMMANDS)
    args = None
    try:
        try:
            args = parser.parse_args(argv)
            validate(args)
            if getattr(args, "out", None) is not None:
                (commands[args.command].check_out or check_out)(args.out)
            if getattr(args, "checkpoint", None) is not None:
                check_checkpoint(args.checkpoint)
            if getattr(args, "x64", False):
                import jax  # noqa: PLC0415

                jax.config.update("jax_enable_x64", True)
            report = _run_interruptibly(commands[args.command].run, args)
        except UsageError as err:
            print(f"ualign: error: {err}", file=sys.stderr)
            return EXIT_USAGE
        except ValueError as err:  # the library's checks name the argument; say the option
            message = in_option_terms(str(err), parser.command_options[args.command])
            print(f"ualign: error: {message}", file=sys.stderr)
            return EXIT_USAGE
    except KeyboardInterrupt:
        left = NOTHING_LEFT if args is None else commands[args.command].after_interrupt(args)
        _interrupted(argv is not None, left)
    if args.json:
        print(json.dumps(report, indent=2, default=jsonable))
    elif not args.quiet:
        commands[args.command].print_report(report)
    return 1 if commands[args.command].failed(report) else 0
