"""A run's stdout/stderr files: opened for the child to write directly (O_APPEND, so the
daemon can rotate by copy-truncate), rotated when over a size cap, and tailed for alerts."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

STDOUT = "stdout.log"
STDERR = "stderr.log"
_TAIL_CHUNK = 65536
_COPY_CHUNK = 1 << 20
_warned: set[tuple[str, int]] = set()  # (path, errno) already logged

log = logging.getLogger(__name__)


def open_for_child(path: Path) -> int:
    """An append-only fd for the child's stdout or stderr (owner read/write only)."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)


def rotate_if_needed(path: Path, max_bytes: int, backups: int) -> int:
    """Copy-truncate `path` when it is over `max_bytes`; return the bytes moved out (0 if none).

    The backup (`.1`, older ones shifted up to `.N`, mode 0600) keeps at most the newest
    `max_bytes` of the output, after a line saying how much was dropped, so a job flooding
    its output can never use more than (backups + 1) x max_bytes of disk. The copy stops at the
    size seen at the start, however fast the child writes meanwhile. The child keeps its
    O_APPEND descriptor, so its next write lands at the new end of the truncated file.

    Never raises: when the backup cannot be written (a full disk), the log is truncated
    anyway, since freeing the space matters more than the flood, and that is logged once.
    """
    try:
        size = path.stat().st_size
    except OSError:
        return 0
    if size <= max_bytes:
        return 0
    try:
        for i in range(backups - 1, 0, -1):
            older = path.with_name(f"{path.name}.{i}")
            if older.exists():
                older.replace(path.with_name(f"{path.name}.{i + 1}"))
        if backups > 0:
            _backup(path, path.with_name(f"{path.name}.1"), size, max_bytes)
    except OSError as exc:
        _warn_once(path, exc, "no backup kept; the log is truncated anyway")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            os.ftruncate(fd, 0)
        finally:
            os.close(fd)
    except OSError as exc:
        _warn_once(path, exc, "cannot truncate it")
        return 0
    return size


def _backup(path: Path, backup: Path, size: int, max_bytes: int) -> None:
    """Copy the newest `max_bytes` of the first `size` bytes of `path` into `backup`."""
    fd = os.open(backup, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as dst, os.fdopen(_open_log(path), "rb") as src:
            dropped = max(0, size - max_bytes)
            if dropped:
                dst.write(f"[proofwatch: {dropped} earlier bytes dropped: over log_max_bytes]\n".encode())
                src.seek(dropped)
            left = size - dropped
            while left > 0:
                chunk = src.read(min(left, _COPY_CHUNK))
                if not chunk:
                    break
                dst.write(chunk)
                left -= len(chunk)
    except OSError:
        backup.unlink(missing_ok=True)  # a torn backup frees its space
        raise


def _warn_once(path: Path, exc: OSError, what: str) -> None:
    key = (str(path), exc.errno or 0)
    if key not in _warned:
        _warned.add(key)
        log.warning("rotating %s: %s; %s", path, exc.strerror or exc, what)


def _open_log(path: Path) -> int:
    """Open a log read-only; never through a symlink, never anything but a regular file (a job
    running as its own user owns its run dir and may plant either there)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(22, "not a regular file", str(path))
    return fd


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
    """Current size of a file, 0 when missing."""
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
