"""Host health: a score, a label and hysteresis alerts from one `HostSample` (pure; no psutil).

supervisor/health.py measures; this module decides. Everything is a function of
(sample, limits, previous state); the sample's own `ts` is the only time used.

Attribution. A process in a supervised run's tree carries its job's name; one whose name matches
that job's `expected_load` globs is *expected*. Process CPU is in percent of one core (like top),
so the expected share of the host is E = sum(expected cpu_pct) / cores, and the unexpected CPU is
U = max(0, cpu_pct - E): what the host would burn without the load the jobs asked for.

Conditions. A *breach* is one sample past a limit; it must hold for `for_samples` consecutive
samples before the alert fires, and be absent for as many before it clears:
    host:disk:<mount>  used % >= disk_max_pct (an unavailable mount is reported, never alerted)
    host:mem           memory used % >= mem_max_pct
    host:swap          swap used % >= swap_max_pct
    host:cpu           U >= cpu_busy_pct (a host made busy by expected load is reported as expected)
    host:load          L >= load_per_core_max, where L = (load1 - E * cores / 100) / cores is the
                       load per core with the expected load's cores taken out
    host:temp          temp_c >= cpu_temp_max, unless expected load dominates (E > 0 and E >= U)
    host:check:<name>  a service check failed (an unavailable check is reported, never alerted)

Score. 100 minus the penalties, rounded and clamped to 0..100. A metric with hard limit H (the
alert threshold) and soft limit S costs
    penalty = weight * clamp((value - S) / (H - S), 0, 2) / 2
that is nothing up to S, half its weight at H and its whole weight at H + (H - S) and beyond:
    metric          value                       S         weight
    disk (each)     used %                      H - 10    60
    memory          used %                      H - 10    60
    swap            used %                      H - 20    20
    temperature     deg C                       H - 15    60 * (1 - min(1, E / cpu_pct))
    CPU             U                           H - 20    50
    load            L                           H / 2     30
    failed check    -                           -         25 each
Labels: >= 80 HEALTHY, >= 50 DEGRADED, >= 20 WARNING, below 20 CRITICAL. The score judges the
latest sample alone; only alerts wait for `for_samples`. Severity: critical for a failed check,
disk or memory past halfway from its limit to 100 %, a temperature 10 degrees past its limit;
warning otherwise (an alert whose severity rises while firing is fired again).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from status.models import HostStatus, Severity

__all__ = [
    "CheckResult", "HealthLabel", "HealthLimits", "HealthState", "HealthVerdict", "HostAlert",
    "HostSample", "ProcInfo", "evaluate", "host_status", "label", "sample_dict", "score",
]

_RANK = {Severity.INFO: 0, Severity.WARNING: 1, Severity.CRITICAL: 2}
_CULPRITS = 3  # processes named in a CPU, load or heat reason
_MIN_CULPRIT_CPU = 1.0  # percent of one core; idler processes are not worth naming


# --- the sample (pure data, filled in by supervisor/health.py) --------------------------------

@dataclass(frozen=True)
class ProcInfo:
    """One process: CPU in percent of one core, resident memory in bytes, its job if any."""

    pid: int
    name: str
    cpu_pct: float
    rss: int
    job: str | None = None
    expected: bool = False


@dataclass(frozen=True)
class CheckResult:
    """A service check's outcome; `ok` is None when it cannot be checked on this host."""

    ok: bool | None
    detail: str = ""

    @property
    def status(self) -> str:
        """'ok', 'failed' or 'unavailable'."""
        return "unavailable" if self.ok is None else "ok" if self.ok else "failed"


@dataclass(frozen=True)
class HostSample:
    """One measurement of the host. Percentages are 0-100; a disk of None is unavailable."""

    ts: datetime
    cpu_pct: float
    cores: int
    load1: float
    load5: float
    load15: float
    mem_pct: float
    swap_pct: float
    disks: Mapping[str, float | None] = field(default_factory=dict)
    temp_c: float | None = None
    temp_source: str = "unavailable"
    per_cpu: tuple[float, ...] = ()
    top_cpu: tuple[ProcInfo, ...] = ()
    top_mem: tuple[ProcInfo, ...] = ()
    expected: tuple[ProcInfo, ...] = ()  # every process counted as expected load
    checks: Mapping[str, CheckResult] = field(default_factory=dict)
    run_cpu_seconds: Mapping[int, float] = field(default_factory=dict)  # leader pid -> tree CPU s

    @property
    def expected_cpu_pct(self) -> float:
        """E: the share of the whole host (0-100) burnt by expected load."""
        return min(100.0, sum(p.cpu_pct for p in self.expected) / max(self.cores, 1))

    @property
    def unexpected_cpu_pct(self) -> float:
        """U: host CPU % not explained by expected load."""
        return max(0.0, self.cpu_pct - self.expected_cpu_pct)


