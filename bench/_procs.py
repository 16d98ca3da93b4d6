"""Process plumbing shared by the peer comparison: the trivial child every supervisor runs,
the records it leaves, a reaper for orphans, a process-table sweep that cleans up after us,
CPU/RSS sampling, a log tail and an inotify watch.

The child (`child.sh`, the same file for proofwatch, supervisord and Monit) is

    bash child.sh RECDIR NAME TAG

It writes RECDIR/NAME.pid (its pid, for Monit's pidfile check) and RECDIR/NAME
("pid start-time heartbeat-path": its own `$EPOCHREALTIME` as it starts, i.e. the instant the
child is running, and `$PROOFWATCH_HEARTBEAT` when proofwatch runs it), prints one line, then
`exec -a TAG sleep infinity`: a sleeping process whose command line is `TAG infinity`. Every
TAG starts with the bench's token, so one sweep of /proc finds everything the bench started,
whichever supervisor started it.
"""

from __future__ import annotations

import ctypes
import errno
import os
import select
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

CHILD_SH = """\
#!/bin/bash
# proofwatch bench child: record pid + start time, then sleep forever under the tag $3.
rec="$1/$2"
printf '%s\\n' "$$" > "$rec.pid"
printf '%s %s %s\\n' "$$" "$EPOCHREALTIME" "${PROOFWATCH_HEARTBEAT:-}" > "$rec"
echo up
exec -a "$3" sleep infinity
"""

PR_SET_CHILD_SUBREAPER = 36
_libc = ctypes.CDLL(None, use_errno=True)


def become_subreaper() -> bool:
    """Make this process the reaper of orphaned descendants (Monit's detached children).

    Monit double-forks its start programs, so their processes are re-parented; on this kind of
    VM PID 1 does not reap promptly and a SIGKILLed child would linger as a zombie, which Monit
    reports as "is a zombie" and only restarts a cycle later. A subreaper that reaps at once
    behaves like a normal init."""
    return _libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


def reap(pid: int) -> None:
    """Reap `pid` if it is our child (a no-op otherwise)."""
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def reap_orphans(exclude: set[int] | None = None) -> int:
    """Reap every exited child not in `exclude` (without blocking); return how many."""
    n = 0
    while True:
        try:
            info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            return n
        if info is None:
            return n
        if exclude and info.si_pid in exclude:
            return n  # a Popen of ours: leave it to Popen.wait
        try:
            os.waitpid(info.si_pid, 0)
            n += 1
        except ChildProcessError:
            return n


def sweep(token: str, sig: int = signal.SIGKILL) -> list[int]:
    """Signal every process whose command line contains `token`; return their pids."""
    hit = []
    me = os.getpid()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        if pid == me:
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if token.encode() in cmd:
            try:
                os.kill(pid, sig)
                hit.append(pid)
            except ProcessLookupError:
                pass
    return hit


def count_tagged(prefix: str) -> int:
    """How many live processes have a command line starting with `prefix` (zombies excluded)."""
    n = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                cmd = f.read()
            if cmd.startswith(prefix.encode()):
                with open(f"/proc/{entry.name}/stat", "rb") as f:
                    if f.read().rsplit(b")", 1)[1].split()[0] != b"Z":
                        n += 1
        except OSError:
            continue
    return n


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


@dataclass(frozen=True)
class Record:
    """What a child wrote as it started."""

    pid: int
    started: float  # epoch seconds (the child's own clock reading, bash $EPOCHREALTIME)
    heartbeat: str  # $PROOFWATCH_HEARTBEAT, "" under the peers


def read_record(rec_dir: Path, name: str) -> Record | None:
    """The child's record, or None while it is missing or half-written."""
    try:
        parts = (rec_dir / name).read_text().split()
        return Record(int(parts[0]), float(parts[1].replace(",", ".")), parts[2] if len(parts) > 2 else "")
    except (OSError, ValueError, IndexError):
        return None


def cpu_pressure_us() -> int | None:
    """Total µs that some runnable task waited for a CPU, machine-wide (/proc/pressure/cpu,
    the "some" line); None where the kernel has no PSI."""
    try:
        with open("/proc/pressure/cpu") as f:
            some = f.readline().split()
        return int(some[-1].removeprefix("total="))
    except (OSError, ValueError, IndexError):
        return None


def read_records(rec_dir: Path, names: list[str]) -> dict[str, Record]:
    out = {}
    for name in names:
        rec = read_record(rec_dir, name)
        if rec is not None:
            out[name] = rec
    return out


class Sampler:
    """CPU (user + system seconds, all threads) and RSS of one process over a window."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.t0 = time.monotonic()
        self.c0 = self._cpu()
        self.rss: list[float] = []

    def _cpu(self) -> float:
        t = self.proc.cpu_times()
        return t.user + t.system

    def sample_rss(self) -> None:
        self.rss.append(self.proc.memory_info().rss / 1e6)

    def cpu_pct(self) -> tuple[float, float]:
        """(% of one core since the start, elapsed seconds)."""
        elapsed = time.monotonic() - self.t0
        return (self._cpu() - self.c0) / elapsed * 100, elapsed


class LogTail:
    """New lines of a growing log file, each stamped with when this process first saw it."""

    def __init__(self, path: Path, *, from_end: bool = True) -> None:
        self.path = path
        self.offset = path.stat().st_size if from_end and path.exists() else 0
        self.partial = b""
        self.lines: list[tuple[float, str]] = []

    def poll(self) -> list[tuple[float, str]]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return []
        if not data:
            return []
        now = time.time()
        self.offset += len(data)
        data = self.partial + data
        *complete, self.partial = data.split(b"\n")
        new = [(now, line.decode(errors="replace")) for line in complete]
        self.lines.extend(new)
        return new


# ---- inotify (no dependency: the bench must not lean on the daemon's own watcher) ----------

IN_MODIFY = 0x2
IN_CLOSE_WRITE = 0x8
IN_MOVED_FROM = 0x40
IN_MOVED_TO = 0x80
IN_CREATE = 0x100
_EVENT = ctypes.sizeof(ctypes.c_int) + 3 * ctypes.sizeof(ctypes.c_uint32)


class DirWatch:
    """Records (time, mask, name) of inotify events in one directory, from a thread."""

    def __init__(self, path: Path, mask: int = IN_CREATE | IN_MOVED_TO) -> None:
        self.fd = _libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        if _libc.inotify_add_watch(self.fd, os.fsencode(path), mask) < 0:
            err = ctypes.get_errno()
            os.close(self.fd)
            raise OSError(err, f"inotify_add_watch {path}")
        self.events: list[tuple[float, int, str]] = []
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="dirwatch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        poller = select.poll()
        poller.register(self.fd, select.POLLIN)
        while not self._stop:
            if not poller.poll(200):
                continue
            try:
                data = os.read(self.fd, 1 << 16)
            except OSError as exc:
                if exc.errno == errno.EAGAIN:
                    continue
                return
            now = time.time()
            i = 0
            while i + _EVENT <= len(data):
                _wd, mask, _cookie, length = (int.from_bytes(data[i + k:i + k + 4], "little") for k in (0, 4, 8, 12))
                name = data[i + _EVENT:i + _EVENT + length].rstrip(b"\0").decode(errors="replace")
                self.events.append((now, mask, name))
                i += _EVENT + length

    def close(self) -> None:
        self._stop = True
        self._thread.join(timeout=2)
        os.close(self.fd)

    def count(self, name: str, mask: int, t0: float, t1: float) -> int:
        return sum(1 for t, m, n in list(self.events) if n == name and m & mask and t0 <= t < t1)
