"""`GET /metrics`: Prometheus exposition read from the daemon's memory at scrape time."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from status.models import HostStatus, JobState
from tests import _procs as P
from tests.supervisor.harness import job, reach
from tests.supervisor.test_api import GOOD, Served, serving

S = JobState


async def scrape(s: Served, accept: str = "") -> dict[str, list[tuple[dict[str, str], float]]]:
    reply = await s.tcp.get("/metrics", headers={**GOOD, "Accept": accept})
    assert reply.status_code == 200, reply.text
    families = text_string_to_metric_families(reply.text)
    out: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in families:
        for sample in family.samples:
            out.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return out


def value(metrics: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float:
    matches = [v for lab, v in metrics.get(name, []) if all(lab.get(k) == x for k, x in labels.items())]
    assert len(matches) == 1, (name, labels, metrics.get(name))
    return matches[0]


async def test_metrics_cover_jobs_alerts_host_and_the_outbox(tmp_path: Path) -> None:
    tables = (job(tmp_path, "svc", P.BEATS_FOREVER, kind="service"),
              job(tmp_path, "crashy", P.CRASH_AT_START),
              job(tmp_path, "stuck", P.BEATS_NO_PROGRESS, stall_after="300ms"))
    async with serving(tmp_path, *tables) as s:
        d = s.daemon
        await reach(d, "crashy", S.CRASHED)
        await reach(d, "stuck", S.STALLED)
        await reach(d, "svc", S.RUNNING)
        await d.wait_until(lambda: d.hostwatch is not None and d.hostwatch.status is not None, 10)
        await d.wait_until(lambda: d.jobs["svc"].run.last_beat_at is not None, 10)

        m = await scrape(s)

        assert value(m, "proofwatch_job_state", job="stuck", state="STALLED") == 1
        assert value(m, "proofwatch_job_state", job="stuck", state="RUNNING") == 0
        assert value(m, "proofwatch_job_state", job="crashy", state="CRASHED") == 1
        assert 0 <= value(m, "proofwatch_job_heartbeat_age_seconds", job="svc") < 10
        assert value(m, "proofwatch_job_progress_age_seconds", job="stuck") >= 0.3
        assert value(m, "proofwatch_job_progress", job="svc", counter="ticks") >= 1
        assert value(m, "proofwatch_job_restarts_total", job="crashy") == 0
        assert value(m, "proofwatch_job_run_duration_seconds", job="svc") > 0
        assert value(m, "proofwatch_job_last_run_duration_seconds", job="crashy", state="CRASHED") >= 0
        assert value(m, "proofwatch_alerts_firing", severity="critical") == 2  # crashed + stalled
        assert value(m, "proofwatch_alerts_firing", severity="warning") == 0
        assert 0 <= value(m, "proofwatch_host_health_score") <= 100
        assert 0 <= value(m, "proofwatch_host_cpu_percent") <= 100
        assert 0 < value(m, "proofwatch_host_memory_percent") <= 100
        assert 0 < value(m, "proofwatch_host_disk_used_percent", mount="/") <= 100
        assert value(m, "proofwatch_notify_outbox_depth") == 0
        assert value(m, "process_resident_memory_bytes") > 10_000_000  # the daemon's own

        d.alerts.acknowledge("stuck:stalled", d.clock.now())
        after = await scrape(s)
        assert value(after, "proofwatch_alerts_firing", severity="critical") == 1
        assert value(after, "proofwatch_alerts_acknowledged", severity="critical") == 1


async def test_metrics_are_read_at_scrape_time(tmp_path: Path) -> None:
    async with serving(tmp_path, job(tmp_path, "ok", P.EXIT_OK)) as s:
        d = s.daemon
        await d.wait_until(lambda: d.hostwatch is not None and d.hostwatch.status is not None, 10)
        assert d.hostwatch is not None
        now = d.clock.now()
        d.hostwatch.status = HostStatus(  # what the next sample would say, set by hand
            score=42, label="WARNING", sampled_at=now - timedelta(seconds=3),
            sample={"cpu_pct": 97.5, "mem_pct": 50.0, "swap_pct": 1.0, "temp_c": 88.5,
                    "load": [3.5, 2.0, 1.0], "disks": {"/": 91.0, "/gone": "unavailable"}})

        m = await scrape(s)

        assert value(m, "proofwatch_host_health_score") == 42
        assert value(m, "proofwatch_host_health_label", label="WARNING") == 1
        assert value(m, "proofwatch_host_temperature_celsius") == 88.5
        assert value(m, "proofwatch_host_cpu_percent") == 97.5
        assert value(m, "proofwatch_host_load1") == 3.5
        assert value(m, "proofwatch_host_disk_used_percent", mount="/") == 91.0
        assert "/gone" not in {lab["mount"] for lab, _ in m["proofwatch_host_disk_used_percent"]}
        assert value(m, "proofwatch_host_sample_age_seconds") >= 3


async def test_metrics_speak_openmetrics_when_asked(tmp_path: Path) -> None:
    async with serving(tmp_path, job(tmp_path, "ok", P.EXIT_OK)) as s:
        plain = await s.tcp.get("/metrics", headers=GOOD)
        assert plain.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
        om = await s.tcp.get("/metrics", headers={**GOOD, "Accept": "application/openmetrics-text; version=1.0.0"})
        assert om.headers["content-type"].startswith("application/openmetrics-text; version=1.0.0")
        assert om.text.rstrip().endswith("# EOF")