class HealthLimits(Protocol):
    """The thresholds `evaluate` needs; supervisor.config.HealthSettings is one."""

    @property
    def cpu_temp_max(self) -> float: ...
    @property
    def disk_max_pct(self) -> float: ...
    @property
    def mem_max_pct(self) -> float: ...
    @property
    def swap_max_pct(self) -> float: ...
    @property
    def cpu_busy_pct(self) -> float: ...
    @property
    def load_per_core_max(self) -> float: ...
    @property
    def for_samples(self) -> int: ...


# --- verdicts ----------------------------------------------------------------------------------

class HealthLabel(StrEnum):
    """The score in one word."""

    HEALTHY = "HEALTHY"
    DEGRADED = "DEGRADED"
    WARNING = "WARNING"
    CRITICAL = "CRITICAL"


@dataclass(frozen=True)
class HostAlert:
    """A host condition to raise (dedup key like 'host:disk:/')."""

    key: str
    severity: Severity
    title: str
    detail: str


@dataclass(frozen=True)
class HealthState:
    """Hysteresis memory between samples."""

    breaching: Mapping[str, int] = field(default_factory=dict)  # not firing: consecutive breaches
    recovering: Mapping[str, int] = field(default_factory=dict)  # firing: consecutive good samples
    firing: Mapping[str, Severity] = field(default_factory=dict)


@dataclass(frozen=True)
class HealthVerdict:
    """What one sample means: the score and what to raise or clear."""

    score: int
    label: HealthLabel
    reasons: list[str]
    state: HealthState
    fire: list[HostAlert]  # newly firing, or firing at a higher severity than before
    clear: list[str]  # keys that held good for `for_samples` samples


def label(score: int) -> HealthLabel:
    """HEALTHY >= 80, DEGRADED >= 50, WARNING >= 20, else CRITICAL."""
    if score >= 80:
        return HealthLabel.HEALTHY
    if score >= 50:
        return HealthLabel.DEGRADED
    if score >= 20:
        return HealthLabel.WARNING
    return HealthLabel.CRITICAL


# --- penalties and reasons ---------------------------------------------------------------------

def _penalty(value: float, soft: float, hard: float, weight: float) -> float:
    span = hard - soft
    if span <= 0:
        return weight if value >= hard else 0.0
    return weight * min(max((value - soft) / span, 0.0), 2.0) / 2


def _proc(p: ProcInfo, *, cpu: bool = True) -> str:
    parts = [f"pid {p.pid}"]
    if cpu:
        parts.append(f"{p.cpu_pct:.0f}% CPU")
    else:
        parts.append(f"{p.rss / 1e6:.0f} MB")
    if p.job:
        parts.append(f"job {p.job}")
    return f"{p.name} ({', '.join(parts)})"


def _expected_text(sample: HostSample) -> str:
    return ", ".join(f"{p.job}'s {p.name} (pid {p.pid})" for p in sample.expected[:_CULPRITS])


def _culprits(sample: HostSample) -> list[ProcInfo]:
    return [p for p in sample.top_cpu
            if not p.expected and p.cpu_pct >= _MIN_CULPRIT_CPU][:_CULPRITS]


def _culprit_text(sample: HostSample) -> str:
    names = [_proc(p) for p in _culprits(sample)]
    return ", ".join(names) if names else "no single process stands out"


def _load_per_core(sample: HostSample) -> float:
    expected_cores = sum(p.cpu_pct for p in sample.expected) / 100
    return max(0.0, sample.load1 - expected_cores) / max(sample.cores, 1)


def _heat_is_expected(sample: HostSample) -> bool:
    e = sample.expected_cpu_pct
    return e > 0 and e >= sample.unexpected_cpu_pct


@dataclass(frozen=True)
class _Finding:
    penalty: float
    reason: str
    alert: HostAlert | None = None  # set when this sample breaches the hard limit


