"""The HTTP API: one ASGI app (starlette, served by uvicorn inside the daemon's event loop) on
the daemon's Unix socket and, when `[api] listen` is set, on TCP. It serves the status
document, jobs and runs, operator commands, remote heartbeats, Prometheus `/metrics`, the
OpenAPI document and the live dashboard.

    _server     sockets, uvicorn in the daemon's loop, draining on shutdown
    _app        routes, error answers, static files, /openapi.json, /metrics
    _auth       who may call what (Unix socket trusted; bearer tokens over TCP)
    _reads      status, jobs, runs, host samples, health
    _fleet      every host sharing the store (supervisor.fleetview), read off the loop
    _writes     start/stop/restart, ack, reload, silence/unsilence (Daemon.control)
    _heartbeat  remote heartbeats, through the same intake as the heartbeat file
    _events     server-sent events for the dashboard
    _metrics    the Prometheus collector (prometheus_client, imported on first scrape)
    _openapi    the OpenAPI 3.1 document, from the pydantic models the handlers answer with
    static/     the dashboard: index.html, app.js, style.css (no build step)

May import: supervisor (config, runs, snapshot, logs, notify), policies, status,
workers.protocol and workers.sdk. The daemon imports this package (through
supervisor.control); this package refers to the daemon only for types and constants.
"""

from supervisor.api._openapi import OPERATIONS, openapi_document
from supervisor.api._server import ApiServer
from supervisor.api.errors import ApiError, ApiStartError

__all__ = ["ApiError", "ApiServer", "ApiStartError", "OPERATIONS", "openapi_document"]
