"""Host-health sampling with psutil: CPU (total, per core, per process), load, memory, swap, disk
per configured mount, temperature where the host exposes it, the top processes, service checks.

Blocking: the daemon calls `HealthSampler.sample` through `anyio.to_thread`. Decisions (score,
label, hysteresis alerts) are in policies/health.py. One tick, every `[health].interval`:

    sampler = HealthSampler(cfg.health)               # once; keep it (per-process CPU needs it)
    runs = {run.pid: (job.name, job.settings.expected_load) for each live run}
    sample = await anyio.to_thread.run_sync(sampler.sample, runs)
    verdict = evaluate(sample, cfg.health, state); state = verdict.state
    for a in verdict.fire:  book.fire(None, a.key, severity=a.severity, title=a.title,
                                      detail=a.detail, now=sample.ts)
    for key in verdict.clear: book.resolve(key, sample.ts, "back within limits")
    host = host_status(verdict, sample)               # status.json "host"
    save_sample(history.engine, sample_row(sample, verdict)); now and then prune_samples(...)

On reload, assign `sampler.settings = new_cfg.health` (the process cache survives). After a
restart, seed the hysteresis with the host alerts the alert book restored, so they can clear:
`HealthState(firing={k: a.severity for k, a in book.active.items() if k.startswith("host:")})`.
"""

from __future__ import annotations

import fnmatch
import logging
import math
import os
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import psutil

from policies.health import HealthVerdict, HostSample, ProcInfo, host_status
from status.samples import HostSampleRow
from supervisor import _procscan
from supervisor._health_checks import run_checks
from supervisor.config import HealthSettings

__all__ = ["HealthSampler", "RunMap", "host_status", "read_temperature", "run_checks",
           "sample_row"]

log = logging.getLogger(__name__)

_CpuTimes = Any  # psutil's platform-specific scputimes named tuple

RunMap = Mapping[int, tuple[str, Sequence[str]]]
"""Run-leader pid -> (job name, the job's expected_load globs)."""

# Sensors that measure the CPU package, best first; otherwise the hottest sensor is used.
_CPU_SENSORS = ("coretemp", "k10temp", "zenpower", "cpu_thermal", "cpu-thermal", "soc_thermal",
                "acpitz")


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class _Proc:
    pid: int
    ppid: int
    name: str
    cpu_pct: float
    rss: int
    cpu_seconds: float = 0.0


def read_temperature() -> tuple[float | None, str]:
    """(degrees C, "chip/label") of the CPU, or (None, "unavailable"); never raises."""
    try:
        sensors = psutil.sensors_temperatures()
    except Exception:  # absent on some platforms, unreadable in some containers
        log.debug("no temperature sensors", exc_info=True)
        return None, "unavailable"
    readings = {chip: [(entry.label, float(entry.current)) for entry in entries
                       if entry.current is not None and math.isfinite(entry.current)
                       and -40 < entry.current < 150]
                for chip, entries in (sensors or {}).items()}
    readings = {chip: values for chip, values in readings.items() if values}
    if not readings:
        return None, "unavailable"
    chips = [c for c in _CPU_SENSORS if c in readings][:1] or list(readings)
    value, chip, label = max((v, c, lab) for c in chips for lab, v in readings[c])
    return round(value, 1), f"{chip}/{label}" if label else chip


def _disk_pct(mount: str) -> float | None:
    try:
        return round(float(psutil.disk_usage(mount).percent), 1)
    except OSError:
        return None


def _swap_pct() -> float:
    try:
        return round(float(psutil.swap_memory().percent), 1)
    except (OSError, RuntimeError):  # no /proc/swaps or vmstat in some containers
        return 0.0


def _busy_pct(before: _CpuTimes, after: _CpuTimes) -> float:
    """CPU busy % between two cpu_times() readings (psutil's own formula, without its globals)."""
    def total(t: _CpuTimes) -> float:
        return float(sum(t) - getattr(t, "guest", 0.0) - getattr(t, "guest_nice", 0.0))

    def idle(t: _CpuTimes) -> float:
        return float(t.idle + getattr(t, "iowait", 0.0))

    elapsed = total(after) - total(before)
    if elapsed <= 0:
        return 0.0
    busy = elapsed - (idle(after) - idle(before))
    return round(min(100.0, max(0.0, 100.0 * busy / elapsed)), 1)


