"""The ``ualign`` command: solve alignment games on preference data, evaluate, reproduce, plot.

Subcommands: ``demo`` (the main job on the bundled sushi data), ``solve``, ``evaluate``,
``train`` (simulated RL from sampled groups, refereed exactly), ``sweep`` (the benchmark sweep
over many data files), ``reproduce`` (docs/theory.md §4 (T1–T5) checked numerically, all or the
claims named) and ``bench``. Bad input exits with code 2 and one line naming the file, line or
option (the library's ``ValueError`` included); output folders are checked before any work,
written into a staging folder beside the real target and swapped in whole; Ctrl-C exits with
code 130 at once, leaving no partial files. ``sweep`` alone adds to its folder in place, row by
row, so that Ctrl-C keeps what it wrote and a rerun resumes. JAX loads only once a command runs,
so ``ualign --help`` is immediate.

Modules: :mod:`.app` (``main``, the command registry), :mod:`.parser`, :mod:`.output` (atomic
output folders, cancellation), :mod:`.progress`, :mod:`.common` (shared helpers and constants)
and one module per command (``demo``, ``solve``, ``evaluate``, ``train``, ``sweep``,
``reproduce``, ``bench``), each with its ``run_<command>``, ``print_<command>`` and
``COMMAND``. A new command is one module with a ``COMMAND`` plus one line in ``app.COMMANDS``.
"""

from .app import main
from .common import EXIT_INTERRUPTED, EXIT_USAGE, UsageError

__all__ = ["EXIT_INTERRUPTED", "EXIT_USAGE", "UsageError", "main"]
