"""The ``ualign`` argument parser: one subparser per registered command, one-line errors.

Building the parser imports no JAX: the solver names in a help text are filled in only when
that help is printed (:class:`_HelpFormatter`).
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable

from .common import DEFAULT_TOL, Command, UsageError

#: Options that are counts (integers >= 1), checked as option syntax before any work.
COUNT_OPTIONS = ("k", "k_max", "steps", "checkpoint_every", "eval_every", "judges", "groups")


class _HelpFormatter(argparse.HelpFormatter):
    """Fills ``{methods}`` and ``{default_method}`` in a help text only when it is printed."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "{methods}" in text:
            from ..solver import DEFAULT_METHOD, METHODS  # noqa: PLC0415  (loads JAX)

            text = text.format(methods=", ".join(METHODS), default_method=DEFAULT_METHOD)
        return text


class _Parser(argparse.ArgumentParser):
    """Errors as one :class:`UsageError` line; records its options as ``options``: the
    destination of each (the library's argument name) -> the option that sets it."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _HelpFormatter)
        self.options: dict[str, str] = {}
        super().__init__(*args, **kwargs)

    def add_argument(self, *args, **kwargs):
        action = super().add_argument(*args, **kwargs)
        if action.option_strings:
            self.options[action.dest] = max(action.option_strings, key=len)
        return action

    def error(self, message):  # one line, no usage dump
        raise UsageError(f"{self.prog}: {message} (see --help)")


def add_output_options(parser: argparse.ArgumentParser) -> None:
    """``--quiet`` and ``--json``, which every command takes."""
    parser.add_argument("--quiet", action="store_true", help="no progress, table or file list")
    parser.add_argument("--json", action="store_true", help="print the JSON report on stdout")


def add_solver_options(
    parser: argparse.ArgumentParser, steps_default: str = "2000", zero_tol: bool = True
) -> None:
    """``--method``, ``--steps`` and ``--tol`` of a command that calls ``ua.solve``
    (``zero_tol``: ``--tol 0`` runs every step; otherwise the tolerance must be positive)."""
    parser.add_argument(
        "--method",
        default=None,
        metavar="METHOD",
        help="solver: {methods} (default: {default_method})",
    )
    parser.add_argument(
        "--steps", type=int, default=None, help=f"most solver steps (default: {steps_default})"
    )
    parser.add_argument(
        "--tol",
        type=float,
        default=DEFAULT_TOL,
        help=f"stop once the exploitability is this small"
        f"{'; 0 runs every step' if zero_tol else ', in (0, 1)'} (default: {DEFAULT_TOL:g})",
    )


def build_parser(commands: Iterable[Command]) -> argparse.ArgumentParser:
    """The ``ualign`` parser with a subparser per command, in the order given.

    ``parser.command_options[name]`` maps each option's destination to the option (``"k_max"``
    to ``"--k-max"``), so a library error naming an argument can name the option instead.
    """
    parser = _Parser(
        prog="ualign",
        description="Alignment games: the policy whose k samples serve a whole population.",
        epilog="Bad input exits with code 2 and one line; Ctrl-C exits with code 130.",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    parser.command_options = {}
    for command in commands:
        command_parser = sub.add_parser(command.name, help=command.help)
        command.add_arguments(command_parser)
        add_output_options(command_parser)
        parser.command_options[command.name] = command_parser.options
    return parser


def validate(args: argparse.Namespace) -> None:
    """Option syntax the parser cannot express: counts are >= 1, ``--checkpoint-every`` needs
    ``--checkpoint``. Everything the library checks is left to the library."""
    for option in COUNT_OPTIONS:
        value = getattr(args, option, None)
        if isinstance(value, int) and value < 1:
            raise UsageError(f"--{option.replace('_', '-')} must be >= 1, got {value}")
    if getattr(args, "checkpoint_every", None) is not None and args.checkpoint is None:
        raise UsageError("--checkpoint-every needs --checkpoint FILE")
