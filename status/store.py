"""Atomic writer and tolerant reader of status.json (one writer: the daemon)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from pydantic import ValidationError

from status.models import StatusDocument


class StatusFileError(Exception):
    """Raised when status.json is missing, unreadable or not a valid document."""


def write_atomic(path: Path, data: bytes, *, mode: int = 0o644, durable: bool = True) -> None:
    """Replace `path` with `data`: temp file, fsync, rename, fsync the directory (`durable`:
    the fsyncs, which a file that need only outlive the writer's crash can skip)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    if not durable:
        return
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def temp_files(path: Path) -> list[Path]:
    """Temp files `write_atomic` left next to `path` (a writer killed mid-write leaves one)."""
    try:
        return sorted(path.parent.glob(f".{path.name}.*"))
    except OSError:
        return []


def dump_status(doc: StatusDocument) -> bytes:
    """Serialise a status document (pretty, stable key order). Straight to bytes: the same
    text as `model_dump_json(...) + "\n"` encoded, without its str copies (~250 KB each at 200
    jobs, made once a second while jobs heartbeat)."""
    return doc.__pydantic_serializer__.to_json(doc, by_alias=True, indent=2) + b"\n"


def write_status(path: Path, doc: StatusDocument) -> None:
    """Atomically write status.json, owner-only like the daemon writes it (the state dir may be
    traversable by job users)."""
    write_atomic(path, dump_status(doc), mode=0o600)


def read_status(path: Path) -> StatusDocument:
    """Read and validate status.json; raise StatusFileError saying what is wrong."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise StatusFileError(f"{path}: no such file (is the daemon started?)") from None
    except OSError as exc:
        raise StatusFileError(f"{path}: {exc.strerror}") from None
    try:
        return StatusDocument.model_validate(json.loads(raw))
    except json.JSONDecodeError as exc:
        raise StatusFileError(f"{path}: not valid JSON ({exc})") from None
    except UnicodeDecodeError as exc:
        raise StatusFileError(f"{path}: not valid JSON (not UTF-8: byte {exc.start})") from None
    except RecursionError:
        raise StatusFileError(f"{path}: not valid JSON (nested too deeply)") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise StatusFileError(f"{path}: {loc}: {first['msg']}") from None
