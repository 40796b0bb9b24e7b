"""Progress of a command's loop on stderr: a ``tqdm`` bar on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys


class Progress:
    """Progress over a loop, on stderr.

    On a terminal: a ``tqdm`` bar. Otherwise (a log file, a pipe): a plain line at every tenth of
    the loop, never a carriage return. Silent when ``enabled`` is false.

    Example:
        >>> bar = Progress(2, "solving", enabled=False)
        >>> bar.step("k=1"); bar.step("k=2"); bar.done
        2
    """

    def __init__(self, total: int, label: str, enabled: bool = True):
        self.total, self.label, self.enabled, self.done = max(int(total), 1), label, enabled, 0
        self._tenths = 0
        self._bar = None
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm  # noqa: PLC0415

            self._bar = tqdm(total=self.total, desc=label, file=sys.stderr, dynamic_ncols=True)

    def step(self, note: str = "") -> None:
        self.done += 1
        if self._bar is not None:
            self._bar.set_postfix_str(note, refresh=False)
            self._bar.update(1)
            if self.done >= self.total:
                self.close()
        elif self.enabled:
            tenths = 10 * self.done // self.total
            if tenths > self._tenths:
                self._tenths = tenths
                print(f"{self.label}: {self.done}/{self.total} {note}".rstrip(), file=sys.stderr)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