class _Findings:
    """What one sample shows, metric by metric."""

    def __init__(self, for_samples: int) -> None:
        self.items: list[_Finding] = []
        self.for_samples = for_samples

    def add(self, key: str, penalty: float, reason: str, breach: bool,
            severity: Severity = Severity.WARNING, detail: str = "", *,
            note: bool = False) -> None:
        """Record a metric that costs points or breaches its limit (or a `note`, always kept)."""
        if penalty <= 0 and not breach and not note:
            return
        alert = None
        if breach:
            n = self.for_samples
            held = f"held for {n} consecutive sample{'s' if n != 1 else ''}"
            alert = HostAlert(key, severity, f"host: {reason}",
                              f"{reason}\n{held}" + (f"\n{detail}" if detail else ""))
        self.items.append(_Finding(penalty, reason, alert))


def _findings(sample: HostSample, limits: HealthLimits) -> list[_Finding]:
    found = _Findings(limits.for_samples)
    for name, result in sample.checks.items():
        if result.ok is False:
            found.add(f"host:check:{name}", 25.0, f"check {name} failed: {result.detail}", True,
                      Severity.CRITICAL)
    hard = limits.disk_max_pct
    for mount, pct in sample.disks.items():
        if pct is not None:
            found.add(f"host:disk:{mount}", _penalty(pct, hard - 10, hard, 60),
                      f"disk {mount} at {pct:.0f}% (max {hard:g}%)", pct >= hard,
                      Severity.CRITICAL if pct >= (hard + 100) / 2 else Severity.WARNING)
    hard = limits.mem_max_pct
    top_mem = ", ".join(_proc(p, cpu=False) for p in sample.top_mem[:_CULPRITS])
    top_mem = f"biggest: {top_mem}" if top_mem else ""
    found.add("host:mem", _penalty(sample.mem_pct, hard - 10, hard, 60),
              f"memory at {sample.mem_pct:.0f}% (max {hard:g}%)", sample.mem_pct >= hard,
              Severity.CRITICAL if sample.mem_pct >= (hard + 100) / 2 else Severity.WARNING,
              top_mem)
    hard = limits.swap_max_pct
    found.add("host:swap", _penalty(sample.swap_pct, hard - 20, hard, 20),
              f"swap at {sample.swap_pct:.0f}% (max {hard:g}%)", sample.swap_pct >= hard,
              Severity.WARNING, top_mem)
    _heat(sample, limits, found)
    _cpu(sample, limits, found)
    _load(sample, limits, found)
    return found.items


def _heat(sample: HostSample, limits: HealthLimits, found: _Findings) -> None:
    temp, hard = sample.temp_c, limits.cpu_temp_max
    if temp is None:  # the host exposes no sensor: nothing to judge, never an error
        return
    share = min(1.0, sample.expected_cpu_pct / sample.cpu_pct) if sample.cpu_pct > 0 else 0.0
    penalty = _penalty(temp, hard - 15, hard, 60 * (1 - share))
    base = f"temperature {temp:.0f}°C (max {hard:g}°C)"
    if _heat_is_expected(sample):
        if temp >= hard:
            found.add("host:temp", penalty, f"{base} — expected: {_expected_text(sample)}", False,
                      note=True)
        return
    found.add("host:temp", penalty, f"{base} — hottest load: {_culprit_text(sample)}",
              temp >= hard, Severity.CRITICAL if temp >= hard + 10 else Severity.WARNING,
              f"sensor: {sample.temp_source}; CPU {sample.cpu_pct:.0f}%")


def _cpu(sample: HostSample, limits: HealthLimits, found: _Findings) -> None:
    busy, unexpected = limits.cpu_busy_pct, sample.unexpected_cpu_pct
    penalty = _penalty(unexpected, busy - 20, busy, 50)
    if penalty > 0:
        also = f"; expected: {_expected_text(sample)}" if sample.expected else ""
        listing = "\n".join(f"  {_proc(p)}" for p in _culprits(sample)) or "  (none stands out)"
        found.add("host:cpu", penalty,
                  f"CPU {sample.cpu_pct:.0f}% (max {busy:g}%) — unexpected: "
                  f"{_culprit_text(sample)}{also}", unexpected >= busy, Severity.WARNING,
                  f"unexpected CPU {unexpected:.0f}% of the host; top processes:\n{listing}")
    elif sample.cpu_pct >= busy:  # busy only because of load the jobs declared
        found.add("host:cpu", 0.0, f"CPU {sample.cpu_pct:.0f}% — expected: "
                  f"{_expected_text(sample)}", False, note=True)


