"""Idle overhead: what the daemon itself costs while supervising healthy services.

J service jobs (default 50) each heartbeat once a second through workers.sdk with a rising
counter (all RUNNING, nothing to alert). Once every job is RUNNING and a short warm-up has
passed, the bench samples the daemon process (psutil; the daemon alone, not its children) for
`duration` seconds (default 60):

- RSS, sampled once a second (mean, median and max of the samples);
- CPU, as (user + system time) / wall time in % of one core: the mean over the whole window,
  and the median/max of 5-second intervals (the kernel counts CPU time in 10 ms ticks, so a
  1-second interval could only read 0, 1, 2 ... %);
- status.json writes, observed by sampling the file's (inode, mtime_ns) at 20 Hz (writes less
  than 50 ms apart count once, so this is a lower bound; the daemon coalesces non-urgent
  writes to one per `status_min_interval`, 1 s by default).
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

import psutil

from bench._daemon import BenchDaemon
from bench._report import Row, Summary, summarize

NAME = "overhead"
DEFAULT_JOBS = 50
DEFAULT_DURATION = 60.0
WARMUP = 5.0
SAMPLE_EVERY = 1.0  # RSS
CPU_EVERY = 5.0
STAT_EVERY = 0.05
MIB = 1024 * 1024

WORKER = """
import time
from workers.sdk import Run

run = Run.from_env()
i = 0
while True:
    i += 1
    run.beat({"ticks": i}, phase="serve", message=f"tick {i}", force=True)
    time.sleep(1.0)
"""


def _stamp(path: os.PathLike[str]) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns)


def _tree_cpu(procs: list[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def _tree_rss(procs: list[psutil.Process]) -> int:
    total = 0
    for p in procs:
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def run(*, jobs: int | None = None, duration: float | None = None, keep: bool = False,
        **_: Any) -> dict[str, Any]:
    """Sample the daemon with `jobs` heartbeating services for `duration` seconds."""
    n = jobs or DEFAULT_JOBS
    window = duration or DEFAULT_DURATION
    d = BenchDaemon(NAME, keep=keep)
    worker = d.script("tick.py", WORKER)
    names = [f"svc{i:03d}" for i in range(n)]
    for name in names:
        d.job(name, ["python", str(worker)], kind="service", stall_after="30s", startup_grace="60s")
    with d:
        d.wait(lambda: len({e.job for e in d.history.events(to_state="RUNNING")}) >= n,
               60 + n, f"{n} jobs to be RUNNING")
        time.sleep(WARMUP)
        daemon = psutil.Process(d.pid)
        workers = daemon.children(recursive=True)
        mark = max((e.id for e in d.history.events()), default=0)
        rss: list[float] = []
        cpu_pct: list[float] = []
        writes = 0
        last_stamp = _stamp(d.status_path)
        t0 = time.monotonic()
        c0 = sum(daemon.cpu_times()[:2])
        w0 = _tree_cpu(workers)
        t_prev, c_prev = t0, c0
        next_sample = t0 + SAMPLE_EVERY
        end = t0 + window
        while True:
            now = time.monotonic()
            stamp = _stamp(d.status_path)
            if stamp != last_stamp:
                writes += 1
                last_stamp = stamp
            if now >= next_sample:
                rss.append(daemon.memory_info().rss / MIB)
                next_sample += SAMPLE_EVERY
            if now - t_prev >= CPU_EVERY - 0.01:
                c = sum(daemon.cpu_times()[:2])
                cpu_pct.append((c - c_prev) / (now - t_prev) * 100)
                t_prev, c_prev = now, c
            if now >= end:
                break
            d.check_alive()
            time.sleep(min(STAT_EVERY, max(0.0, min(next_sample, end) - time.monotonic())))
        elapsed = time.monotonic() - t0
        cpu_mean = (sum(daemon.cpu_times()[:2]) - c0) / elapsed * 100
        workers_cpu = (_tree_cpu(workers) - w0) / elapsed * 100
        workers_rss = _tree_rss(workers) / MIB
        transitions = [e for e in d.history.events(after_id=mark) if e.to_state]
        status = d.status()
        states = [j.get("state") for j in status.get("jobs", {}).values()]
        running = sum(1 for s in states if s == "RUNNING")
    notes = [
        f"{n} service jobs, each one worker process heartbeating once a second with a rising counter; "
        f"measured for {elapsed:.0f} s after all were RUNNING plus {WARMUP:g} s warm-up.",
        f"For scale: the {len(workers)} worker processes together used {workers_cpu:.1f} % of one core "
        f"and {workers_rss:.0f} MiB RSS.",
    ]
    if transitions or running != n:
        notes.append(f"during the window: {len(transitions)} state transitions; {running}/{n} jobs RUNNING at the end")
    cpu = summarize(cpu_pct)
    cpu = Summary(cpu.n, cpu_mean, cpu.median, cpu.max)  # the mean over the whole window, not of the samples
    rows = [
        Row(NAME, f"daemon RSS with {n} heartbeating jobs", summarize(rss), "MiB"),
        Row(NAME, f"daemon CPU with {n} heartbeating jobs (% of one core; n = 5-s intervals)", cpu, "%"),
        Row(NAME, "status.json writes per second (n = writes seen sampling at 20 Hz; mean = rate)",
            Summary(writes, writes / elapsed, None, None), "/s"),
    ]
    return {"name": NAME, "rows": rows, "notes": notes,
            "samples": {"rss_mib": rss, "cpu_pct": cpu_pct, "status_writes": writes, "elapsed_s": elapsed,
                        "cpu_mean_pct": cpu_mean, "workers_cpu_pct": workers_cpu, "workers_rss_mib": workers_rss,
                        "transitions_in_window": len(transitions), "running_at_end": running,
                        "median_rss_mib": statistics.median(rss) if rss else None},
            "params": {"jobs": n, "duration_s": window, "warmup_s": WARMUP}}
