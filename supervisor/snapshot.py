"""Building the status.json document from the daemon's in-memory state."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from policies.stall import stall_deadline
from status.models import (
    AlertStatus,
    FleetStatus,
    HostStatus,
    JobState,
    JobStatus,
    NotifyStatus,
    RunSummary,
    StatusDocument,
    StoreStatus,
    SupervisorStatus,
)
from supervisor.runs import JobRuntime, RunState


def job_status(job: JobRuntime) -> JobStatus:
    """One job's entry in status.json (built unvalidated: every field comes from the daemon's
    own typed state, and this runs for every job at every status write)."""
    run = job.run or job.last_run
    fields: dict[str, object] = {
        "state": job.state,
        "kind": job.settings.kind,
        "restarts": job.restarts,
        "next_start_at": _next_start(job),
        "error": job.error,
        "message": job.waiting if run is None else "",
    }
    if run is not None:
        deadline = None
        if job.run is not None and run.last_progress_at and run.state == JobState.RUNNING:
            deadline = stall_deadline(run.last_progress_at, job.settings.stall_after)
        fields.update(
            run_id=run.run_id,
            pid=run.pid if job.run is not None else None,
            adopted=run.adopted,
            started_at=run.started_at,
            ended_at=run.ended_at,
            last_heartbeat_at=run.last_beat_at,
            last_progress_at=run.last_progress_at,
            progress=dict(run.progress),
            phase=run.phase,
            message=job.waiting if job.state == JobState.PENDING and job.waiting else run.message,
            blocker=run.blocker,
            exit_code=run.exit_code,
            signal=run.signal,
            error=job.error or run.error,
            stall_deadline=deadline,
            proofs=list(run.proofs),
            run_dir=str(run.run_dir),
        )
    return JobStatus.model_construct(**fields)


def _next_start(job: JobRuntime) -> datetime | None:
    if job.run is not None:
        return None
    times = [t for t in (job.next_start_at, job.next_fire_at) if t is not None]
    return min(times) if times else None


def run_summary(run: RunState) -> RunSummary:
    """A finished run in the `recent` list."""
    return RunSummary(
        job=run.job,
        run_id=run.run_id,
        state=run.state,
        started_at=run.started_at,
        ended_at=run.ended_at,
        exit_code=run.exit_code,
        error=run.error,
    )


def build_document(
    *,
    now: datetime,
    supervisor: SupervisorStatus,
    jobs: Iterable[JobRuntime],
    alerts: list[AlertStatus],
    recent: Sequence[RunSummary],
    host: HostStatus | None = None,
    notify: NotifyStatus | None = None,
    store: StoreStatus | None = None,
    fleet: FleetStatus | None = None,
) -> StatusDocument:
    """The whole status.json document."""
    return StatusDocument(
        updated_at=now,
        supervisor=supervisor,
        host=host or HostStatus(),
        jobs={j.name: job_status(j) for j in jobs},
        alerts=alerts,
        recent=list(recent),
        notify=notify or NotifyStatus(),
        store=store or StoreStatus(),
        fleet=fleet,
    )