def _load(sample: HostSample, limits: HealthLimits, found: _Findings) -> None:
    hard, per_core = limits.load_per_core_max, _load_per_core(sample)
    load = f"load {sample.load1:.1f} on {sample.cores} cores"
    penalty = _penalty(per_core, hard / 2, hard, 30)
    if penalty > 0:
        found.add("host:load", penalty, f"{load}, {per_core:.1f} per core unexpected "
                  f"(max {hard:g}) — {_culprit_text(sample)}", per_core >= hard)
    elif sample.load1 / max(sample.cores, 1) >= hard and sample.expected:
        found.add("host:load", 0.0, f"{load} — expected: {_expected_text(sample)}", False,
                  note=True)


def score(sample: HostSample, limits: HealthLimits) -> int:
    """The health score 0-100 of one sample (formula in the module docstring)."""
    return _score(_findings(sample, limits))


def _score(findings: list[_Finding]) -> int:
    return int(min(100, max(0, round(100 - sum(f.penalty for f in findings)))))


# --- hysteresis --------------------------------------------------------------------------------

def evaluate(sample: HostSample, limits: HealthLimits, previous: HealthState) -> HealthVerdict:
    """Score a sample and decide which host alerts fire or clear (after `for_samples`)."""
    findings = _findings(sample, limits)
    breaches = {f.alert.key: f.alert for f in findings if f.alert is not None}
    need = max(1, limits.for_samples)
    breaching: dict[str, int] = {}
    recovering: dict[str, int] = {}
    firing = dict(previous.firing)
    fire: list[HostAlert] = []
    clear: list[str] = []
    for key in [*breaches, *sorted({*previous.firing, *previous.breaching} - set(breaches))]:
        alert = breaches.get(key)
        if alert is not None and key in firing:
            if _RANK[alert.severity] > _RANK[firing[key]]:
                firing[key] = alert.severity
                fire.append(alert)
        elif alert is not None:
            count = previous.breaching.get(key, 0) + 1
            if count >= need:
                firing[key] = alert.severity
                fire.append(alert)
            else:
                breaching[key] = count
        elif key in firing:
            count = previous.recovering.get(key, 0) + 1
            if count >= need:
                del firing[key]
                clear.append(key)
            else:
                recovering[key] = count
    ordered = sorted(findings, key=lambda f: -f.penalty)  # stable: ties keep their order
    reasons = [f.reason for f in ordered]
    reasons += [f"check {name} unavailable" + (f" ({r.detail})" if r.detail else "")
                for name, r in sample.checks.items() if r.ok is None]
    reasons += [f"disk {m} unavailable" for m, pct in sample.disks.items() if pct is None]
    value = _score(findings)
    return HealthVerdict(value, label(value), reasons, HealthState(breaching, recovering, firing),
                         fire, clear)


# --- status.json -------------------------------------------------------------------------------

def sample_dict(sample: HostSample) -> dict[str, Any]:
    """The sample as JSON-able data for status.json ('unavailable' where the host cannot tell)."""
    return {
        "ts": sample.ts.isoformat(),
        "cpu_pct": sample.cpu_pct,
        "per_cpu": list(sample.per_cpu),
        "cores": sample.cores,
        "load": [sample.load1, sample.load5, sample.load15],
        "mem_pct": sample.mem_pct,
        "swap_pct": sample.swap_pct,
        "disks": {m: "unavailable" if pct is None else pct for m, pct in sample.disks.items()},
        "temp_c": sample.temp_c if sample.temp_c is not None else "unavailable",
        "temp_source": sample.temp_source,
        "expected_cpu_pct": round(sample.expected_cpu_pct, 1),
        "top_cpu": [asdict(p) for p in sample.top_cpu],
        "top_mem": [asdict(p) for p in sample.top_mem],
        "expected": [asdict(p) for p in sample.expected],
        "checks": {name: {"status": r.status, "ok": r.ok, "detail": r.detail}
                   for name, r in sample.checks.items()},
    }


def host_status(verdict: HealthVerdict, sample: HostSample) -> HostStatus:
    """The `host` section of status.json."""
    return HostStatus(score=verdict.score, label=verdict.label.value, reasons=list(verdict.reasons),
                      sample=sample_dict(sample), sampled_at=sample.ts,
                      firing=sorted(verdict.state.firing))
