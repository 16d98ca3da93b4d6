"""Re-adopting runs a previous daemon left behind.

Jobs run in their own sessions, so they outlive a daemon that crashed or exited with
`on_exit = "leave"`. The next daemon finds each one by pid *and* process create time (a
reused pid is a different process with a later create time), then awaits its end through a
pidfd. It is not the process's parent any more, so its exit status is unknowable: the run is
judged by its heartbeats and proofs instead.
"""

from __future__ import annotations

import os
import stat
import subprocess
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import anyio
import psutil

from status.store import write_atomic
from supervisor.spawn import await_pidfd, open_pidfd

PIDFILE = "pid"  # in each run dir: "PID CREATE_TIME" of its leader, written right after the spawn
CREATE_TIME_TOLERANCE = 0.5  # s; psutil's create time has clock-tick resolution
STARTED_AT_TOLERANCE = 5.0  # s; for records without a create time (older proofwatch)
POLL_EVERY = 0.5  # s; only where the kernel has no pidfds
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
PIDFILE_MAX = 64  # bytes: a pid file is "PID CREATE_TIME\n"


def create_time(pid: int) -> float | None:
    """The process's create time (epoch seconds), or None when it is gone or a zombie. On
    Linux one read of /proc/<pid>/stat (psutil's formula: boot time + start ticks), since it
    is taken for every spawn; elsewhere psutil."""
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None if os.path.isdir("/proc/self") else _psutil_create_time(pid)
    except OSError:
        return _psutil_create_time(pid)
    try:
        data = os.read(fd, 4096)
    except OSError:
        return None
    finally:
        os.close(fd)
    fields = data[data.rfind(b")") + 2:].split()
    if len(fields) < 20 or fields[0] == b"Z":
        return None
    return _boot_time() + int(fields[19]) / _CLK_TCK


def _psutil_create_time(pid: int) -> float | None:
    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            if proc.status() == psutil.STATUS_ZOMBIE:
                return None
            return proc.create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def _boot_time() -> float:
    """Boot time as psutil computes it (/proc/stat btime), read each time: a clock step moves
    it, and a cached value would date every later spawn wrongly."""
    return psutil.boot_time()


def environ_run_id(pid: int, env_name: str = "PROOFWATCH_RUN_ID") -> str | None:
    """The run id in the process's environment; None when it cannot be read or holds none
    (another user's process, or one that rewrote its environment block, e.g. setproctitle)."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = f.read()
    except OSError:
        return None
    prefix = env_name.encode() + b"="
    for var in env.split(b"\0"):
        if var.startswith(prefix):
            return var[len(prefix):].decode("utf-8", "replace")
    return None


def write_pidfile(path: Path, text: str) -> None:
    """Create a fresh run dir's pid file (0600). O_EXCL never follows a link: if the job
    already planted something at `path` (it owns its run dir), replace it by a rename."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        write_atomic(path, text.encode(), mode=0o600, durable=False)
        return
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def is_same_process(pid: int | None, created: float | None, started_at: datetime,
                    run_id: str | None = None) -> bool:
    """Whether `pid` is still the process run `run_id` started. Its environment says so when it
    can be read (immune to clock steps, which move create times: they are dated from the boot
    time, itself derived from the wall clock); else the same create time when it was recorded,
    else created within a few seconds of the run's start."""
    if not pid:
        return False
    now_created = create_time(pid)
    if now_created is None:
        return False
    if run_id:
        env_run = environ_run_id(pid)
        if env_run is not None:
            return env_run == run_id
    if created is not None:
        return abs(now_created - created) <= CREATE_TIME_TOLERANCE
    return abs(now_created - started_at.timestamp()) <= STARTED_AT_TOLERANCE


def read_pidfile_at(path: Path) -> tuple[int, float | None, float]:
    """(pid, create time, mtime) from a run's pid file, read safely: the job owns its run dir,
    so only a regular file owned by the daemon's user is trusted, opened without following a
    link or blocking on a FIFO, and read up to PIDFILE_MAX bytes. ValueError/OSError if not."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if st.st_uid != os.geteuid() or not stat.S_ISREG(st.st_mode):
            raise ValueError(f"{path}: not a pid file the daemon wrote (a job owns its run dir)")
        parts = os.read(fd, PIDFILE_MAX).decode("ascii").split()  # "PID" (older) or "PID CREATE_TIME"
    finally:
        os.close(fd)
    return int(parts[0]), float(parts[1]) if len(parts) > 1 else None, st.st_mtime


def pidfile_text(pid: int, created: float | None) -> str:
    """The pid file's content for a run's leader."""
    return f"{pid} {created:.3f}\n" if created is not None else f"{pid}\n"


@dataclass
class AdoptedProcess:
    """A run's leader that this daemon did not spawn: awaitable, but not reapable."""

    pid: int
    pidfd: int | None = field(default=None)
    created: float | None = None  # to tell, without a pidfd, when the pid is someone else's

    @classmethod
    def open(cls, pid: int, created: float | None = None) -> AdoptedProcess:
        """Take hold of `pid` now (through a pidfd where the kernel has them)."""
        return cls(pid, open_pidfd(pid), created if created is not None else create_time(pid))

    async def wait(self) -> int | None:
        """Wait until the process has exited. Its exit status went to its new parent: None."""
        if self.pidfd is not None:
            pidfd, self.pidfd = self.pidfd, None
            await await_pidfd(pidfd)
            return None
        while (now := create_time(self.pid)) is not None and (
                self.created is None or abs(now - self.created) <= CREATE_TIME_TOLERANCE):
            await anyio.sleep(POLL_EVERY)
        return None


def release(popen: subprocess.Popen[bytes]) -> None:
    """Let go of a child left running for the next daemon: Popen must not warn that it is
    "still running" when collected, nor try to reap it (the next daemon adopts it)."""
    popen.returncode = 0  # never read again: the run's outcome is decided by the next daemon


def run_leaders(runs_dir: Path, env_name: str) -> dict[Path, int]:
    """Session leaders whose environment places them in a run dir under `runs_dir`: the runs
    a daemon spawned but died before it could note (pid file, history). Linux /proc only."""
    prefix = f"{env_name}={runs_dir}{os.sep}".encode()
    found: dict[Path, int] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return found
    for name in entries:
        if not name.isdigit():
            continue
        pid = int(name)
        try:
            if os.getsid(pid) != pid:
                continue  # not a run's leader (jobs' own children share its environment)
            with open(f"/proc/{pid}/environ", "rb") as f:
                env = f.read()
        except OSError:
            continue
        for var in env.split(b"\0"):
            if var.startswith(prefix):
                run_dir = Path(os.fsdecode(var[len(env_name) + 1:]))
                # a job's own child that called setsid shares the environment: the run's
                # leader is the one that started first
                if run_dir not in found or (create_time(pid) or 0) < (create_time(found[run_dir]) or 0):
                    found[run_dir] = pid
                break
    return found
