"""The ASGI app: routes, error answers, the dashboard's static files, /openapi.json and
/metrics. Every handler is `async` and runs on the daemon's own event loop, so it reads and
changes the daemon's state with no locks; blocking reads (SQLite, log tails) go to threads."""

from __future__ import annotations

import json
import logging
from importlib import resources
from typing import TYPE_CHECKING, Any

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from supervisor.api import _fleet, _heartbeat, _reads, _writes
from supervisor.api._auth import Need, authorize
from supervisor.api._common import JSON, MAX_BODY, daemon_of, error_body
from supervisor.api._events import Snapshots, events
from supervisor.api._openapi import OPERATIONS, openapi_document
from supervisor.api.errors import ApiError

if TYPE_CHECKING:
    from supervisor.daemon import Daemon

log = logging.getLogger(__name__)

_STATIC = {"/": ("index.html", "text/html; charset=utf-8"),
           "/static/app.js": ("app.js", "text/javascript; charset=utf-8"),
           "/static/style.css": ("style.css", "text/css; charset=utf-8")}
_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def build_app(daemon: Daemon, closing: anyio.Event) -> Starlette:
    """The app for one daemon; `closing` ends the event streams when the daemon stops."""
    from supervisor.daemon import VERSION

    files = {path: (resources.files("supervisor.api").joinpath("static", name).read_bytes(), media)
             for path, (name, media) in _STATIC.items()}
    openapi = json.dumps(openapi_document(VERSION)).encode()

    async def static(request: Request) -> Response:
        body, media = files[request.url.path]
        headers = {"Content-Security-Policy": _CSP} if media.startswith("text/html") else {}
        return Response(body, media_type=media, headers=headers)

    async def openapi_json(request: Request) -> Response:
        return Response(openapi, media_type=JSON)

    async def metrics(request: Request) -> Response:
        d = daemon_of(request)
        authorize(request, d, Need.READ)
        from supervisor.api import _metrics  # prometheus_client: loaded on the first scrape

        state = request.app.state
        if getattr(state, "registry", None) is None:
            state.registry = _metrics.make_registry(d)
        body, content_type = _metrics.render(state.registry, request.headers.get("accept", ""))
        return Response(body, headers={"Content-Type": content_type})

    handlers: dict[tuple[str, str], Any] = {
        ("get", "/healthz"): _reads.healthz,
        ("get", "/openapi.json"): openapi_json,
        **{("get", path): static for path in _STATIC},
        ("get", "/api/status"): _reads.status,
        ("get", "/api/events"): events,
        ("get", "/api/jobs/{job}"): _reads.job,
        ("get", "/api/runs/{run_id}"): _reads.run,
        ("get", "/api/host/samples"): _reads.host_samples,
        ("get", "/api/fleet"): _fleet.fleet,
        ("get", "/metrics"): metrics,
        ("post", "/api/jobs/{job}/start"): _writes.job_command,
        ("post", "/api/jobs/{job}/stop"): _writes.job_command,
        ("post", "/api/jobs/{job}/restart"): _writes.job_command,
        ("post", "/api/alerts/{key}/ack"): _writes.ack,
        ("post", "/api/reload"): _writes.reload,
        ("post", "/api/silence"): _writes.silence,
        ("post", "/api/unsilence"): _writes.unsilence,
        ("get", "/api/runs/{run_id}/heartbeat"): _heartbeat.get,
        ("post", "/api/runs/{run_id}/heartbeat"): _heartbeat.post,
    }
    documented = {(op.method, op.path) for op in OPERATIONS}
    assert documented == set(handlers), f"OpenAPI and routes differ: {documented ^ set(handlers)}"
    routes = [Route(path.replace("{key}", "{key:path}"), handler, methods=[method.upper()])
              for (method, path), handler in handlers.items()]
    app = Starlette(routes=routes, exception_handlers={
        ApiError: _api_error, HTTPException: _http_error, Exception: _internal_error})
    app.state.daemon = daemon
    app.state.closing = closing
    app.state.snapshots = Snapshots(daemon)
    app.state.registry = None
    return app


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return Response(error_body(message), status_code=status, media_type=JSON, headers=headers)


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return _error(exc.status, exc.message, exc.headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = str(exc.detail)
    if exc.status_code == 404:
        message = f"no such endpoint: {request.method} {request.url.path} (see /openapi.json)"
    elif exc.status_code == 413:
        message = f"the body is over {MAX_BODY} bytes"
    return _error(exc.status_code, message, dict(exc.headers or {}))


async def _internal_error(request: Request, exc: Exception) -> Response:
    return _error(500, f"internal error: {type(exc).__name__}: {exc} (details in the daemon's log)")
