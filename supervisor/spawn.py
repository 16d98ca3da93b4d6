"""Spawning a run: its own session and process group, stdout/stderr straight into files,
and an awaitable exit (a pidfd where the kernel has them, else a waiting thread)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import anyio.to_thread

from supervisor.logs import open_for_child


class SpawnError(Exception):
    """Raised when a run's process cannot be started; the message names the command."""


@dataclass
class Child:
    """A spawned process and how to await its end."""

    popen: subprocess.Popen[bytes]
    pidfd: int | None = field(default=None)

    @property
    def pid(self) -> int:
        """The leader's pid (= its process group and session id)."""
        return self.popen.pid

    async def wait(self) -> int:
        """Wait for the leader to exit and reap it; return Popen's return code."""
        if self.pidfd is not None:
            try:
                await anyio.wait_readable(self.pidfd)
            finally:
                os.close(self.pidfd)
                self.pidfd = None
            return self.popen.wait()
        return await anyio.to_thread.run_sync(self.popen.wait, abandon_on_cancel=True)


def spawn(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    stdout: Path,
    stderr: Path,
) -> Child:
    """Start `argv` in a new session with stdin from /dev/null and output into the files."""
    out_fd = open_for_child(stdout)
    err_fd = open_for_child(stderr)
    try:
        popen = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=out_fd,
            stderr=err_fd,
            start_new_session=True,
            close_fds=True,
        )
    except OSError as exc:
        raise SpawnError(f"cannot start {argv[0]!r} in {cwd}: {exc.strerror or exc}") from None
    finally:
        os.close(out_fd)
        os.close(err_fd)
    pidfd = None
    if hasattr(os, "pidfd_open"):
        try:
            pidfd = os.pidfd_open(popen.pid)
        except OSError:
            pidfd = None
    return Child(popen, pidfd)
