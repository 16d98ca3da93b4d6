"""The OpenAPI 3.1 document of the API, built from the same pydantic models the handlers
answer with (status.json's own models included), so the two cannot drift apart. A test
checks that its paths are exactly the app's routes; schemathesis checks the answers."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from status.models import StatusDocument
from supervisor.api._models import (ErrorReply, Health, HeartbeatBody, HeartbeatReply,
                                    HeartbeatState, HostSamples, JobDetail, Reply, RunDetail,
                                    SilenceRequest, UnsilenceRequest)
from supervisor.fleetview import FleetView

_ERRORS = {
    400: "Bad input (the error says which)",
    401: "Over TCP: no bearer token, or the wrong one",
    403: "Over TCP: not allowed (writes without a configured api.token, a job without "
         "heartbeat_token, a foreign Host header)",
    404: "No such job, run, alert or silence (or, for the fleet, no shared store)",
    409: "Refused in the current state (the job already runs, the run has ended, a repeated seq)",
    413: "The body is too large",
    422: "The body is not what this endpoint takes (or the new config is invalid)",
    503: "The shared store cannot be read just now (the error says why)",
}
_SECURITY: dict[str, list[dict[str, list[str]]]] = {
    "public": [],
    "read": [{}, {"apiToken": []}],  # open when no api.token is configured
    "write": [{"apiToken": []}],
    "heartbeat": [{"heartbeatToken": []}],
    "heartbeat-read": [{}, {"heartbeatToken": []}, {"apiToken": []}],
}


@dataclass(frozen=True)
class Op:
    """One operation: method, path, who may call it, what it takes and answers."""

    method: str
    path: str
    summary: str
    access: str
    ok: type[BaseModel] | str  # a model, or a media type for non-JSON answers
    errors: tuple[int, ...] = ()
    body: type[BaseModel] | None = None
    query: tuple[tuple[str, dict[str, Any], str], ...] = ()
    tag: str = "api"


_AUTH = (401, 403)
OPERATIONS: tuple[Op, ...] = (
    Op("get", "/healthz", "Liveness: the daemon is up (the CLI's ping)", "public", Health, tag="meta"),
    Op("get", "/openapi.json", "This document", "public", "application/json", tag="meta"),
    Op("get", "/", "The dashboard (one page, live)", "public", "text/html", tag="dashboard"),
    Op("get", "/static/app.js", "The dashboard's script", "public", "text/javascript", tag="dashboard"),
    Op("get", "/static/style.css", "The dashboard's style sheet", "public", "text/css", tag="dashboard"),
    Op("get", "/api/status", "The status.json document, built now", "read", StatusDocument, _AUTH),
    Op("get", "/api/events", "The status document as server-sent events (`event: status`), pushed "
       "on every change, at most once a second", "read", "text/event-stream", _AUTH),
    Op("get", "/api/jobs/{job}", "A job: its status, latest runs and active alerts", "read",
       JobDetail, (*_AUTH, 404)),
    Op("get", "/api/runs/{run_id}", "A run: its record, events, proofs and log tails", "read",
       RunDetail, (*_AUTH, 404)),
    Op("get", "/api/host/samples", "Stored host samples (CPU, memory, temperature, score)", "read",
       HostSamples, (400, *_AUTH),
       query=(("minutes", {"type": "integer", "minimum": 1, "maximum": 1440, "default": 60},
               "How far back"),)),
    Op("get", "/api/fleet", "Every host sharing the store: its state (up, stale, stopped), last "
       "report, health and jobs with heartbeat ages, by this daemon's clock (404 without a "
       "shared store)", "read", FleetView, (*_AUTH, 404, 503)),
    Op("get", "/metrics", "Prometheus metrics (text format; OpenMetrics when asked for)", "read",
       "text/plain", _AUTH, tag="meta"),
    Op("post", "/api/jobs/{job}/start", "Start a job now", "write", Reply, (*_AUTH, 404, 409)),
    Op("post", "/api/jobs/{job}/stop", "Stop a job (SIGTERM, SIGKILL after stop_grace) and hold it",
       "write", Reply, (*_AUTH, 404, 409)),
    Op("post", "/api/jobs/{job}/restart", "Stop a job if it runs, then start it", "write", Reply,
       (*_AUTH, 404, 409)),
    Op("post", "/api/alerts/{key}/ack", "Acknowledge an active alert (a crash, FATAL or unproven "
       "alert is resolved; a stall or host alert stays listed, without reminders)", "write", Reply,
       (*_AUTH, 404)),
    Op("post", "/api/reload", "Re-read the config (like SIGHUP); a bad one is refused and the "
       "last good config kept", "write", Reply, (*_AUTH, 422)),
    Op("post", "/api/silence", "Mute a job's or an alert key's notifications for a while", "write",
       Reply, (400, *_AUTH, 404, 413, 422), body=SilenceRequest),
    Op("post", "/api/unsilence", "Lift a silence before it expires", "write", Reply,
       (400, *_AUTH, 404, 413, 422), body=UnsilenceRequest),
    Op("get", "/api/runs/{run_id}/heartbeat", "A live run's current heartbeat", "heartbeat-read",
       HeartbeatState, (*_AUTH, 404, 409), tag="heartbeats"),
    Op("post", "/api/runs/{run_id}/heartbeat", "A remote worker's heartbeat (the same JSON as the "
       "heartbeat file), authorised by the job's heartbeat_token", "heartbeat", HeartbeatReply,
       (*_AUTH, 404, 409, 413, 422), body=HeartbeatBody, tag="heartbeats"),
)

_PARAM_DOCS = {
    "job": "A job name from the config",
    "run_id": "A run id, e.g. 20261125T084455123Z-3f9a1c",
    "key": "An alert key, e.g. stuck:stalled or host:disk:/ (it may contain '/')",
}


def openapi_document(version: str) -> dict[str, Any]:
    """The whole OpenAPI document."""
    models: list[type[BaseModel]] = [ErrorReply]
    for op in OPERATIONS:
        models += [m for m in (op.ok, op.body) if isinstance(m, type)]
    unique = list(dict.fromkeys(models))
    refs, defs = models_json_schema([(m, "serialization") for m in unique],
                                    ref_template="#/components/schemas/{model}")
    ref = {m: refs[(m, "serialization")] for m in unique}
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method] = _operation(op, ref)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "proofwatch",
            "version": version,
            "description": (
                "The proofwatch daemon's API. Over the Unix socket (var/proofwatch.sock, owner-only) "
                "no token is needed. Over TCP, writes need `Authorization: Bearer <api.token>`, reads "
                "need it when it is configured, and remote heartbeats need the job's own "
                "heartbeat_token. Errors are `{\"ok\": false, \"error\": \"...\"}`."),
        },
        "paths": paths,
        "components": {
            "schemas": defs.get("$defs", {}),
            "securitySchemes": {
                "apiToken": {"type": "http", "scheme": "bearer", "description": "[api] token"},
                "heartbeatToken": {"type": "http", "scheme": "bearer",
                                   "description": "[jobs.NAME] heartbeat_token"},
            },
        },
    }


def _operation(op: Op, ref: dict[type[BaseModel], dict[str, Any]]) -> dict[str, Any]:
    ok: dict[str, Any]
    if isinstance(op.ok, str):
        ok = {"description": op.summary, "content": {op.ok: {"schema": {"type": "string"}
                                                              if op.ok != "application/json"
                                                              else {"type": "object"}}}}
    else:
        ok = {"description": op.summary, "content": {"application/json": {"schema": ref[op.ok]}}}
    error = {"application/json": {"schema": ref[ErrorReply]}}
    out: dict[str, Any] = {
        "operationId": _operation_id(op),
        "summary": op.summary,
        "tags": [op.tag],
        "security": _SECURITY[op.access],
        "responses": {"200": ok, **{str(code): {"description": _ERRORS[code], "content": error}
                                     for code in sorted(op.errors)}},
    }
    params = [{"name": name, "in": "path", "required": True, "description": _PARAM_DOCS[name],
               "schema": {"type": "string", "minLength": 1}}
              for name in re.findall(r"\{(\w+)\}", op.path)]
    params += [{"name": name, "in": "query", "required": False, "description": doc, "schema": schema}
               for name, schema, doc in op.query]
    if params:
        out["parameters"] = params
    if op.body is not None:
        out["requestBody"] = {"required": True, "content": {"application/json": {"schema": ref[op.body]}}}
    return out


def _operation_id(op: Op) -> str:
    words = re.sub(r"[{}]", "", op.path).strip("/").replace(".", "_").replace("/", "_") or "dashboard"
    return f"{op.method}_{words}"
