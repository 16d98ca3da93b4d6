"""Calling back when a spawned child exits, with no task per run.

A run's leader with a pidfd, spawned (spawn.py) or adopted from an earlier daemon (adopt.py),
is watched by the event loop itself: the pidfd turns readable when the process exits, and the
loop's reader callback reaps it (when it is our child) and calls `on_exit`. An asyncio task
parked in `anyio.wait_readable` would do the same at the cost of the task, its coroutine frames
and its Event: ~4 KiB a run, 0.8 MB of the daemon's RSS at 200 jobs. A leader without a pidfd
(a kernel before 5.3) still goes through a task (`Child.wait()`, `AdoptedProcess.wait()`).

`on_exit` runs inside the event loop's callback: an exception it raises is logged here, not
raised into a task group, and the loop goes on.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable

from supervisor.adopt import AdoptedProcess
from supervisor.spawn import Child

log = logging.getLogger(__name__)


class ExitWatch:
    """The run leaders whose exits the running event loop watches through their pidfds."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._watched: dict[int, Child | AdoptedProcess] = {}  # pidfd -> leader

    def __len__(self) -> int:
        return len(self._watched)

    def watch(self, leader: Child | AdoptedProcess, on_exit: Callable[[int | None], None]) -> bool:
        """Call `on_exit(returncode)` once `leader` has exited: a child of ours is reaped
        first; an adopted process's status went to its new parent (None). False (and nothing
        done) for a leader without a pidfd: await `leader.wait()` in a task instead."""
        if leader.pidfd is None:
            return False
        pidfd, leader.pidfd = leader.pidfd, None
        self._watched[pidfd] = leader
        self._loop.add_reader(pidfd, self._exited, pidfd, on_exit)
        return True

    def _exited(self, pidfd: int, on_exit: Callable[[int | None], None]) -> None:
        leader = self._forget(pidfd)
        code = leader.popen.wait() if isinstance(leader, Child) else None  # exited: reaped at once
        try:
            on_exit(code)
        except Exception:  # the loop would only log it too; say whose exit it was
            log.exception("handling the exit of pid %d (code %s) failed", leader.pid, code)

    def _forget(self, pidfd: int) -> Child | AdoptedProcess:
        self._loop.remove_reader(pidfd)
        os.close(pidfd)
        return self._watched.pop(pidfd)

    def close(self) -> None:
        """Stop watching every leader still running (a daemon leaving them to the next one)."""
        for pidfd in list(self._watched):
            self._forget(pidfd)
