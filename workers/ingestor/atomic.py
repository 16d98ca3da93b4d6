"""Atomic file replacement: readers see the old file or the new one, never half of one.

The temp file is a dot-name in the destination directory (same filesystem, so the rename is
atomic, and `part-*.parquet` / `*.json` globs never match it); it is fsynced before the rename
and the directory after it, so a crash leaves either nothing or the complete file.
"""

from __future__ import annotations

import os
from pathlib import Path

from workers.ingestor.errors import StoreError

TEMP_SUFFIX = ".tmp"


def temp_name(path: Path) -> Path:
    """The dot-named temp file written before `path` appears."""
    return path.with_name(f".{path.name}.{os.getpid()}{TEMP_SUFFIX}")


def write_atomic(path: Path, data: bytes | bytearray | memoryview) -> None:
    """Write `data` to `path` atomically and durably."""
    tmp = temp_name(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise StoreError(path, f"cannot write: {exc.strerror or exc}") from exc


def fsync_dir(directory: Path) -> None:
    """Make a rename or unlink in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def is_temp(name: str) -> bool:
    """True for a temp file left by write_atomic (for example by a crash)."""
    return name.startswith(".") and name.endswith(TEMP_SUFFIX)
