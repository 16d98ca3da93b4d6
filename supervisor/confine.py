"""Keeping file access inside its roots: plain names for jobs and runs, containment checked on
the file actually opened, and no link a job planted ever followed out of its run dir.

A run dir may belong to the job's own user (`user =`), who can replace anything in it with a
symlink or a FIFO at any moment; so what the daemon reads there is opened first and judged by
the open file (its real path, its type), never by a path checked a moment before.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

__all__ = ["RUN_ID", "RUN_ID_PART", "Escape", "inside", "is_job_name", "open_inside", "printable", "real_path"]

RUN_ID = re.compile(r"\d{8}T\d{6}(\d{3})?Z-[0-9a-f]{6}")  # 20261125T084455123Z-3f9a1c
RUN_ID_PART = re.compile(r"[0-9A-Za-z-]{1,40}")  # what `--run` may abbreviate a run id to
_JOB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")  # as the config allows (supervisor.config)


def printable(text: str) -> str:
    r"""`text` as valid UTF-8, for labels and messages built from file names.

    Linux names are bytes; Python decodes a byte that is not UTF-8 (0xff, say) to a lone
    surrogate (U+DCFF), which UTF-8 encoders (status.json, SQLite) refuse. Such bytes are
    rendered visibly instead: the name b"out-\xff.txt" reads `out-\xff.txt` (a backslash, an
    x, two hex digits). Valid text is returned as is. For display only: never open or compare
    paths by the result.
    """
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    try:  # a name from the file system: surrogates stand for raw bytes
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # other lone surrogates (from JSON, say): escaped as \udXXX
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


class Escape(OSError):
    """Raised when a path resolves outside the root it must stay in; `real` is where it led
    (as printable text: it ends up in proof details, status.json and the history)."""

    def __init__(self, path: Path, root: Path, real: str) -> None:
        self.path, self.root, self.real = path, root, printable(real)
        super().__init__(f"{printable(str(path))} resolves to {self.real}, outside {printable(str(root))}")


def is_job_name(name: str) -> bool:
    """Whether `name` is a job name the config could hold (no "/", no "..", no leading dot)."""
    return bool(_JOB_NAME.fullmatch(name)) and name not in (".", "..") and ".." not in name


def inside(root: Path, candidate: Path | str) -> bool:
    """Whether `candidate`, with every symlink resolved, lies in `root` (resolved too)."""
    return _within(os.path.realpath(root), os.path.realpath(candidate))


def _within(base: str, real: str) -> bool:
    return real == base or real.startswith(base.rstrip(os.sep) + os.sep)


def real_path(fd: int, fallback: Path) -> str:
    """Where an open file really is (from /proc, so a later rename or link swap cannot lie)."""
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return os.path.realpath(fallback)


def open_inside(root: Path, path: Path) -> int:
    """Open `path` read-only as a regular file that really lies in `root`; return the fd.

    Raises Escape when the opened file is outside `root` (a symlink, or a directory link on
    the way), IsADirectoryError / OSError(EINVAL) for a directory or anything not a regular
    file (a FIFO is opened non-blocking, so it cannot hang the reader), and OSError as open().
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | os.O_NOCTTY)
    try:
        real = real_path(fd, path)
        if not _within(os.path.realpath(root), real):  # the opened file's path, not resolved again
            raise Escape(path, root, real)
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(21, "is a directory", str(path))
        if not stat.S_ISREG(mode):
            raise OSError(22, "not a regular file", str(path))
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd
