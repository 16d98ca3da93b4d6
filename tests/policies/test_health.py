"""policies/health.py driven by recorded samples: hysteresis, score and labels, attribution."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from policies.health import (
    CheckResult,
    HealthLabel,
    HealthState,
    HealthVerdict,
    HostSample,
    ProcInfo,
    evaluate,
    host_status,
    label,
    sample_dict,
    score,
)
from status.models import Severity
from supervisor.config import HealthSettings

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)
LIMITS = HealthSettings()  # for_samples 3, disk/mem 90 %, 85 degC, CPU busy 90 %, load 2/core

QEMU = ProcInfo(123, "qemu-system-x86", 380.0, 2_000_000_000, job="emulator", expected=True)
STRESS = ProcInfo(456, "stress", 199.0, 5_000_000)
INGEST = ProcInfo(789, "python3.11", 60.0, 80_000_000, job="ingestor")


def quiet(**changes: Any) -> HostSample:
    """A calm 4-core host, with `changes` applied."""
    base = HostSample(ts=T0, cpu_pct=12.0, cores=4, load1=0.5, load5=0.4, load15=0.3,
                      mem_pct=40.0, swap_pct=0.0, disks={"/": 50.0}, temp_c=48.0,
                      temp_source="coretemp/Package id 0")
    return replace(base, **changes)


def run(samples: Iterable[HostSample], limits: Any = LIMITS,
        state: HealthState | None = None) -> list[HealthVerdict]:
    """Evaluate samples in order, threading the state, one verdict per sample."""
    state = state or HealthState()
    out = []
    for i, sample in enumerate(samples):
        verdict = evaluate(replace(sample, ts=T0 + timedelta(seconds=10 * i)), limits, state)
        state = verdict.state
        out.append(verdict)
    return out


def fired(verdicts: list[HealthVerdict]) -> list[list[str]]:
    return [[a.key for a in v.fire] for v in verdicts]


FULL = quiet(disks={"/": 93.0})


# --- hysteresis ------------------------------------------------------------------------------

def test_single_spike_does_not_fire() -> None:
    verdicts = run([quiet(), FULL, quiet(), quiet(), FULL, quiet()])
    assert fired(verdicts) == [[]] * 6
    assert all(not v.clear for v in verdicts)
    assert "disk / at 93% (max 90%)" in verdicts[1].reasons  # the spike still shows in the score


def test_breach_fires_on_the_nth_consecutive_sample_and_only_once() -> None:
    verdicts = run([FULL] * 5)
    assert fired(verdicts) == [[], [], ["host:disk:/"], [], []]
    alert = verdicts[2].fire[0]
    assert alert.severity is Severity.WARNING
    assert alert.title == "host: disk / at 93% (max 90%)"
    assert "3 consecutive" in alert.detail
    assert dict(verdicts[-1].state.firing) == {"host:disk:/": Severity.WARNING}


def test_interrupted_streak_starts_over() -> None:
    assert fired(run([FULL, FULL, quiet(), FULL, FULL])) == [[]] * 5


def test_clears_only_after_n_good_samples_and_a_dip_does_not_clear() -> None:
    verdicts = run([FULL] * 3 + [quiet(), FULL, quiet(), quiet(), quiet(), quiet()])
    assert fired(verdicts)[2] == ["host:disk:/"]
    assert [v.clear for v in verdicts[3:]] == [[], [], [], [], ["host:disk:/"], []]
    assert all(not v.fire for v in verdicts[3:])  # back above the line while firing: no re-raise
    assert verdicts[-1].state == HealthState()


def test_escalates_severity_while_firing() -> None:
    verdicts = run([FULL] * 3 + [quiet(disks={"/": 97.0})] * 2)
    assert fired(verdicts) == [[], [], ["host:disk:/"], ["host:disk:/"], []]
    assert verdicts[3].fire[0].severity is Severity.CRITICAL


def test_condition_that_disappears_clears_like_a_good_sample() -> None:
    gone = quiet(disks={})  # the mount was removed from the config
    verdicts = run([FULL] * 3 + [gone] * 3)
    assert [v.clear for v in verdicts[3:]] == [[], [], ["host:disk:/"]]


def test_alert_restored_after_a_restart_clears_once_the_host_is_calm() -> None:
    restored = HealthState(firing={"host:disk:/": Severity.WARNING})
    verdicts = run([quiet()] * 3, state=restored)
    assert [v.clear for v in verdicts] == [[], [], ["host:disk:/"]]
    assert run([FULL], state=restored)[0].fire == []  # still firing: nothing new to raise


def test_for_samples_one_fires_and_clears_at_once() -> None:
    verdicts = run([FULL, quiet()], LIMITS.model_copy(update={"for_samples": 1}))
    assert fired(verdicts) == [["host:disk:/"], []]
    assert verdicts[1].clear == ["host:disk:/"]


# --- score and label -------------------------------------------------------------------------

@pytest.mark.parametrize(("value", "expected"), [
    (100, "HEALTHY"), (80, "HEALTHY"), (79, "DEGRADED"), (50, "DEGRADED"), (49, "WARNING"),
    (20, "WARNING"), (19, "CRITICAL"), (15, "CRITICAL"), (0, "CRITICAL"),
], ids=lambda v: str(v))
def test_label_boundaries(value: int, expected: str) -> None:
    assert label(value) == expected
    assert isinstance(label(value), HealthLabel)


@pytest.mark.parametrize(("sample", "expected"), [
    pytest.param(quiet(), 100, id="calm"),
    pytest.param(quiet(disks={"/": 80.0}), 100, id="disk-at-soft-limit"),
    pytest.param(quiet(disks={"/": 90.0}), 70, id="disk-at-max"),
    pytest.param(quiet(disks={"/": 100.0}), 40, id="disk-full"),
    pytest.param(quiet(disks={"/": 100.0}, mem_pct=100.0), 0, id="disk-and-memory-full"),
    pytest.param(quiet(mem_pct=95.0), 55, id="memory-past-max"),
    pytest.param(quiet(temp_c=85.0), 70, id="temp-at-max"),
    pytest.param(quiet(temp_c=None, temp_source="unavailable"), 100, id="temp-unavailable"),
    pytest.param(quiet(cpu_pct=90.0, top_cpu=(STRESS,)), 75, id="cpu-busy-unexpected"),
    pytest.param(quiet(cpu_pct=97.0, top_cpu=(QEMU,), expected=(QEMU,)), 100, id="cpu-expected"),
    pytest.param(quiet(checks={"web": CheckResult(False, "HTTP 503")}), 75, id="failed-check"),
    pytest.param(quiet(checks={"nginx": CheckResult(None, "no systemctl")}), 100,
                 id="unavailable-check"),
])
def test_score_follows_the_documented_formula(sample: HostSample, expected: int) -> None:
    assert score(sample, LIMITS) == expected
    verdict = evaluate(sample, LIMITS, HealthState())
    assert verdict.score == expected
    assert verdict.label == label(expected)


def test_disk_and_memory_full_is_critical_with_the_worst_reason_first() -> None:
    verdict = evaluate(quiet(disks={"/": 100.0, "/data": 95.0}, mem_pct=100.0), LIMITS,
                       HealthState())
    assert (verdict.score, verdict.label) == (0, HealthLabel.CRITICAL)
    assert verdict.reasons[:3] == ["disk / at 100% (max 90%)", "memory at 100% (max 90%)",
                                   "disk /data at 95% (max 90%)"]


# --- attribution -----------------------------------------------------------------------------

def busy_with(*procs: ProcInfo, cpu: float = 97.0, **changes: Any) -> HostSample:
    return quiet(cpu_pct=cpu, top_cpu=tuple(sorted(procs, key=lambda p: -p.cpu_pct)),
                 expected=tuple(p for p in procs if p.expected), **changes)


def test_expected_load_is_reported_not_alerted() -> None:
    verdicts = run([busy_with(QEMU, temp_c=91.0, load1=4.0)] * 5)
    assert fired(verdicts) == [[]] * 5
    reasons = verdicts[-1].reasons
    assert "CPU 97% — expected: emulator's qemu-system-x86 (pid 123)" in reasons
    assert ("temperature 91°C (max 85°C) — expected: emulator's qemu-system-x86 (pid 123)"
            in reasons)
    assert not any(r.startswith("load") for r in reasons)
    assert verdicts[-1].label == HealthLabel.HEALTHY


def test_unexpected_burner_alerts_naming_pid_name_cpu_and_job() -> None:
    sample = busy_with(STRESS, INGEST, replace(QEMU, cpu_pct=10.0), cpu=98.0, cores=2)
    verdicts = run([sample] * 3)
    assert fired(verdicts) == [[], [], ["host:cpu"]]
    alert = verdicts[2].fire[0]
    unexpected, _, expected = alert.title.partition("; expected:")
    assert "stress (pid 456, 199% CPU)" in unexpected
    assert "python3.11 (pid 789, 60% CPU, job ingestor)" in unexpected
    assert "pid 123" not in unexpected and "emulator's qemu-system-x86 (pid 123)" in expected
    assert "pid 456" in alert.detail and "job ingestor" in alert.detail
    assert verdicts[2].label != HealthLabel.HEALTHY


def test_heat_from_an_unexpected_process_alerts_and_names_it() -> None:
    hot = busy_with(STRESS, cpu=60.0, temp_c=92.0)
    verdicts = run([hot] * 3)
    assert fired(verdicts) == [[], [], ["host:temp"]]
    assert "stress (pid 456, 199% CPU)" in verdicts[2].fire[0].title
    assert "coretemp" in verdicts[2].fire[0].detail


def test_heat_with_no_busy_process_still_alerts() -> None:
    verdicts = run([quiet(temp_c=97.0)] * 3)
    assert fired(verdicts)[2] == ["host:temp"]
    assert verdicts[2].fire[0].severity is Severity.CRITICAL
    assert "no single process stands out" in verdicts[2].fire[0].title


def test_unexpected_load_per_core_alerts_but_expected_load_does_not() -> None:
    assert fired(run([quiet(load1=9.0, top_cpu=(STRESS,))] * 3))[2] == ["host:load"]
    assert fired(run([busy_with(QEMU, cpu=60.0, load1=9.0)] * 3)) == [[]] * 3


def test_temperature_unavailable_never_errors_or_alerts() -> None:
    sample = busy_with(STRESS, temp_c=None, temp_source="unavailable")
    verdicts = run([sample] * 4)
    assert all("host:temp" not in v.state.firing for v in verdicts)
    assert not any("temperature" in r for r in verdicts[-1].reasons)
    doc = host_status(verdicts[-1], sample)
    assert doc.sample["temp_c"] == "unavailable"
    assert doc.sample["temp_source"] == "unavailable"


# --- checks and unavailable mounts -----------------------------------------------------------

def test_failed_check_fires_with_hysteresis_and_unavailable_never_does() -> None:
    checks = {"web": CheckResult(False, "GET http://x/: HTTP 503"),
              "nginx": CheckResult(None, "systemctl not found")}
    verdicts = run([quiet(checks=checks)] * 3 + [quiet()] * 3)
    assert fired(verdicts) == [[], [], ["host:check:web"], [], [], []]
    alert = verdicts[2].fire[0]
    assert alert.severity is Severity.CRITICAL
    assert "HTTP 503" in alert.title
    assert "check nginx unavailable (systemctl not found)" in verdicts[0].reasons
    assert verdicts[-1].clear == ["host:check:web"]


def test_unavailable_mount_is_reported_not_alerted() -> None:
    verdicts = run([quiet(disks={"/": 50.0, "/data": None})] * 4)
    assert fired(verdicts) == [[]] * 4
    assert "disk /data unavailable" in verdicts[-1].reasons
    assert verdicts[-1].score == 100


# --- status.json -----------------------------------------------------------------------------

def test_host_status_carries_sample_score_label_reasons_and_firing() -> None:
    sample = busy_with(STRESS, QEMU, disks={"/": 93.0, "/mnt": None},
                       checks={"web": CheckResult(True, "HTTP 200 in 3 ms")})
    verdict = run([sample] * 3)[-1]
    doc = host_status(verdict, sample)
    data = json.loads(doc.model_dump_json())
    assert (data["score"], data["label"]) == (verdict.score, verdict.label.value)
    assert data["reasons"] == verdict.reasons
    assert data["firing"] == ["host:disk:/"]
    assert data["sampled_at"].startswith("2026-05-01T12:00")
    assert data["sample"]["disks"] == {"/": 93.0, "/mnt": "unavailable"}
    assert data["sample"]["checks"]["web"] == {"status": "ok", "ok": True,
                                               "detail": "HTTP 200 in 3 ms"}
    assert data["sample"]["top_cpu"][1] == {"pid": 456, "name": "stress", "cpu_pct": 199.0,
                                            "rss": 5_000_000, "job": None, "expected": False}
    assert data["sample"]["expected"][0]["job"] == "emulator"
    assert sample_dict(sample)["load"] == [0.5, 0.4, 0.3]
