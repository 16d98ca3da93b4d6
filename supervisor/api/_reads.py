"""Read endpoints: the status document, one job, one run, host samples, health."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import anyio
import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response

from status.rows import EventRow, RunRow
from status.models import JobState, ProofStatus
from status.samples import load_samples
from status.store import dump_status
from supervisor.api._auth import Need, authorize
from supervisor.api._common import (JSON, answer, daemon_of, is_active, job_named, live_run,
                                    path_param, run_record)
from supervisor.api._models import (EventRecord, Health, HostPoint, HostSamples, JobDetail,
                                    LogTails, RunDetail, RunRecord)
from supervisor.api.errors import ApiError
from supervisor.confine import RUN_ID, inside
from supervisor.logs import STDERR, STDOUT, tail
from supervisor.snapshot import job_status

RUNS_PER_JOB = 10
EVENTS_PER_RUN = 200
TAIL_LINES = 50
FLUSH_WAIT = 2.0  # seconds to wait for the history writer before reading events


async def healthz(request: Request) -> Response:
    """GET /healthz: the daemon is up (no token needed; says nothing about the jobs)."""
    daemon = daemon_of(request)
    now = daemon.clock.now()
    from supervisor.daemon import VERSION

    return answer(Health(pid=os.getpid(), version=VERSION, started_at=daemon.started_at,
                         uptime_seconds=round((now - daemon.started_at).total_seconds(), 3),
                         jobs=len(daemon.jobs)))


async def status(request: Request) -> Response:
    """GET /api/status: the status.json document, built now."""
    daemon = daemon_of(request)
    authorize(request, daemon, Need.READ)
    return Response(dump_status(daemon.document()), media_type=JSON)


async def job(request: Request) -> Response:
    """GET /api/jobs/{job}: the job's status, latest runs and active alerts."""
    daemon = daemon_of(request)
    authorize(request, daemon, Need.READ)
    found = job_named(daemon, path_param(request, "job"))
    held = [run_record(r) for r in (found.run, found.last_run) if r is not None]
    rows = await anyio.to_thread.run_sync(lambda: daemon.history.runs(job=found.name, limit=RUNS_PER_JOB))
    seen = {r.run_id for r in held}
    runs = held + [_row_record(r) for r in rows if r.run_id not in seen]
    runs.sort(key=lambda r: r.started_at, reverse=True)
    return answer(JobDetail(name=found.name, status=job_status(found), runs=runs[:RUNS_PER_JOB],
                            alerts=[a for a in daemon.alerts.statuses() if a.job == found.name]))


async def run(request: Request) -> Response:
    """GET /api/runs/{run_id}: a run with its events, proofs and log tails."""
    daemon = daemon_of(request)
    authorize(request, daemon, Need.READ)
    run_id = path_param(request, "run_id")
    if not RUN_ID.fullmatch(run_id):
        raise ApiError(404, f"no run {run_id!r}: not a run id (like 20261125T084455123Z-3f9a1c)")
    held = live_run(daemon, run_id)
    if held is not None:
        record, active = run_record(held[1]), is_active(held[1])
        proofs, declared = list(held[1].proofs), [p for p, _ in held[1].declared_proofs]
    else:
        row = await anyio.to_thread.run_sync(daemon.history.run, run_id)
        if row is None:
            raise ApiError(404, f"no run {run_id!r} (neither live nor in the history)")
        record, active = _row_record(row), False
        proofs, declared = [ProofStatus.model_validate(p) for p in row.proofs], []
    with anyio.move_on_after(FLUSH_WAIT):
        await daemon.recorder.flush()  # events enqueued a moment ago are in the history now
    run_dir = Path(record.run_dir) if os.path.isabs(record.run_dir) else None
    if run_dir is not None and not inside(daemon.config.runs_dir, run_dir):
        run_dir = None  # a record pointing out of runs/ (or through a link): no logs read there

    def read() -> tuple[list[EventRow], list[str], list[str]]:
        events = daemon.history.events(run_id=run_id, limit=EVENTS_PER_RUN)
        if run_dir is None:  # a history row without its directory: no logs to show
            return events, [], []
        return events, tail(run_dir / STDOUT, TAIL_LINES), tail(run_dir / STDERR, TAIL_LINES)

    events, stdout, stderr = await anyio.to_thread.run_sync(read)
    return answer(RunDetail(
        run=record, active=active, proofs=proofs, declared_proofs=declared,
        events=[EventRecord(ts=e.ts, kind=e.kind, from_state=e.from_state, to_state=e.to_state,
                            reason=e.reason) for e in events],
        logs=LogTails(stdout=stdout, stderr=stderr),
    ))


async def host_samples(request: Request) -> Response:
    """GET /api/host/samples?minutes=60: stored host samples, oldest first."""
    daemon = daemon_of(request)
    authorize(request, daemon, Need.READ)
    raw = request.query_params.get("minutes", "60")
    try:
        minutes = int(raw)
    except ValueError:
        raise ApiError(400, f"minutes: {raw!r} is not a whole number") from None
    if not 1 <= minutes <= 1440:
        raise ApiError(400, f"minutes: {minutes} is outside 1-1440")
    since = daemon.clock.now() - timedelta(minutes=minutes)
    rows = await anyio.to_thread.run_sync(lambda: load_samples(daemon.history.engine, since=since,
                                                                          host=daemon.history.scope))
    return answer(HostSamples(minutes=minutes, samples=[
        HostPoint(ts=r.ts, cpu_pct=r.cpu_pct, mem_pct=r.mem_pct, temp_c=r.temp_c, score=r.score)
        for r in rows]))


def _row_record(row: RunRow) -> RunRecord:
    return RunRecord(
        run_id=row.run_id, job=row.job, state=JobState(row.state), started_at=row.started_at,
        ended_at=row.ended_at, pid=row.pid, exit_code=row.exit_code, signal=row.signal,
        error=row.error, run_dir=row.run_dir, phase=row.phase or "", message=row.message or "",
        progress=dict(row.progress or {}), last_heartbeat_at=row.last_heartbeat_at,
        last_progress_at=row.last_progress_at,
    )
