"""Write endpoints: start/stop/restart a job, acknowledge an alert, reload the config, silence
and unsilence. Each is the daemon's own operator command (`Daemon.control`), as the CLI used to
send it over the JSON-lines socket; here its refusals get HTTP statuses."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from supervisor.api._auth import Need, authorize
from supervisor.api._common import answer, daemon_of, job_named, path_param, read_body
from supervisor.api._models import Reply, SilenceRequest, UnsilenceRequest
from supervisor.api.errors import ApiError
from supervisor.durations import parse_duration

_Body = TypeVar("_Body", bound=BaseModel)


async def job_command(request: Request) -> Response:
    """POST /api/jobs/{job}/start|stop|restart."""
    daemon = daemon_of(request)
    authorize(request, daemon, Need.WRITE)
    name = path_param(request, "job")
    job = job_named(daemon, name)
    command = request.url.path.rsplit("/", 1)[-1]
    reply = daemon.control(command, name)
    if not reply.get("ok"):
        why = reply.get("error") or (job.last_run.error if job.last_run else None) or job.error
        raise ApiError(409, str(why or f"{name}: {command} failed"))
    return answer(Reply(message=str(reply.get("message", "ok")), run_id=reply.get("run_id")))


async def ack(request: Request) -> Response:
    """POST /api/alerts/{key}/ack: a condition that can still clear stays listed as
    acknowledged (no more reminders); one that cannot (a crash, FATAL, unproven) is resolved."""
    daemon = daemon_of(request)
    authorize(request, daemon, Need.WRITE)
    key = path_param(request, "key")
    if key not in daemon.alerts.active:
        raise ApiError(404, f"no active alert {key!r}")
    return _done(daemon.control("ack", key), 404)


async def reload(request: Request) -> Response:
    """POST /api/reload: re-read the config file (like SIGHUP)."""
    daemon = daemon_of(request)
    authorize(request, daemon, Need.WRITE)
    return _done(daemon.control("reload", None), 422)


async def silence(request: Request) -> Response:
    """POST /api/silence: mute a job's or an alert key's notifications for a while."""
    daemon = daemon_of(request)
    authorize(request, daemon, Need.WRITE)
    body = await _body(request, SilenceRequest)
    try:
        parse_duration(body.duration)
    except ValueError as exc:
        raise ApiError(400, f"duration: {exc}") from None
    if not body.target:
        raise ApiError(400, "target: name a job or an alert key")
    reply = await daemon.control_async("silence", body.target,
                                       {"duration": body.duration, "reason": body.reason})
    return _done(reply, 404)


async def unsilence(request: Request) -> Response:
    """POST /api/unsilence: lift a silence before it expires."""
    daemon = daemon_of(request)
    authorize(request, daemon, Need.WRITE)
    body = await _body(request, UnsilenceRequest)
    if not body.target:
        raise ApiError(400, "target: name a job or an alert key")
    return _done(await daemon.control_async("unsilence", body.target, {}), 404)


def _done(reply: dict[str, Any], refused: int) -> Response:
    if not reply.get("ok"):
        raise ApiError(refused, str(reply.get("error", "refused")))
    return answer(Reply(message=str(reply.get("message", "ok")), run_id=reply.get("run_id")))


async def _body(request: Request, model: type[_Body]) -> _Body:
    raw = await read_body(request)
    try:
        data = json.loads(raw)
    except RecursionError:
        raise ApiError(400, "the body is not JSON (nested too deeply)") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, a number over 4300 digits
        raise ApiError(400, f"the body is not JSON ({str(exc).split('; use ')[0]})") from None
    try:
        body = model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise ApiError(422, f"{where}: {first['msg']}") from None
    for name, value in body:
        if isinstance(value, str) and not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:  # "\ud800": no store (status.json, the history) takes it
                raise ApiError(422, f"{name}: not valid Unicode (a lone surrogate)") from None
    return body
