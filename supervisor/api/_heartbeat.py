"""Remote heartbeats: `POST /api/runs/{run_id}/heartbeat` with the same JSON a local worker
writes to $PROOFWATCH_HEARTBEAT, authorised by the job's own `heartbeat_token`.

One intake for both: the body is checked by the protocol's own parser (a malformed one is
recorded as a `heartbeat_error` event and refused with 422, the run's heartbeat file left as it
was), then written atomically to the run's heartbeat file (temp file in the unwatched scratch
dir, rename), then read at once by the daemon's intake — the same code, high-water progress
check and `progress_at` clamp to [since, now] as a local heartbeat. The reply says what the
intake made of it, so a remote worker learns at once that its run has ended (409) or that its
counters did not move.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response

from supervisor.api._auth import Need, authorize, is_trusted
from supervisor.api._common import answer, daemon_of, is_active, live_run, path_param, read_body
from supervisor.api._models import HeartbeatBody, HeartbeatReply, HeartbeatState
from policies.stall import stall_deadline
from status.models import JobState
from supervisor.api.errors import ApiError
from supervisor.runs import JobRuntime, RunState
from workers.protocol import HeartbeatError, parse_heartbeat
from workers.sdk import read_heartbeat, write_heartbeat

if TYPE_CHECKING:
    from supervisor.daemon import Daemon


async def post(request: Request) -> Response:
    """POST /api/runs/{run_id}/heartbeat."""
    daemon = daemon_of(request)
    _need_credentials(request)
    job, run = _active(daemon, path_param(request, "run_id"))
    authorize(request, daemon, Need.HEARTBEAT, job)
    raw = await read_body(request)
    if job.run is not run or not is_active(run):  # it ended while the body was arriving
        raise _ended(job, run)
    try:
        hb = parse_heartbeat(raw)
    except HeartbeatError as exc:
        daemon.ingest_remote(job, error=f"remote heartbeat refused: {exc}")
        raise ApiError(422, f"malformed heartbeat: {exc}") from None
    if hb.seq == run.hb_seq:
        raise ApiError(409, f"seq {hb.seq} was already received: every heartbeat needs a new seq")
    from supervisor.daemon import SCRATCH_DIR  # (the daemon imports this package)

    before = run.last_progress_at
    write_heartbeat(Path(run.heartbeat_path), hb, scratch=str(daemon.config.state_dir / SCRATCH_DIR))
    daemon.ingest_remote(job)
    return answer(HeartbeatReply(
        job=job.name, run_id=run.run_id, seq=hb.seq, state=run.state,
        progressed=run.last_progress_at != before, last_heartbeat_at=run.last_beat_at,
        last_progress_at=run.last_progress_at, stall_deadline=_deadline(job, run),
    ))


async def get(request: Request) -> Response:
    """GET /api/runs/{run_id}/heartbeat: the live run's current heartbeat (with the job's
    heartbeat token, or with read access)."""
    daemon = daemon_of(request)
    _need_credentials(request)
    job, run = _active(daemon, path_param(request, "run_id"))
    try:
        authorize(request, daemon, Need.HEARTBEAT, job)
    except ApiError as refused:
        try:
            authorize(request, daemon, Need.READ)
        except ApiError:
            raise refused from None
    hb = read_heartbeat(Path(run.heartbeat_path))
    body = None if hb is None else HeartbeatBody.model_validate_json(hb.to_json())
    return answer(HeartbeatState(job=job.name, run_id=run.run_id, state=run.state, heartbeat=body))


def _need_credentials(request: Request) -> None:
    """Over TCP a heartbeat request names no run before it shows some credential."""
    if not is_trusted(request) and "authorization" not in request.headers:
        raise ApiError(401, "missing Authorization: Bearer <token> (the job's heartbeat token)",
                       headers={"WWW-Authenticate": 'Bearer realm="proofwatch"'})


def _active(daemon: Daemon, run_id: str) -> tuple[JobRuntime, RunState]:
    found = live_run(daemon, run_id)
    if found is None:
        raise ApiError(404, f"no live run {run_id!r}")
    job, run = found
    if job.run is not run or not is_active(run):
        raise _ended(job, run)
    return job, run


def _ended(job: JobRuntime, run: RunState) -> ApiError:
    now = f"; its current run is {job.run.run_id}" if job.run is not None and job.run is not run else ""
    return ApiError(409, f"run {run.run_id} of {job.name} has ended ({run.state.value}){now}: "
                         "stop sending heartbeats for it")


def _deadline(job: JobRuntime, run: RunState) -> datetime | None:
    if run.state != JobState.RUNNING or run.last_progress_at is None:
        return None
    return stall_deadline(run.last_progress_at, job.settings.stall_after)
