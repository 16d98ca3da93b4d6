"""What the host can tell about a run's processes (psutil), for stall and crash details."""

from __future__ import annotations

import os
import signal

import psutil


def signal_name(returncode: int | None) -> str | None:
    """'SIGKILL' for a negative Popen return code, else None."""
    if returncode is None or returncode >= 0:
        return None
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"signal {-returncode}"


def describe_process(pid: int) -> str:
    """'sleeping, 3 threads, 12.3 MB RSS' or 'gone' (the leader only: O(1), no table scan)."""
    try:
        proc = psutil.Process(pid)
        with proc.oneshot():
            status = proc.status()
            threads = proc.num_threads()
            rss = proc.memory_info().rss
    except psutil.NoSuchProcess:
        return "gone"
    except psutil.AccessDenied:
        return "not inspectable (access denied)"
    return f"{status}, {threads} threads, {rss / 1e6:.1f} MB RSS"


def group_alive(pgid: int) -> bool:
    """Whether any process is left in the process group."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def signal_group(pgid: int, sig: signal.Signals) -> bool:
    """Send `sig` to a whole process group; False when the group is gone."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    return True