class HealthSampler:
    """Measures the host; keeps psutil.Process objects so per-process CPU % spans samples.

    The first `sample()` primes the counters: its CPU figures are 0.
    """

    def __init__(self, settings: HealthSettings, *,
                 clock: Callable[[], datetime] = _utcnow) -> None:
        self.settings = settings
        self._clock = clock
        self._procs: dict[int, psutil.Process] = {}
        self._fast = _procscan.available()
        self._meter = _procscan.CpuMeter()
        self._cpu_before: _CpuTimes | None = None
        self._per_cpu_before: list[_CpuTimes] | None = None

    def sample(self, runs: RunMap) -> HostSample:
        """Measure everything once; `runs` maps run-leader pids to (job, expected_load)."""
        now = self._clock()
        cpu_pct, per_cpu = self._cpu()
        try:
            load1, load5, load15 = psutil.getloadavg()
        except OSError:
            load1 = load5 = load15 = 0.0
        temp_c, temp_source = read_temperature()
        procs, run_cpu = self._processes(runs)
        n = self.settings.top_n
        return HostSample(
            ts=now,
            cpu_pct=cpu_pct,
            per_cpu=per_cpu,
            cores=psutil.cpu_count() or 1,
            load1=round(load1, 2), load5=round(load5, 2), load15=round(load15, 2),
            mem_pct=round(psutil.virtual_memory().percent, 1),
            swap_pct=_swap_pct(),
            disks={mount: _disk_pct(mount) for mount in self.settings.mounts},
            temp_c=temp_c,
            temp_source=temp_source,
            top_cpu=tuple(sorted(procs, key=lambda p: (-p.cpu_pct, p.pid))[:n]),
            top_mem=tuple(sorted(procs, key=lambda p: (-p.rss, p.pid))[:n]),
            expected=tuple(sorted((p for p in procs if p.expected),
                                  key=lambda p: (-p.cpu_pct, p.pid))),
            checks=run_checks(self.settings.checks),
            run_cpu_seconds=run_cpu,
        )

    def _cpu(self) -> tuple[float, tuple[float, ...]]:
        now, per_now = psutil.cpu_times(), psutil.cpu_times(percpu=True)
        before, per_before = self._cpu_before, self._per_cpu_before
        self._cpu_before, self._per_cpu_before = now, per_now
        if before is None or per_before is None or len(per_before) != len(per_now):
            return 0.0, tuple(0.0 for _ in per_now)
        return _busy_pct(before, now), tuple(_busy_pct(b, a) for b, a in zip(per_before, per_now))

    def _processes(self, runs: RunMap) -> tuple[list[ProcInfo], dict[int, float]]:
        raw = self._scan_fast() if self._fast else self._scan_psutil()
        return _attribute(raw, runs)

    def _scan_fast(self) -> list[_Proc]:
        procs = _procscan.scan()
        pct = self._meter.percents(procs)
        return [_Proc(p.pid, p.ppid, p.name, pct[p.pid], p.rss, p.cpu_seconds) for p in procs]

    def _scan_psutil(self) -> list[_Proc]:
        seen: dict[int, psutil.Process] = {}
        raw: list[_Proc] = []
        for pid in psutil.pids():
            proc = self._procs.get(pid)
            try:
                if proc is None or not proc.is_running():  # new, or the pid was reused
                    proc = psutil.Process(pid)
                with proc.oneshot():
                    times = proc.cpu_times()
                    info = _Proc(pid, proc.ppid(), proc.name(), proc.cpu_percent(None),
                                 proc.memory_info().rss, times.user + times.system)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            seen[pid] = proc
            raw.append(info)
        self._procs = seen
        return raw


def _attribute(raw: Sequence[_Proc], runs: RunMap) -> tuple[list[ProcInfo], dict[int, float]]:
    """Each process with its job (if any) and whether it is expected load; CPU s per run."""
    owner = _owners(raw, runs)
    leader_of = _leaders(raw, runs)
    run_cpu: dict[int, float] = defaultdict(float)
    out = []
    for p in raw:
        job, globs = owner.get(p.pid, (None, ()))
        expected = job is not None and any(fnmatch.fnmatchcase(p.name, g) for g in globs)
        out.append(ProcInfo(p.pid, p.name, round(p.cpu_pct, 1), p.rss, job, expected))
        if p.pid in leader_of:
            run_cpu[leader_of[p.pid]] += p.cpu_seconds
    return out, dict(run_cpu)


def _owners(procs: Sequence[_Proc], runs: RunMap) -> dict[int, tuple[str, Sequence[str]]]:
    """Which run each process belongs to: the leader's descendants, plus processes that left the
    tree (daemonised, re-parented) but stayed in the run's session (each run is its own)."""
    children: dict[int, list[int]] = defaultdict(list)
    for p in procs:
        children[p.ppid].append(p.pid)
    owner: dict[int, tuple[str, Sequence[str]]] = {}
    for leader, job in runs.items():
        stack = [leader]
        while stack:
            pid = stack.pop()
            if pid not in owner:
                owner[pid] = job
                stack.extend(children.get(pid, ()))
    if runs:
        for p in procs:
            if p.pid not in owner:
                try:
                    sid = os.getsid(p.pid)
                except OSError:
                    continue
                if sid in runs:
                    owner[p.pid] = runs[sid]
    return owner


def _leaders(procs: Sequence[_Proc], runs: RunMap) -> dict[int, int]:
    """Process pid -> the leader pid of the run whose tree it is in (for per-run CPU)."""
    children: dict[int, list[int]] = defaultdict(list)
    for p in procs:
        children[p.ppid].append(p.pid)
    out: dict[int, int] = {}
    for leader in runs:
        stack = [leader]
        while stack:
            pid = stack.pop()
            if pid not in out:
                out[pid] = leader
                stack.extend(children.get(pid, ()))
    return out


def sample_row(sample: HostSample, verdict: HealthVerdict) -> HostSampleRow:
    """The history row of a scored sample."""
    return HostSampleRow(ts=sample.ts, cpu_pct=sample.cpu_pct, load1=sample.load1,
                         mem_pct=sample.mem_pct, swap_pct=sample.swap_pct,
                         disk=dict(sample.disks), temp_c=sample.temp_c, score=verdict.score,
                         label=verdict.label.value)
