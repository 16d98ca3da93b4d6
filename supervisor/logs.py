"""A run's stdout/stderr files: opened for the child to write directly (O_APPEND, so the
daemon can rotate by copy-truncate), rotated when over a size cap, and tailed for alerts."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

STDOUT = "stdout.log"
STDERR = "stderr.log"
_TAIL_CHUNK = 65536


def open_for_child(path: Path) -> int:
    """An append-only fd for the child's stdout or stderr (owner read/write only)."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)


def rotate_if_needed(path: Path, max_bytes: int, backups: int) -> int:
    """Copy-truncate `path` when it is over `max_bytes`; return the bytes moved out (0 if none).

    The backup (`.1`, older ones shifted up to `.N`, mode 0600) keeps at most the newest
    `max_bytes` of the output, after a line saying how much was dropped, so a job flooding
    its output can never use more than (backups + 1) x max_bytes of disk. The child keeps its
    O_APPEND descriptor, so its next write lands at the new end of the truncated file.
    """
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return 0
    if size <= max_bytes:
        return 0
    for i in range(backups - 1, 0, -1):
        older = path.with_name(f"{path.name}.{i}")
        if older.exists():
            older.replace(path.with_name(f"{path.name}.{i + 1}"))
    if backups > 0:
        backup = path.with_name(f"{path.name}.1")
        fd = os.open(backup, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with path.open("rb") as src, os.fdopen(fd, "wb") as dst:
            dropped = max(0, size - max_bytes)
            if dropped:
                dst.write(f"[proofwatch: {dropped} earlier bytes dropped: over log_max_bytes]\n".encode())
                src.seek(dropped)
            shutil.copyfileobj(src, dst, 1 << 20)
    with path.open("r+b") as f:
        f.truncate(0)
    return size


def tail(path: Path, lines: int = 20) -> list[str]:
    """The last `lines` lines of a text file (reads at most a chunk from the end)."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - _TAIL_CHUNK))
            data = f.read()
    except FileNotFoundError:
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
