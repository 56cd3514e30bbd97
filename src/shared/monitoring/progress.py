"""Progress for humans: rich bars on a terminal, plain log lines otherwise (cron, CI, pipes).

Everything goes to stderr so `--json` keeps stdout for the RunSummary alone.
"""

from __future__ import annotations

import logging
import sys
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

log = logging.getLogger("evalmon")


class Reporter:
    """No-op base used by library calls (notebooks, tests)."""

    def stage(self, name: str, total: int | None = None) -> None:
        """Start a stage; `total` turns it into a bar."""

    def advance(self, n: int = 1) -> None:
        """Progress within the current stage."""

    def done(self) -> None:
        """Close the current stage."""

    def __enter__(self) -> Reporter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.done()


class LogReporter(Reporter):
    """One line per stage start and end (non-TTY)."""

    def __init__(self) -> None:
        self._name: str | None = None
        self._count = 0

    def stage(self, name: str, total: int | None = None) -> None:
        self.done()
        self._name, self._count = name, 0
        log.info("%s%s", name, f" ({total})" if total is not None else "")

    def advance(self, n: int = 1) -> None:
        self._count += n

    def done(self) -> None:
        if self._name is not None:
            log.info("%s: done (%d)", self._name, self._count)
            self._name = None


class RichReporter(Reporter):
    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        )
        self._task: int | None = None

    def stage(self, name: str, total: int | None = None) -> None:
        self.done()
        self._progress.start()
        self._task = self._progress.add_task(name, total=total)

    def advance(self, n: int = 1) -> None:
        if self._task is not None:
            self._progress.advance(self._task, n)  # type: ignore[arg-type]

    def done(self) -> None:
        if self._task is not None:
            task = self._progress.tasks[-1]
            if task.total is None:
                self._progress.update(self._task, total=task.completed)  # type: ignore[arg-type]
            self._task = None
            self._progress.stop()


def make_reporter(enabled: bool = True) -> Reporter:
    if not enabled:
        return Reporter()
    return RichReporter() if sys.stderr.isatty() else LogReporter()
