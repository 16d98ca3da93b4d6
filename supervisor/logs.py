"""A run's stdout/stderr files: opened for the child to write directly (O_APPEND, so the
daemon can rotate by copy-truncate), rotated when over a size cap, and tailed for alerts.

A job owns its run dir, so it may plant a symlink, a FIFO or a hard link at any name in it.
Hence every open here of a name in a run dir is O_NOFOLLOW | O_NONBLOCK (a FIFO never blocks
the daemon) and checks through fstat that it got a regular file; a backup is written to a
fresh O_EXCL temp file and renamed into place, so whatever was planted at its name is replaced
and never opened."""

from __future__ import annotations

import errno
import logging
import os
import secrets
import stat
from pathlib import Path

STDOUT = "stdout.log"
STDERR = "stderr.log"
_TAIL_CHUNK = 65536
_COPY_CHUNK = 1 << 20
_SAFE = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_warned: set[tuple[str, int]] = set()  # (path, errno) already logged

log = logging.getLogger(__name__)


def _open_regular(path: Path, flags: int, mode: int = 0o600) -> tuple[int, os.stat_result]:
    """Open `path` never through a symlink, never blocking (a FIFO), and only if it is a
    regular file (fstat of what was opened, so no swap after a check can fool it)."""
    fd = os.open(path, flags | _SAFE, mode)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, "not a regular file", str(path))
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def open_for_child(path: Path) -> int:
    """An append-only fd for the child's stdout or stderr (owner read/write only).

    A regular file already there (with no other hard link) is appended to; anything else at
    the name (a symlink, a FIFO, a hard link to another file) is removed and a fresh file made,
    so the child's output never lands anywhere but in its own run dir."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
    for _ in range(3):
        try:
            fd, st = _open_regular(path, flags)
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENXIO, errno.EINVAL, errno.EEXIST):
                raise
        else:
            if st.st_nlink <= 1:
                try:
                    os.set_blocking(fd, True)  # the child gets an ordinary blocking descriptor
                except OSError:
                    os.close(fd)
                    raise
                return fd
            os.close(fd)
        path.unlink(missing_ok=True)  # what was planted there; only its name goes
        flags |= os.O_EXCL
    raise OSError(errno.EEXIST, "something keeps being put in its place", str(path))


def rotate_if_needed(path: Path, max_bytes: int, backups: int) -> int:
    """Copy-truncate `path` when it is over `max_bytes`; return the bytes moved out (0 if none).

    The backup (`.1`, older ones shifted up to `.N`, mode 0600) keeps at most the newest
    `max_bytes` of the output, after a line saying how much was dropped, so a job flooding
    its output can never use more than (backups + 1) x max_bytes of disk. The copy stops at the
    size seen at the start, however fast the child writes meanwhile. The child keeps its
    O_APPEND descriptor, so its next write lands at the new end of the truncated file.

    Never raises and never blocks: when the backup cannot be written (a full disk), the log is
    truncated anyway, since freeing the space matters more than the flood, and that is logged
    once. A log that is not a regular file of its own (a symlink, a FIFO, a second hard link of
    some other file) is left alone, and that is logged once too.
    """
    try:
        if os.lstat(path).st_size <= max_bytes:
            return 0
        fd, st = _open_regular(path, os.O_RDWR)
    except FileNotFoundError:
        return 0
    except OSError as exc:
        _warn_once(path, exc, "not rotated")
        return 0
    try:
        if st.st_nlink > 1:
            _warn_once(path, OSError(errno.EMLINK, "it has another hard link"), "not rotated")
            return 0
        size = st.st_size
        if size <= max_bytes:
            return 0
        if backups > 0:
            _shift(path, backups)
            try:
                _backup(fd, path.with_name(f"{path.name}.1"), size, max_bytes)
            except OSError as exc:
                _warn_once(path, exc, "no backup kept; the log is truncated anyway")
        try:
            os.ftruncate(fd, 0)
        except OSError as exc:
            _warn_once(path, exc, "cannot truncate it")
            return 0
        return size
    finally:
        os.close(fd)


def _shift(path: Path, backups: int) -> None:
    """`.N-1` -> `.N`, ..., `.1` -> `.2`: renames only (they never follow a link nor open
    anything, so a name the job planted is just moved along, or pushed out)."""
    for i in range(backups - 1, 0, -1):
        try:
            os.rename(path.with_name(f"{path.name}.{i}"), path.with_name(f"{path.name}.{i + 1}"))
        except FileNotFoundError:
            pass
        except OSError as exc:  # a directory planted there: that generation is lost, no more
            _warn_once(path, exc, f"backup .{i} not shifted")


def _backup(src: int, backup: Path, size: int, max_bytes: int) -> None:
    """Copy the newest `max_bytes` of the first `size` bytes of `src` into `backup`, through a
    fresh temp file (O_EXCL: never an existing name, link or FIFO) renamed over it."""
    tmp = backup.with_name(f".{backup.name}.{secrets.token_hex(8)}.tmp")
    fd, _ = _open_regular(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    try:
        with os.fdopen(fd, "wb") as dst:
            dropped = max(0, size - max_bytes)
            if dropped:
                dst.write(f"[proofwatch: {dropped} earlier bytes dropped: over log_max_bytes]\n".encode())
            offset = dropped
            while offset < size:
                chunk = os.pread(src, min(size - offset, _COPY_CHUNK), offset)
                if not chunk:
                    break
                dst.write(chunk)
                offset += len(chunk)
        os.rename(tmp, backup)  # replaces whatever the job put at `backup`, never opens it
    except BaseException:
        try:
            tmp.unlink(missing_ok=True)  # a torn backup frees its space
        except OSError:
            pass
        raise


def _warn_once(path: Path, exc: OSError, what: str) -> None:
    key = (str(path), exc.errno or 0)
    if key not in _warned:
        _warned.add(key)
        log.warning("rotating %s: %s; %s", path, exc.strerror or exc, what)


def _open_log(path: Path) -> int:
    """Open a log read-only; never through a symlink, never anything but a regular file (a job
    running as its own user owns its run dir and may plant either there)."""
    return _open_regular(path, os.O_RDONLY)[0]


def tail(path: Path, lines: int = 20) -> list[str]:
    """The last `lines` lines of a text file (reads at most a chunk from the end); nothing
    for a missing file, a symlink or anything but a regular file."""
    try:
        with os.fdopen(_open_log(path), "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - _TAIL_CHUNK))
            data = f.read()
    except OSError:
        return []
    text = data.decode("utf-8", errors="replace")
    out = text.splitlines()
    if size > _TAIL_CHUNK and out:
        out = out[1:]  # first line is probably cut
    return out[-lines:]


def size_of(path: Path) -> int:
    """Current size of a log, 0 when missing or not a regular file (never through a link)."""
    try:
        st = os.lstat(path)
    except OSError:
        return 0
    return st.st_size if stat.S_ISREG(st.st_mode) else 0
