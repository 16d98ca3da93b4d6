"""Spawning a run: its own session and process group, stdout/stderr straight into files,
and an awaitable exit (a pidfd where the kernel has them, else a waiting thread).

Who a run runs as: a daemon started as root refuses to run a job as root unless the job sets
`user` (it then runs as that account: uid, primary group and supplementary groups, with HOME,
USER and LOGNAME of its own) or `allow_root = true` (the job's or [supervisor]'s). For a
`user` job the state dir becomes 0711 (traverse, never list) with every file directly in it
forced to 0600; runs/ and runs/<job>/ are 0711 too, and the run dir and a scratch dir
tmp/<uid> (for heartbeat temp files) are the user's, 0700. Every job starts with umask 022.
"""

from __future__ import annotations

import os
import pwd
import stat
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import anyio.to_thread

from status.store import write_atomic
from supervisor.logs import open_for_child

__all__ = ["JOB_UMASK", "Child", "RunAs", "SpawnError", "expose_state_dir", "give_run_dir", "identity_for",
           "lookup_user", "spawn", "write_private"]

JOB_UMASK = 0o022  # what a job starts with, whatever the daemon's own umask is
_TRAVERSE = 0o711  # state_dir, runs/, runs/<job>/, tmp/ while some job runs as another user


class SpawnError(Exception):
    """Raised when a run's process cannot be started; the message names the command."""


@dataclass(frozen=True)
class RunAs:
    """The Unix account a job runs as."""

    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]
    home: str

    def env(self) -> dict[str, str]:
        """HOME, USER and LOGNAME of this account (not the daemon's)."""
        return {"HOME": self.home, "USER": self.name, "LOGNAME": self.name}


def lookup_user(name: str) -> RunAs:
    """The account `name` (or a numeric uid); SpawnError when there is no such user."""
    try:
        pw = pwd.getpwuid(int(name)) if name.isdigit() else pwd.getpwnam(name)
    except (KeyError, OverflowError):
        raise SpawnError(f'no such user "{name}" on this host') from None
    return RunAs(pw.pw_name, pw.pw_uid, pw.pw_gid, tuple(os.getgrouplist(pw.pw_name, pw.pw_gid)),
                 pw.pw_dir or "/")


def identity_for(job: str, user: str | None, allow_root: bool, *, euid: int | None = None) -> RunAs | None:
    """Whom job `job` runs as: None for the daemon's own account, else the account to switch
    to. SpawnError when the daemon is root and the job says neither `user` nor `allow_root`,
    or when it names another user and the daemon is not root."""
    euid = os.geteuid() if euid is None else euid
    if user is None:
        if euid == 0 and not allow_root:
            raise SpawnError(f'refusing to run job "{job}" as root: set user = "<name>" for the job, '
                             'or allow_root = true (see README "Security")')
        return None
    run_as = lookup_user(user)
    if run_as.uid == euid:
        return None
    if euid != 0:
        raise SpawnError(f'cannot run job "{job}" as user "{user}": the daemon runs as uid {euid}, '
                         "and only root can switch users")
    return run_as


def expose_state_dir(state_dir: Path, scratch: Path) -> None:
    """Make the state dir, runs/ and the scratch dir traverse-only for others (0711), after
    forcing every file directly in the state dir to owner-only: a name known to all (status.json,
    history.db) must not become readable. For a daemon whose jobs run as other users: call it at
    start too, so a job adopted from a previous daemon keeps reaching its run dir."""
    for directory in (state_dir, state_dir / "runs", scratch):
        directory.mkdir(mode=0o700, exist_ok=True)
    with os.scandir(state_dir) as entries:
        for entry in entries:
            if entry.is_file(follow_symlinks=False):
                mode = stat.S_IMODE(entry.stat(follow_symlinks=False).st_mode)
                if mode & 0o077:
                    os.chmod(entry.path, mode & 0o700)
    for directory in (state_dir, state_dir / "runs", scratch):
        os.chmod(directory, _TRAVERSE)


def give_run_dir(run_as: RunAs, state_dir: Path, run_dir: Path, scratch: Path) -> Path:
    """Let `run_as` reach its run dir (and own it) without seeing anything else of the state
    dir; return its own scratch dir. SpawnError when a directory cannot be prepared."""
    try:
        expose_state_dir(state_dir, scratch)
        os.chmod(run_dir.parent, _TRAVERSE)
        os.chown(run_dir, run_as.uid, run_as.gid)
        os.chmod(run_dir, 0o700)
        own = scratch / str(run_as.uid)
        own.mkdir(mode=0o700, exist_ok=True)
        info = os.lstat(own)
        if not stat.S_ISDIR(info.st_mode):
            raise SpawnError(f"{own} is not a directory")
        os.chown(own, run_as.uid, run_as.gid)
        os.chmod(own, 0o700)
    except OSError as exc:
        raise SpawnError(f'cannot prepare {exc.filename or run_dir} for user "{run_as.name}": '
                         f"{(exc.strerror or str(exc)).lower()}") from None
    return own


def write_private(path: Path, text: str) -> None:
    """Replace `path` with `text` (0600) through a fresh temp file and a rename, so a link a
    job planted at `path` in its own run dir is replaced, never followed. Not fsynced: it only
    has to survive the daemon's crash, not the host's (the run dies with the host)."""
    write_atomic(path, text.encode(), mode=0o600, durable=False)


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
            pidfd, self.pidfd = self.pidfd, None
            await await_pidfd(pidfd)
            return self.popen.wait()
        return await anyio.to_thread.run_sync(self.popen.wait, abandon_on_cancel=True)


def spawn(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    stdout: Path,
    stderr: Path,
    run_as: RunAs | None = None,
) -> Child:
    """Start `argv` in a new session with stdin from /dev/null, output into the files, umask
    JOB_UMASK, and (with `run_as`) as that user."""
    try:
        out_fd = open_for_child(stdout)
    except OSError as exc:  # a full disk, or a job that keeps planting something at the name
        raise SpawnError(f"cannot open {stdout}: {(exc.strerror or str(exc)).lower()}") from None
    try:
        err_fd = open_for_child(stderr)
    except OSError as exc:
        os.close(out_fd)
        raise SpawnError(f"cannot open {stderr}: {(exc.strerror or str(exc)).lower()}") from None
    who = {} if run_as is None else {"user": run_as.uid, "group": run_as.gid,
                                     "extra_groups": list(run_as.groups)}
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
            umask=JOB_UMASK,
            **who,  # type: ignore[arg-type]
        )
    except OSError as exc:
        as_user = f' as user "{run_as.name}"' if run_as is not None else ""
        raise SpawnError(f"cannot start {argv[0]!r}{as_user} in {cwd}: {exc.strerror or exc}") from None
    finally:
        os.close(out_fd)
        os.close(err_fd)
    return Child(popen, open_pidfd(popen.pid))


def open_pidfd(pid: int) -> int | None:
    """A pidfd for `pid` (readable once it exits; it pins the process, so a later process
    reusing the pid is never confused with it), or None where the kernel has none."""
    if not hasattr(os, "pidfd_open"):
        return None
    try:
        return os.pidfd_open(pid)
    except OSError:
        return None


async def await_pidfd(pidfd: int) -> None:
    """Wait until the process behind `pidfd` has exited; the fd is closed either way."""
    try:
        await anyio.wait_readable(pidfd)
    finally:
        os.close(pidfd)
