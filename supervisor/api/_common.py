"""What every handler needs: the daemon behind a request, JSON answers, runs by id."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from status.models import JobState
from supervisor.api._models import RunRecord
from supervisor.api.errors import ApiError
from supervisor.runs import JobRuntime, RunState
from workers.protocol import HEARTBEAT_MAX_BYTES

if TYPE_CHECKING:
    from supervisor.daemon import Daemon

JSON = "application/json"
MAX_BODY = HEARTBEAT_MAX_BYTES + 4096  # the largest body any endpoint takes


def daemon_of(request: Request) -> Daemon:
    """The daemon this app serves."""
    daemon: Daemon = request.app.state.daemon
    return daemon


def answer(model: BaseModel, status: int = 200) -> Response:
    """A model as a JSON response."""
    return Response(model.model_dump_json(by_alias=True), status_code=status, media_type=JSON)


def error_body(message: str) -> bytes:
    """The body of every error answer."""
    return json.dumps({"ok": False, "error": message}).encode()


def path_param(request: Request, name: str) -> str:
    """A path parameter, as a string."""
    value: Any = request.path_params[name]
    return str(value)


def job_named(daemon: Daemon, name: str) -> JobRuntime:
    """The job called `name`; 404 naming the jobs there are."""
    job = daemon.jobs.get(name)
    if job is None:
        known = ", ".join(sorted(daemon.jobs)) or "none"
        raise ApiError(404, f"unknown job {name!r} (jobs: {known})")
    return job


def live_run(daemon: Daemon, run_id: str) -> tuple[JobRuntime, RunState] | None:
    """The job and run with this id, if the daemon still holds it in memory."""
    for job in daemon.jobs.values():
        for run in (job.run, job.last_run):
            if run is not None and run.run_id == run_id:
                return job, run
    return None


def run_record(run: RunState) -> RunRecord:
    """A run held in memory as a RunRecord."""
    return RunRecord(
        run_id=run.run_id, job=run.job, state=run.state, started_at=run.started_at,
        ended_at=run.ended_at, pid=run.pid, exit_code=run.exit_code, signal=run.signal,
        error=run.error, run_dir=str(run.run_dir), phase=run.phase, message=run.message,
        progress=dict(run.progress), last_heartbeat_at=run.last_beat_at,
        last_progress_at=run.last_progress_at,
    )


def is_active(run: RunState) -> bool:
    """Whether the run's process may still be alive (not exited, not being judged)."""
    return not run.exited and not run.finishing and run.state.is_active and run.state != JobState.VERIFYING


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    """The request body; 413 as soon as it is known to be over `limit` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"the body is {declared} bytes; at most {limit} are taken")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"the body is over {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
