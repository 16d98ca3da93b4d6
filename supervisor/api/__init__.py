"""The HTTP API: one ASGI app (starlette, served by uvicorn inside the daemon's event loop) on
the daemon's Unix socket and, when `[api] listen` is set, on TCP. It serves the status
document, jobs and runs, operator commands, remote heartbeats, Prometheus `/metrics`, the
OpenAPI document and the live dashboard.

    _listen     the sockets, bound before any job starts (the Unix one owner-only)
    _server     uvicorn in the daemon's loop on those sockets, draining on shutdown
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

from typing import Any

from supervisor.api.errors import ApiError, ApiStartError

_LAZY = {"OPERATIONS": "_openapi", "openapi_document": "_openapi", "ApiServer": "_server"}


def __getattr__(name: str) -> Any:
    """The server and the OpenAPI document on first use (PEP 562): the daemon binds its
    sockets (supervisor.api._listen) before it spawns, and loads the server after."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f"supervisor.api.{_LAZY[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = ["ApiError", "ApiServer", "ApiStartError", "OPERATIONS", "openapi_document"]
