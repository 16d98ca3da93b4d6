"""Property-based fuzzing of the API's request bodies and path parameters (issue 11), with
hypothesis over the daemon's real Unix socket: every answer is 2xx or a 4xx JSON error naming
the field, never a 5xx or a traceback, and the daemon keeps running.

tests/supervisor/test_api_fuzz.py runs schemathesis from the OpenAPI document (valid shapes and
the schema's own edge cases); this one sends what no schema describes: damaged JSON, lone
surrogates, numbers of thousands of digits, deep nesting, path segments with NUL or "../"."""

from __future__ import annotations

import json
import logging
import urllib.parse
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from status.models import JobState
from tests import _procs as P
from tests._fuzz import fuzz_settings
from tests.supervisor.harness import job, reach
from tests.supervisor.test_api import serving
from tests.workers.test_heartbeat_fuzz import FIELDS, REGRESSIONS, heartbeat_bytes

JOBS = ("remote", "svc")

# --- strategies --------------------------------------------------------------------------------

ANY_TEXT = st.text(st.characters(exclude_categories=[]), max_size=40) | st.sampled_from(
    ["", "\x00", "\ud800", "remote", "remote:stalled", "host:disk:/", "svc", "x" * 3000])
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | ANY_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(ANY_TEXT, inner, max_size=3), max_leaves=8)
DURATIONS = st.sampled_from(["1h", "2h30m", "0s", "250ms", "2 hours", "", "99999999999d", "36500d",
                             "9" * 400 + "s", "1m1m", "\u0661s"])
TARGETS = st.sampled_from(["remote", "svc"]) | st.tuples(st.sampled_from(["remote:", "host:"]), ANY_TEXT).map("".join)
SILENCES = st.one_of(
    st.fixed_dictionaries({"target": TARGETS, "duration": DURATIONS}, optional={"reason": ANY_TEXT}),
    st.fixed_dictionaries({}, optional={
        "target": st.one_of(ANY_TEXT, TARGETS, JSON_VALUES),
        "duration": st.one_of(DURATIONS, JSON_VALUES),
        "reason": st.one_of(ANY_TEXT, JSON_VALUES),
        "extra": JSON_VALUES,
    }),
)


@st.composite
def json_bodies(draw: st.DrawFn, documents: st.SearchStrategy[Any]) -> bytes:
    """A JSON document (lone surrogates as their \\u escapes), sometimes damaged."""
    raw = json.dumps(draw(documents), ensure_ascii=True).encode()  # NaN included
    damage = draw(st.sampled_from(["none"] * 5 + ["truncate", "bytes", "nest", "bigint", "latin1"]))
    if damage == "truncate":
        raw = raw[:draw(st.integers(0, len(raw)))]
    elif damage == "bytes":
        raw = draw(st.binary(max_size=40))
    elif damage == "nest":
        raw = b"[" * draw(st.sampled_from([100, 100_000])) + raw
    elif damage == "bigint":
        raw = b'{"target": "remote", "duration": "1h", "reason": ' + b"7" * 5000 + b"}"
    elif damage == "latin1":
        raw = '{"target": "caf\u00e9", "duration": "1h"}'.encode("latin-1")
    return raw


NAMES = st.one_of(
    st.sampled_from(["..", "../..", "../../etc/passwd", "%00", "\x00", " ", "remote", "svc", "a" * 5000,
                     "remote:stalled", "host:disk:/var", "20200101T000000000Z-000000"]),
    st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=200),
)
SEGMENTS = st.one_of(
    NAMES.map(lambda name: urllib.parse.quote(name, safe="")),
    NAMES.map(lambda name: urllib.parse.quote(name, safe="/:")),  # slashes left raw
    st.binary(min_size=1, max_size=30).map(lambda b: urllib.parse.quote_from_bytes(b, safe="")),  # not UTF-8
)
ROUTES = st.sampled_from([
    ("GET", "/api/jobs/{}"), ("POST", "/api/jobs/{}/start"), ("POST", "/api/jobs/{}/stop"),
    ("POST", "/api/jobs/{}/restart"), ("GET", "/api/runs/{}"), ("GET", "/api/runs/{}/heartbeat"),
    ("POST", "/api/runs/{}/heartbeat"), ("POST", "/api/alerts/{}/ack"), ("GET", "/api/host/samples?minutes={}"),
])


# --- the checks --------------------------------------------------------------------------------

def refusal(reply: httpx.Response) -> str | None:
    """The error of a 4xx answer (None for a 2xx); fails on a 5xx, a traceback or a non-JSON error."""
    assert reply.status_code < 500, (reply.request.method, reply.request.url, reply.text[:500])
    assert "Traceback" not in reply.text
    if reply.status_code < 400:
        return None
    assert reply.headers["content-type"] == "application/json", reply.text[:200]
    body = reply.json()
    assert body["ok"] is False and isinstance(body["error"], str) and body["error"], body
    assert "\n" not in body["error"] and len(body["error"]) < 12_000, body["error"][:300]
    return str(body["error"])


