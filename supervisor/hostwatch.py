"""The daemon's host-health loop: sample (psutil, off the loop), decide (policies.health),
alert, publish the `host` section of status.json, and keep the downsampled history."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread

from policies.health import HealthState, evaluate
from status.models import HostStatus
from status.samples import prune_samples, save_sample
from supervisor.health import HealthSampler, host_status, sample_row

if TYPE_CHECKING:
    from supervisor.daemon import Daemon

log = logging.getLogger(__name__)
PRUNE_EVERY = timedelta(minutes=10)
HOST_WRITE_EVERY = 3  # with the default 10 s interval: status.json's host section is <= 30 s old


class HostWatch:
    """Samples the host every [health].interval while the daemon runs."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.sampler = HealthSampler(daemon.config.health)
        self.state = HealthState()
        self.status: HostStatus | None = None
        self._pruned_at: datetime | None = None
        self._ticks = 0

    def restore(self) -> None:
        """Seed the hysteresis with host alerts restored from the history, so they can clear."""
        firing = {k: a.severity for k, a in self.daemon.alerts.active.items() if k.startswith("host:")}
        self.state = HealthState(firing=firing)

    def runs(self) -> dict[int, tuple[str, list[str]]]:
        """Leader pid -> (job, expected_load) of every live run."""
        return {
            job.run.pid: (job.name, list(job.settings.expected_load))
            for job in self.daemon.jobs.values()
            if job.run is not None and job.run.pid and not job.run.exited
        }

    async def tick(self) -> None:
        """One sample, one verdict."""
        d = self.daemon
        self.sampler.settings = d.config.health  # follows config reloads
        sample = await anyio.to_thread.run_sync(self.sampler.sample, self.runs())
        interval = d.config.health.interval
        for job in d.jobs.values():  # CPU per run, for "CPU over the stall window"
            run = job.run
            if run is not None and run.pid in sample.run_cpu_seconds:
                run.add_cpu_sample(sample.ts, sample.run_cpu_seconds[run.pid],
                                   timedelta(seconds=job.settings.stall_after + 2 * interval))
        verdict = evaluate(sample, d.config.health, self.state)
        self.state = verdict.state
        for alert in verdict.fire:
            d.alerts.fire(None, alert.key, severity=alert.severity, title=alert.title,
                          detail=alert.detail, now=sample.ts)
        for key in verdict.clear:
            d.alerts.resolve(key, sample.ts, "back within limits")
        self.status = host_status(verdict, sample)
        row = sample_row(sample, verdict)
        row.host = d.hostname
        d.recorder.call(lambda engine: save_sample(engine, row))
        if self._pruned_at is None or sample.ts - self._pruned_at >= PRUNE_EVERY:
            self._pruned_at = sample.ts
            now = sample.ts
            host = d.history.scope  # a shared store: this host's samples; a private one: all (older: host "")
            d.recorder.call(lambda engine: prune_samples(engine, now, host=host))
        # The host section alone is rewritten every HOST_WRITE_EVERY ticks; an alert at once.
        self._ticks += 1
        if verdict.fire or verdict.clear or self._ticks % HOST_WRITE_EVERY == 1:
            d.status.changed(urgent=bool(verdict.fire or verdict.clear))
        d.notify_change()  # a new host status: wakes whoever waits for one (Daemon.wait_until)

    async def serve(self) -> None:
        """Tick every interval until cancelled; a failed sample is logged, never fatal."""
        self.restore()
        while True:
            try:
                await self.tick()
            except Exception:
                log.exception("host health sample failed; next try in %ss", self.daemon.config.health.interval)
            await anyio.sleep(self.daemon.config.health.interval)
