"""Atomic file replacement: readers see the old file or the new one, never half of one.

The temp file is a dot-name in the destination directory (same filesystem, so the rename is
atomic, and `part-*.parquet` / `*.json` globs never match it); it is fsynced before the rename
and the directory after it, so a crash leaves either nothing or the complete file.
"""

from __future__ import annotations

from pathlib import Path

from workers.atomic import TEMP_SUFFIX, fsync_dir, temp_name
from workers.atomic import write_atomic as _write_atomic
from workers.ingestor.errors import StoreError

__all__ = ["TEMP_SUFFIX", "fsync_dir", "is_temp", "temp_name", "write_atomic"]


def write_atomic(path: Path, data: bytes | bytearray | memoryview) -> None:
    """Write `data` to `path` atomically and durably; StoreError naming the file on failure."""
    try:
        _write_atomic(path, data)
    except OSError as exc:
        raise StoreError(path, f"cannot write: {exc.strerror or exc}") from exc


def is_temp(name: str) -> bool:
    """True for a temp file left by write_atomic (for example by a crash)."""
    return name.startswith(".") and name.endswith(TEMP_SUFFIX)