def fuzz_api(client: httpx.Client, run_id: str) -> None:
    """The properties, run in a worker thread while the daemon serves on its own event loop."""

    @fuzz_settings(250)
    @given(raw=heartbeat_bytes())
    @example(raw=REGRESSIONS[0])  # RecursionError: a 500
    @example(raw=REGRESSIONS[3])  # a lone surrogate in "phase": the daemon's status writer died
    @example(raw=REGRESSIONS[4])
    @example(raw=b'{"seq": 7, "ts": "2026-01-01T00:00:00Z", "blocker": "\\ud800"}')
    def heartbeats(raw: bytes) -> None:
        reply = client.post(f"/api/runs/{run_id}/heartbeat", content=raw)
        error = refusal(reply)
        if reply.status_code == 422:
            assert error is not None and error.startswith("malformed heartbeat: ")
            assert error.removeprefix("malformed heartbeat: ").startswith(FIELDS), error
        elif error is not None:  # a seq seen before, or the run ended
            assert reply.status_code == 409 and ("seq" in error or "has ended" in error), error

    @fuzz_settings(200)
    @given(raw=json_bodies(SILENCES), unsilence=st.booleans())
    @example(raw=b'{"target": "remote", "duration": "99999999999d"}', unsilence=False)  # OverflowError: a 500
    @example(raw=b'{"target": "remote", "duration": "1h", "reason": ' + b"7" * 5000 + b"}", unsilence=False)
    @example(raw=b"[" * 100_000, unsilence=False)  # RecursionError: a 500
    @example(raw=b'{"target": "remote", "duration": "1h", "reason": "\\ud800"}', unsilence=False)  # history
    @example(raw=b'{"target": "remote:\\udfff", "duration": "1h"}', unsilence=False)  # and status died
    def silences(raw: bytes, unsilence: bool) -> None:
        reply = client.post("/api/unsilence" if unsilence else "/api/silence", content=raw)
        error = refusal(reply)
        if reply.status_code in (400, 422):
            assert error is not None and error.startswith(
                ("the body is not JSON (", "target", "duration", "reason", "extra", "body")), error
        elif error is not None:
            assert reply.status_code == 404 and ("silence" in error or "neither a job" in error), error

    @fuzz_settings(300)
    @given(route=ROUTES, segment=SEGMENTS, body=st.sampled_from([b"", b"{}", b"\xff"]))
    @example(route=("GET", "/api/jobs/{}"), segment="%ED%A0%80", body=b"")  # an encoded lone surrogate
    @example(route=("POST", "/api/runs/{}/heartbeat"), segment="..%2F..%2Fetc", body=b"{}")
    def paths(route: tuple[str, str], segment: str, body: bytes) -> None:
        method, template = route
        if method == "POST" and "/api/jobs/" in template and urllib.parse.unquote(segment) in JOBS \
                and not template.endswith("/start"):
            return  # stopping the jobs under test would end the fuzzing of their run
        reply = client.request(method, template.format(segment), content=body)
        error = refusal(reply)
        assert error is None or reply.status_code in (400, 401, 404, 405, 409, 422), (reply.status_code, error)

    heartbeats()
    silences()
    paths()


async def test_fuzzed_bodies_and_paths_get_4xx_json_errors_and_the_daemon_keeps_running(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    tables = (job(tmp_path, "remote", P.NEVER_BEATS, startup_grace="10m", heartbeat_token="hb-fuzz"),
              job(tmp_path, "svc", P.BEATS_FOREVER, kind="service"))
    async with serving(tmp_path, *tables) as s:
        await reach(s.daemon, "remote", JobState.STARTING)
        run = s.daemon.jobs["remote"].run
        assert run is not None
        transport = httpx.HTTPTransport(uds=str(s.daemon.config.socket_path))
        with httpx.Client(transport=transport, base_url="http://proofwatch", timeout=10) as client:
            await anyio.to_thread.run_sync(fuzz_api, client, run.run_id)
        assert (await s.unix.get("/healthz")).json()["ok"] is True
        await s.daemon.status.write_now()  # status.json takes whatever the fuzzing left behind
        assert await s.daemon.recorder.flush()  # and so does the history (False while writes fail)
        assert (await s.unix.get("/api/status")).status_code == 200
        assert (await s.unix.get(f"/api/runs/{run.run_id}")).status_code == 200
        assert not s.daemon.finished.is_set()
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []  # e.g. uvicorn's "Exception in ASGI application", a failed history write
