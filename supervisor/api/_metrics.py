"""`GET /metrics`: Prometheus metrics read from the daemon's memory at scrape time.

A custom collector (no background updating, nothing kept between scrapes): every scrape walks
the jobs, the alert book, the latest host sample and the notifier. prometheus_client is
imported only when /metrics is first scraped.

    proofwatch_info{version,host}                       1
    proofwatch_start_time_seconds                       when the daemon started (unix time)
    proofwatch_job_state{job,state}                     1 for the job's state, 0 for the others
    proofwatch_job_heartbeat_age_seconds{job}           live runs that have heartbeated
    proofwatch_job_progress_age_seconds{job}            live runs with progress
    proofwatch_job_stall_deadline_seconds{job}          seconds until a RUNNING job stalls
    proofwatch_job_progress{job,counter}                the run's progress counters
    proofwatch_job_restarts_total{job}                  restarts since the daemon started
    proofwatch_job_run_duration_seconds{job}            how long the live run has been running
    proofwatch_job_last_run_duration_seconds{job,state} the latest finished run
    proofwatch_job_last_success_timestamp_seconds{job}  when the job last SUCCEEDED
    proofwatch_alerts_firing{severity}                  active, unacknowledged alerts
    proofwatch_alerts_acknowledged{severity}            active, acknowledged alerts
    proofwatch_host_health_score                        0-100 (and _health_label{label} = 1)
    proofwatch_host_cpu_percent, _memory_percent, _swap_percent, _expected_cpu_percent,
    proofwatch_host_load1, _disk_used_percent{mount}, _temperature_celsius (where known)
    proofwatch_host_sample_age_seconds                  how old the host sample is
    proofwatch_notify_outbox_depth                      notifications not delivered yet
    proofwatch_notify_silences                          silences in force
    process_*                                           the daemon's own CPU, memory, fds
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder

from policies.stall import stall_deadline
from status.models import JobState, Severity

if TYPE_CHECKING:
    from supervisor.daemon import Daemon

__all__ = ["DaemonCollector", "make_registry", "render"]


class DaemonCollector:
    """Reads the daemon's in-memory state whenever Prometheus scrapes."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon

    def describe(self) -> Iterator[Metric]:
        return iter(())  # the metric set depends on the jobs: describe nothing, collect late

    def collect(self) -> Iterator[Metric]:
        d = self.daemon
        now = d.clock.now()
        from supervisor.daemon import VERSION

        info = GaugeMetricFamily("proofwatch_info", "The daemon's version and host.", labels=["version", "host"])
        info.add_metric([VERSION, d.hostname], 1)
        yield info
        yield GaugeMetricFamily("proofwatch_start_time_seconds", "When the daemon started (unix time).",
                                value=d.started_at.timestamp())
        yield from self._jobs(now)
        yield from self._alerts()
        yield from self._host(now)
        notifier = d.notifier
        if notifier is not None:
            yield GaugeMetricFamily("proofwatch_notify_outbox_depth",
                                    "Notifications written to the outbox and not delivered yet.",
                                    value=notifier.dispatcher.depth())
            yield GaugeMetricFamily("proofwatch_notify_silences", "Maintenance silences in force.",
                                    value=len(notifier.dispatcher.silences(now)))

    def _jobs(self, now: datetime) -> Iterator[Metric]:
        state = GaugeMetricFamily("proofwatch_job_state", "1 for the state each job is in, 0 for the others.",
                                  labels=["job", "state"])
        beat = GaugeMetricFamily("proofwatch_job_heartbeat_age_seconds",
                                 "Seconds since the live run's last heartbeat.", labels=["job"])
        progress_age = GaugeMetricFamily("proofwatch_job_progress_age_seconds",
                                         "Seconds since the live run last made progress.", labels=["job"])
        deadline = GaugeMetricFamily("proofwatch_job_stall_deadline_seconds",
                                     "Seconds until a RUNNING job is STALLED without more progress.",
                                     labels=["job"])
        counters = GaugeMetricFamily("proofwatch_job_progress", "The live run's progress counters.",
                                     labels=["job", "counter"])
        restarts = CounterMetricFamily("proofwatch_job_restarts", "Restarts since the daemon started.",
                                       labels=["job"])
        running_for = GaugeMetricFamily("proofwatch_job_run_duration_seconds",
                                        "How long the live run has been running.", labels=["job"])
        last = GaugeMetricFamily("proofwatch_job_last_run_duration_seconds",
                                 "How long the latest finished run took, by its final state.",
                                 labels=["job", "state"])
        success = GaugeMetricFamily("proofwatch_job_last_success_timestamp_seconds",
                                    "When the job last SUCCEEDED (unix time).", labels=["job"])
        for name, job in sorted(self.daemon.jobs.items()):
            for s in JobState:
                state.add_metric([name, s.value], 1.0 if job.state == s else 0.0)
            restarts.add_metric([name], job.restarts)
            run = job.run
            if run is not None and not run.exited:
                running_for.add_metric([name], (now - run.started_at).total_seconds())
                if run.last_beat_at is not None:
                    beat.add_metric([name], max(0.0, (now - run.last_beat_at).total_seconds()))
                if run.last_progress_at is not None:
                    progress_age.add_metric([name], max(0.0, (now - run.last_progress_at).total_seconds()))
                    if run.state == JobState.RUNNING:
                        due = stall_deadline(run.last_progress_at, job.settings.stall_after)
                        deadline.add_metric([name], (due - now).total_seconds())
                for counter, value in sorted(run.progress.items()):
                    counters.add_metric([name, counter], value)
            ended = job.last_run
            if ended is not None and ended.ended_at is not None:
                last.add_metric([name, ended.state.value], (ended.ended_at - ended.started_at).total_seconds())
            if job.last_success_at is not None:
                success.add_metric([name], job.last_success_at.timestamp())
        yield from (state, beat, progress_age, deadline, counters, restarts, running_for, last, success)

    def _alerts(self) -> Iterator[Metric]:
        firing = GaugeMetricFamily("proofwatch_alerts_firing", "Active alerts not acknowledged, by severity.",
                                   labels=["severity"])
        acked = GaugeMetricFamily("proofwatch_alerts_acknowledged", "Active alerts acknowledged, by severity.",
                                  labels=["severity"])
        active = list(self.daemon.alerts.active.values())
        for sev in Severity:
            firing.add_metric([sev.value], sum(1 for a in active if a.severity == sev and not a.acknowledged_at))
            acked.add_metric([sev.value], sum(1 for a in active if a.severity == sev and a.acknowledged_at))
        yield firing
        yield acked

    def _host(self, now: datetime) -> Iterator[Metric]:
        watch = self.daemon.hostwatch
        host = watch.status if watch is not None else None
        if host is None or host.score is None:
            return
        yield GaugeMetricFamily("proofwatch_host_health_score", "Host health score, 0-100.", value=host.score)
        label = GaugeMetricFamily("proofwatch_host_health_label",
                                  "1 for the host's health label (HEALTHY, DEGRADED, WARNING, CRITICAL).",
                                  labels=["label"])
        for name in ("HEALTHY", "DEGRADED", "WARNING", "CRITICAL"):
            label.add_metric([name], 1.0 if host.label == name else 0.0)
        yield label
        if host.sampled_at is not None:
            yield GaugeMetricFamily("proofwatch_host_sample_age_seconds", "How old the latest host sample is.",
                                    value=max(0.0, (now - host.sampled_at).total_seconds()))
        sample = host.sample
        for key, metric, doc in (
            ("cpu_pct", "cpu_percent", "Host CPU busy %."),
            ("expected_cpu_pct", "expected_cpu_percent", "Host CPU % burnt by the jobs' expected_load."),
            ("mem_pct", "memory_percent", "Host memory used %."),
            ("swap_pct", "swap_percent", "Host swap used %."),
            ("temp_c", "temperature_celsius", "CPU temperature in degrees C (absent where unknown)."),
        ):
            value = sample.get(key)
            if isinstance(value, (int, float)):
                yield GaugeMetricFamily(f"proofwatch_host_{metric}", doc, value=value)
        load = sample.get("load")
        if isinstance(load, list) and load:
            yield GaugeMetricFamily("proofwatch_host_load1", "1-minute load average.", value=load[0])
        disks = GaugeMetricFamily("proofwatch_host_disk_used_percent", "Disk used % per configured mount.",
                                  labels=["mount"])
        for mount, pct in sorted((sample.get("disks") or {}).items()):
            if isinstance(pct, (int, float)):
                disks.add_metric([mount], pct)
        yield disks


def make_registry(daemon: Daemon) -> CollectorRegistry:
    """A registry with the daemon collector and the daemon's own process metrics."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DaemonCollector(daemon))
    ProcessCollector(registry=registry)
    return registry


def render(registry: CollectorRegistry, accept: str) -> tuple[bytes, str]:
    """The exposition (Prometheus text, or OpenMetrics when asked for) and its content type."""
    encoder, content_type = choose_encoder(accept)
    return encoder(registry), content_type
