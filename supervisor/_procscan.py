"""A cheap process-table scan for Linux: one read of /proc/<pid>/stat per process (psutil
makes three or four per process), for the health sampler's 10-second tick."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

_CLK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_COMM_MAX = 15  # the kernel truncates comm to 15 characters


@dataclass(frozen=True)
class ProcStat:
    """What /proc/<pid>/stat says about one process."""

    pid: int
    ppid: int
    name: str
    cpu_seconds: float
    rss: int
    start: int  # start time in clock ticks since boot: (pid, start) identifies a process


def available() -> bool:
    """Whether this host has a Linux /proc."""
    return os.path.exists("/proc/self/stat")


def _read(path: str) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return os.read(fd, 4096)
    except OSError:
        return None
    finally:
        os.close(fd)


def parse_stat(pid: int, data: bytes) -> ProcStat | None:
    """Parse one /proc/<pid>/stat line (the name may hold spaces and parentheses)."""
    try:
        open_ = data.index(b"(")
        close = data.rindex(b")")
        rest = data[close + 2:].split()
        name = data[open_ + 1:close].decode("utf-8", "replace")
        ticks = int(rest[11]) + int(rest[12])
        return ProcStat(pid, int(rest[1]), name, ticks / _CLK, int(rest[21]) * _PAGE, int(rest[19]))
    except (ValueError, IndexError):
        return None


def _full_name(pid: int, comm: str) -> str:
    """comm is cut at 15 characters; take the executable's name from cmdline when it fits."""
    raw = _read(f"/proc/{pid}/cmdline")
    if raw:
        exe = os.path.basename(raw.split(b"\0", 1)[0].decode("utf-8", "replace"))
        if exe.startswith(comm):
            return exe
    return comm


def scan() -> list[ProcStat]:
    """Every process now (kernel threads included)."""
    out: list[ProcStat] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        data = _read(f"/proc/{pid}/stat")
        if data is None:
            continue  # exited meanwhile
        st = parse_stat(pid, data)
        if st is None:
            continue
        if len(st.name) == _COMM_MAX:
            st = ProcStat(st.pid, st.ppid, _full_name(pid, st.name), st.cpu_seconds, st.rss, st.start)
        out.append(st)
    return out


class CpuMeter:
    """Per-process CPU % (of one core) between consecutive scans."""

    def __init__(self) -> None:
        self._last: dict[tuple[int, int], float] = {}
        self._at: float | None = None

    def percents(self, procs: list[ProcStat]) -> dict[int, float]:
        """CPU % of each process since the previous call (0 for new ones and the first call)."""
        now = time.monotonic()
        elapsed = (now - self._at) if self._at is not None else 0.0
        current = {(p.pid, p.start): p.cpu_seconds for p in procs}
        out: dict[int, float] = {}
        for p in procs:
            before = self._last.get((p.pid, p.start))
            out[p.pid] = 0.0 if before is None or elapsed <= 0 else \
                max(0.0, (p.cpu_seconds - before) / elapsed * 100.0)
        self._last, self._at = current, now
        return out
