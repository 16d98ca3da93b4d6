"""Atomic file replacement for workers: readers (and proof verifiers) see the old file or the
new one, never half of one. Stdlib only, like the rest of what a job needs.

The temp file is a dot-name in the destination directory (same filesystem, so the rename is
atomic; `*.json`, `*.csv`, `part-*.parquet` globs never match it); it is fsynced before the
rename and the directory after it, so a crash leaves either nothing or the complete file.
"""

from __future__ import annotations

import os
from pathlib import Path

TEMP_SUFFIX = ".tmp"


def temp_name(path: Path) -> Path:
    """The dot-named temp file written before `path` appears."""
    return path.with_name(f".{path.name}.{os.getpid()}{TEMP_SUFFIX}")


def write_atomic(path: Path, data: bytes | bytearray | memoryview) -> None:
    """Write `data` to `path` atomically and durably; OSError on failure (no temp left)."""
    tmp = temp_name(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def fsync_dir(directory: Path) -> None:
    """Make a rename or unlink in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
