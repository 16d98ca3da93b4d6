"""Heartbeats (progress per fold) and, in a terminal, a rich progress bar.

Every call comes from the work loop itself (after each fit), never from a thread: if a fit
hangs, the heartbeats stop progressing and proofwatch flags the stall.
"""

from __future__ import annotations

import logging
import sys
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from workers.sdk import Run

if TYPE_CHECKING:
    from rich.console import Console

log = logging.getLogger(__name__)
_console: Console | None = None


def in_terminal(mode: Literal["auto", "always", "never"]) -> bool:
    """Whether to draw the progress bar."""
    return mode == "always" or (mode == "auto" and sys.stderr.isatty())


def console() -> Console:
    """The one stderr console the bar and the log lines share (so lines print above the bar)."""
    global _console
    if _console is None:
        from rich.console import Console

        _console = Console(stderr=True)
    return _console


def log_handler() -> logging.Handler:
    """A log handler that prints through the shared console."""
    from rich.logging import RichHandler

    return RichHandler(console=console(), show_path=False, log_time_format="%H:%M:%S")


class Progress:
    """One run's progress: phases, fold counters, an optional terminal bar."""

    def __init__(self, run: Run, mode: Literal["auto", "always", "never"], total_fits: int) -> None:
        self.run = run
        self.total = total_fits
        self.done = 0
        self._bar: Any = None  # rich.progress.Progress, imported only for a terminal
        self._task: Any = None
        if in_terminal(mode):
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as Bar

            self._bar = Bar(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), console=console(), transient=False)
            self._task = self._bar.add_task("load", total=total_fits)

    def __enter__(self) -> Progress:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._bar is not None:
            self._bar.stop()

    def phase(self, name: str, message: str) -> None:
        """A new phase: a heartbeat with progress (the phase changed)."""
        log.info("%s: %s", name, message)
        self.run.beat(phase=name, message=message)
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, description=name)

    def fold(self, counter: str, k: int, of: int, message: str) -> None:
        """One more fit done: `counter` (folds, control_folds) is now k."""
        self.done += 1
        log.info("%s %d/%d: %s", counter, k, of, message)
        self.run.beat({counter: k}, message=message)
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, completed=self.done)

    def fitted(self, message: str) -> None:
        """A fit outside the fold loops (the final model): the bar advances, the phase said it."""
        self.done += 1
        log.info("%s", message)
        self.run.beat(message=message)
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, completed=self.done)

    def finish(self, message: str) -> None:
        """The last heartbeat, written now."""
        self.run.beat(phase="done", message=message, force=True)
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, description="done", completed=self.total)
