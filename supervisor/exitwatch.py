"""Calling back when a spawned child exits, with no task per run.

A child spawned with a pidfd (spawn.py) is watched by the event loop itself: the pidfd turns
readable when the child exits, and the loop's reader callback reaps it and calls `on_exit`. An
asyncio task parked in `anyio.wait_readable` would do the same at the cost of the task, its
coroutine frames and its Event: ~4 KiB a run, 0.8 MB of the daemon's RSS at 200 jobs. A child
without a pidfd (a kernel before 5.3) and an adopted process still go through a task
(`Child.wait()`, `AdoptedProcess.wait()`).

`on_exit` runs inside the event loop's callback: an exception it raises is logged here, not
raised into a task group, and the loop goes on.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable

from supervisor.spawn import Child

log = logging.getLogger(__name__)


class ExitWatch:
    """The children whose exits the running event loop watches through their pidfds."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._watched: dict[int, Child] = {}  # pidfd -> child

    def __len__(self) -> int:
        return len(self._watched)

    def watch(self, child: Child, on_exit: Callable[[int], None]) -> bool:
        """Call `on_exit(returncode)` once `child` has exited and is reaped. False (and nothing
        done) for a child without a pidfd: await `child.wait()` in a task instead."""
        if child.pidfd is None:
            return False
        pidfd, child.pidfd = child.pidfd, None
        self._watched[pidfd] = child
        self._loop.add_reader(pidfd, self._exited, pidfd, on_exit)
        return True

    def _exited(self, pidfd: int, on_exit: Callable[[int], None]) -> None:
        child = self._forget(pidfd)
        code = child.popen.wait()  # it has exited: this reaps it at once
        try:
            on_exit(code)
        except Exception:  # the loop would only log it too; say whose exit it was
            log.exception("handling the exit of pid %d (code %s) failed", child.pid, code)

    def _forget(self, pidfd: int) -> Child:
        self._loop.remove_reader(pidfd)
        os.close(pidfd)
        return self._watched.pop(pidfd)

    def close(self) -> None:
        """Stop watching every child still running (a daemon leaving them to the next one)."""
        for pidfd in list(self._watched):
            self._forget(pidfd)
