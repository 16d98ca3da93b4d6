"""The HTTP API against a running daemon: every endpoint, over the Unix socket (trusted, 0600)
and over TCP (bearer tokens), the error answers, and the OpenAPI document."""

from __future__ import annotations

import json
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx
import pytest
from jsonschema import Draft202012Validator

from status.models import JobState, StatusDocument
from supervisor.api import OPERATIONS
from supervisor.daemon import Daemon
from tests import _procs as P
from tests.supervisor.harness import job, reach, running

S = JobState
TOKEN = "api-test-token-4f1c"
BAD = {"Authorization": "Bearer not-the-token"}
GOOD = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class Served:
    """A running daemon and clients for both of its listeners."""

    daemon: Daemon
    tcp: httpx.AsyncClient  # no credentials: each request says what it sends
    unix: httpx.AsyncClient


def api_table(*, token: str | None = TOKEN, extra: str = "") -> str:
    lines = ["[api]", 'listen = "127.0.0.1:0"']
    if token is not None:
        lines.append(f'token = "{token}"')
    return "\n".join(lines) + "\n" + extra + "\n"


@asynccontextmanager
async def serving(tmp_path: Path, *tables: str, api: str | None = None) -> AsyncIterator[Served]:
    """A daemon serving the API on its socket and on an ephemeral loopback port."""
    async with running(tmp_path, api if api is not None else api_table(), *tables) as d:
        assert d.api is not None and d.api.url is not None
        unix = httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(uds=str(d.config.socket_path)),
                                 base_url="http://proofwatch", timeout=10)
        tcp = httpx.AsyncClient(base_url=d.api.url, timeout=10)
        async with unix, tcp:
            yield Served(d, tcp, unix)


def crash_and_service(tmp_path: Path) -> tuple[str, str]:
    return (job(tmp_path, "svc", P.BEATS_FOREVER, kind="service"),
            job(tmp_path, "crashy", P.CRASH_AT_START))


# --- the Unix socket ---------------------------------------------------------------------------

async def test_the_unix_socket_is_owner_only_and_needs_no_token(tmp_path: Path) -> None:
    async with serving(tmp_path, job(tmp_path, "ok", P.EXIT_OK)) as s:
        sock = s.daemon.config.socket_path
        assert stat.S_ISSOCK(sock.stat().st_mode)
        assert stat.S_IMODE(sock.stat().st_mode) == 0o600
        assert stat.S_IMODE(s.daemon.config.state_dir.stat().st_mode) == 0o700
        reply = await s.unix.get("/api/status")
        assert reply.status_code == 200
        assert (await s.tcp.get("/api/status")).status_code == 401  # the same request over TCP
    assert not sock.exists()  # removed when the daemon stops


# --- auth over TCP -----------------------------------------------------------------------------

READS = ["/api/status", "/api/jobs/svc", "/metrics", "/api/host/samples", "/api/events"]
WRITES = ["/api/jobs/svc/stop", "/api/jobs/svc/start", "/api/jobs/svc/restart", "/api/alerts/crashy:crashed/ack",
          "/api/reload", "/api/silence", "/api/unsilence"]


async def test_tcp_refuses_reads_and_writes_without_the_token_or_with_a_wrong_one(tmp_path: Path) -> None:
    async with serving(tmp_path, *crash_and_service(tmp_path)) as s:
        await reach(s.daemon, "svc", S.RUNNING)
        await reach(s.daemon, "crashy", S.CRASHED)
        for path in READS:
            for headers in ({}, BAD, {"Authorization": f"Basic {TOKEN}"}):
                reply = await s.tcp.get(path, headers=headers)
                assert reply.status_code == 401, (path, headers, reply.text)
                assert reply.headers["www-authenticate"].startswith("Bearer")
                assert reply.json()["ok"] is False and TOKEN not in reply.text
        for path in WRITES:
            for headers in ({}, BAD):
                reply = await s.tcp.post(path, headers=headers, json={"target": "svc", "duration": "1h"})
                assert reply.status_code == 401, (path, headers, reply.text)
        # nothing was done by the refused writes
        assert s.daemon.jobs["svc"].state == S.RUNNING and "crashy:crashed" in s.daemon.alerts.active
        for path in READS[:-1]:
            assert (await s.tcp.get(path, headers=GOOD)).status_code == 200, path
        assert (await s.tcp.get("/healthz")).status_code == 200  # liveness needs no token
    log = (tmp_path / "var" / "proofwatch.log")
    assert not log.exists() or TOKEN not in log.read_text()


async def test_without_a_token_tcp_reads_are_local_only_and_writes_are_refused(tmp_path: Path) -> None:
    async with serving(tmp_path, *crash_and_service(tmp_path), api=api_table(token=None)) as s:
        await reach(s.daemon, "svc", S.RUNNING)
        assert (await s.tcp.get("/api/status")).status_code == 200
        stop = await s.tcp.post("/api/jobs/svc/stop")
        assert stop.status_code == 403
        assert "writes over TCP need a token: set api.token" in stop.json()["error"]
        assert s.daemon.jobs["svc"].state == S.RUNNING
        # a web page that rebinds its own name to 127.0.0.1 cannot read the daemon
        rebound = await s.tcp.get("/api/status", headers={"Host": "evil.example:8765"})
        assert rebound.status_code == 403 and "api.allowed_hosts" in rebound.json()["error"]
        assert (await s.unix.post("/api/jobs/svc/stop")).status_code == 200  # the owner can


async def test_the_token_is_read_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PW_TEST_API_TOKEN", "from-the-env")
    async with serving(tmp_path, job(tmp_path, "ok", P.EXIT_OK),
                       api=api_table(token="${PW_TEST_API_TOKEN}")) as s:
        assert (await s.tcp.get("/api/status", headers=GOOD)).status_code == 401
        ok = await s.tcp.get("/api/status", headers={"Authorization": "Bearer from-the-env"})
        assert ok.status_code == 200
        assert "from-the-env" not in ok.text  # never in status.json or any answer


# --- reads -------------------------------------------------------------------------------------

async def test_status_is_the_status_document(tmp_path: Path) -> None:
    async with serving(tmp_path, *crash_and_service(tmp_path)) as s:
        await reach(s.daemon, "crashy", S.CRASHED)
        reply = await s.tcp.get("/api/status", headers=GOOD)
        assert reply.headers["content-type"] == "application/json"
        doc = StatusDocument.model_validate(reply.json())
        assert doc.jobs["crashy"].state == S.CRASHED
        assert doc.supervisor.pid == s.daemon.document().supervisor.pid
        assert [a.key for a in doc.alerts] == ["crashy:crashed"]


async def test_a_job_shows_its_status_runs_and_alerts(tmp_path: Path) -> None:
    async with serving(tmp_path, *crash_and_service(tmp_path)) as s:
        await reach(s.daemon, "crashy", S.CRASHED)
        detail = (await s.unix.get("/api/jobs/crashy")).json()
        assert detail["name"] == "crashy" and detail["status"]["state"] == "CRASHED"
        assert detail["runs"][0]["run_id"] == s.daemon.jobs["crashy"].last_run.run_id
        assert detail["runs"][0]["exit_code"] == 3
        assert [a["key"] for a in detail["alerts"]] == ["crashy:crashed"]
        missing = await s.unix.get("/api/jobs/nosuch")
        assert missing.status_code == 404
        assert missing.json() == {"ok": False, "error": "unknown job 'nosuch' (jobs: crashy, svc)"}


async def test_a_run_shows_its_events_proofs_and_log_tails(tmp_path: Path) -> None:
    proof = job(tmp_path, "prove", P.WRITES_PROOF) + '[[jobs.prove.proofs]]\npath = "out.json"\n'
    async with serving(tmp_path, proof, job(tmp_path, "crashy", P.CRASH_AT_START)) as s:
        await reach(s.daemon, "prove", S.SUCCEEDED)
        await reach(s.daemon, "crashy", S.CRASHED)
        run_id = s.daemon.jobs["prove"].last_run.run_id
        detail = (await s.unix.get(f"/api/runs/{run_id}")).json()
        assert detail["run"]["state"] == "SUCCEEDED" and detail["active"] is False
        assert [p["path"] for p in detail["proofs"]] == ["out.json"] and detail["proofs"][0]["ok"]
        transitions = [(e["from_state"], e["to_state"]) for e in detail["events"] if e["kind"] == "transition"]
        assert transitions[-1] == ("VERIFYING", "SUCCEEDED")
        crash_id = s.daemon.jobs["crashy"].last_run.run_id
        crash = (await s.unix.get(f"/api/runs/{crash_id}")).json()
        assert crash["logs"]["stderr"][-1] == "fatal: FEED_TOKEN is not set"
        assert crash["logs"]["stdout"] == ["starting up"]
        assert (await s.unix.get("/api/runs/20200101T000000000Z-000000")).status_code == 404


async def test_host_samples_are_read_from_the_history(tmp_path: Path) -> None:
    async with serving(tmp_path, job(tmp_path, "ok", P.EXIT_OK)) as s:
        await s.daemon.wait_until(lambda: s.daemon.hostwatch is not None and s.daemon.hostwatch.status is not None, 10)
        await s.daemon.recorder.flush()
        body = (await s.unix.get("/api/host/samples", params={"minutes": 5})).json()
        assert body["minutes"] == 5 and len(body["samples"]) >= 1
        assert set(body["samples"][0]) == {"ts", "cpu_pct", "mem_pct", "temp_c", "score"}
        for bad in ("0", "x", "100000"):
            assert (await s.unix.get("/api/host/samples", params={"minutes": bad})).status_code == 400


async def test_healthz_says_the_daemon_is_up(tmp_path: Path) -> None:
    async with serving(tmp_path, job(tmp_path, "ok", P.EXIT_OK)) as s:
        body = (await s.tcp.get("/healthz")).json()
        assert body["ok"] is True and body["jobs"] == 1 and body["version"]


# --- writes ------------------------------------------------------------------------------------

async def test_start_stop_and_restart_a_job(tmp_path: Path) -> None:
    async with serving(tmp_path, *crash_and_service(tmp_path)) as s:
        await reach(s.daemon, "svc", S.RUNNING)
        first = s.daemon.jobs["svc"].run.run_id
        again = await s.tcp.post("/api/jobs/svc/start", headers=GOOD)
        assert again.status_code == 409 and "already RUNNING" in again.json()["error"]
        stop = await s.tcp.post("/api/jobs/svc/stop", headers=GOOD)
        assert stop.json() == {"ok": True, "message": f"stopping svc (run {first})", "run_id": None}
        await reach(s.daemon, "svc", S.STOPPED)
        start = (await s.tcp.post("/api/jobs/svc/start", headers=GOOD)).json()
        assert start["message"] == "svc started" and start["run_id"] != first
        await reach(s.daemon, "svc", S.RUNNING)
        assert (await s.tcp.post("/api/jobs/svc/restart", headers=GOOD)).json()["message"] == "restarting svc"
        await s.daemon.wait_until(lambda: s.daemon.jobs["svc"].run is not None
                                  and s.daemon.jobs["svc"].run.run_id != start["run_id"], 10)
        assert (await s.tcp.post("/api/jobs/nosuch/stop", headers=GOOD)).status_code == 404


async def test_ack_resolves_a_crash_alert(tmp_path: Path) -> None:
    async with serving(tmp_path, *crash_and_service(tmp_path)) as s:
        await reach(s.daemon, "crashy", S.CRASHED)
        reply = await s.tcp.post("/api/alerts/crashy:crashed/ack", headers=GOOD)
        assert reply.json() == {"ok": True, "message": "alert crashy:crashed resolved", "run_id": None}
        assert "crashy:crashed" not in s.daemon.alerts.active
        again = await s.tcp.post("/api/alerts/crashy:crashed/ack", headers=GOOD)
        assert again.status_code == 404 and again.json()["error"] == "no active alert 'crashy:crashed'"
        slashed = await s.unix.post("/api/alerts/host:disk:%2Fvar%2Flib/ack")  # keys may hold '/'
        assert slashed.json()["error"] == "no active alert 'host:disk:/var/lib'"


async def test_reload_silence_and_unsilence(tmp_path: Path) -> None:
    async with serving(tmp_path, *crash_and_service(tmp_path)) as s:
        await reach(s.daemon, "svc", S.RUNNING)
        assert (await s.unix.post("/api/reload")).json()["message"] == "config reloaded: no job changed"
        muted = await s.unix.post("/api/silence", json={"target": "svc", "duration": "2h", "reason": "maint"})
        assert muted.status_code == 200 and muted.json()["message"].startswith("notifications for svc muted until")
        assert [x.target for x in s.daemon.notifier.status().silences] == ["svc"]
        bad = await s.unix.post("/api/silence", json={"target": "svc", "duration": "2 hours"})
        assert bad.status_code == 400 and bad.json()["error"].startswith("duration: ")
        nobody = await s.unix.post("/api/silence", json={"target": "nosuch", "duration": "1h"})
        assert nobody.status_code == 404
        assert (await s.unix.post("/api/silence", content=b"{not json")).status_code == 400
        assert (await s.unix.post("/api/silence", json={"target": "svc"})).status_code == 422
        assert (await s.unix.post("/api/unsilence", json={"target": "svc"})).json()["message"] == \
            "notifications for svc resumed"
        assert (await s.unix.post("/api/unsilence", json={"target": "svc"})).status_code == 404
        (tmp_path / "config.toml").write_text("[jobs.x]\ncommand = 5\n")
        refused = await s.unix.post("/api/reload")
        assert refused.status_code == 422 and "last good config" in refused.json()["error"]


async def test_errors_are_json_with_the_fix(tmp_path: Path) -> None:
    async with serving(tmp_path, job(tmp_path, "ok", P.EXIT_OK)) as s:
        nowhere = await s.unix.get("/api/nothing")
        assert nowhere.status_code == 404
        assert nowhere.json() == {"ok": False, "error": "no such endpoint: GET /api/nothing (see /openapi.json)"}
        assert (await s.unix.delete("/api/status")).status_code == 405
        huge = await s.unix.post("/api/silence", content=b"x" * 2_000_000)
        assert huge.status_code == 413 and huge.json()["ok"] is False


# --- the OpenAPI document ----------------------------------------------------------------------

async def test_the_openapi_document_lists_exactly_the_served_endpoints(tmp_path: Path) -> None:
    async with serving(tmp_path, job(tmp_path, "ok", P.EXIT_OK)) as s:
        doc = (await s.tcp.get("/openapi.json")).json()
    served = {(op.method, op.path) for op in OPERATIONS}
    documented = {(method, path) for path, ops in doc["paths"].items() for method in ops}
    assert documented == served
    assert doc["openapi"] == "3.1.0"
    schemas = doc["components"]["schemas"]
    refs = set(_refs(doc["paths"]))
    assert refs and all(ref.removeprefix("#/components/schemas/") in schemas for ref in refs)
    for schema in schemas.values():
        Draft202012Validator.check_schema(schema)
    assert {"StatusDocument", "HeartbeatBody", "ErrorReply"} <= set(schemas)


def _refs(node: object) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "$ref"] + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


# --- the event stream --------------------------------------------------------------------------

async def test_the_event_stream_pushes_a_change(tmp_path: Path) -> None:
    async with serving(tmp_path, *crash_and_service(tmp_path)) as s:
        await reach(s.daemon, "svc", S.RUNNING)
        async with s.tcp.stream("GET", "/api/events", headers=GOOD) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            states = _states(stream.aiter_lines())
            assert (await anext(states))["svc"] == "RUNNING"
            assert (await s.unix.post("/api/jobs/svc/stop")).status_code == 200
            while (await anext(states))["svc"] != "STOPPED":
                pass  # each event is a whole document; the stop shows within a second or two


async def _states(lines: AsyncIterator[str]) -> AsyncIterator[dict[str, str]]:
    async for line in lines:
        if line.startswith("data: "):
            doc = json.loads(line[6:])
            yield {name: j["state"] for name, j in doc["jobs"].items()}


def test_the_api_package_exports_a_sorted_all() -> None:
    import supervisor.api as api
    import supervisor.control as control

    for module in (api, control):
        assert module.__all__ == sorted(module.__all__)
        assert all(hasattr(module, name) for name in module.__all__)


@pytest.mark.parametrize(
    ("local", "host", "token", "status"),
    [
        ("127.0.0.1", "127.0.0.1:8765", None, None),
        ("::1", "[::1]:8765", None, None),
        ("127.0.0.1", "localhost:8765", None, None),
        ("127.0.0.1", "proofwatch.lan", None, None),  # in allowed_hosts
        ("127.0.0.1", "evil.example", None, 403),  # DNS rebinding
        ("10.0.0.5", "10.0.0.5:8765", None, 403),  # came in from the network, no token
        ("10.0.0.5", "10.0.0.5:8765", TOKEN, 200),  # with the token: fine from anywhere
    ],
    ids=["v4", "v6", "localhost", "allowed-host", "rebinding", "network-no-token", "network-token"],
)
def test_tokenless_reads_are_for_this_machine_only(tmp_path: Path, local: str, host: str,
                                                   token: str | None, status: int | None) -> None:
    from types import SimpleNamespace

    from starlette.requests import Request

    from supervisor.api._auth import Need, authorize
    from supervisor.api.errors import ApiError
    from supervisor.config import load_config

    (tmp_path / "c.toml").write_text('[api]\nallowed_hosts = ["proofwatch.lan"]\n'
                                     + (f'token = "{token}"\n' if token else ""))
    daemon = SimpleNamespace(config=load_config(tmp_path / "c.toml"))
    headers = [(b"host", host.encode())] + ([(b"authorization", f"Bearer {token}".encode())] if token else [])
    request = Request({"type": "http", "method": "GET", "path": "/api/status", "headers": headers,
                       "server": (local, 8765), "client": ("192.0.2.1", 50000)})
    if status in (None, 200):
        authorize(request, daemon, Need.READ)  # type: ignore[arg-type]
    else:
        with pytest.raises(ApiError) as info:
            authorize(request, daemon, Need.READ)  # type: ignore[arg-type]
        assert info.value.status == status


async def test_an_open_event_stream_does_not_hold_up_shutdown(tmp_path: Path) -> None:
    async with serving(tmp_path, job(tmp_path, "svc", P.BEATS_FOREVER, kind="service")) as s:
        async with s.tcp.stream("GET", "/api/events", headers=GOOD) as stream:
            lines = stream.aiter_lines()
            while not (await anext(lines)).startswith("data: "):
                pass
            s.daemon.shutdown("test: stop with a dashboard open")
            with anyio.fail_after(5):
                await s.daemon.finished.wait()
                rest = [line async for line in lines]  # the daemon ended the stream itself
            assert all(not line.startswith("data: ") or json.loads(line[6:]) for line in rest)


# --- the [api] section -------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('listen = "0.0.0.0:8765"', 'api.listen: "0.0.0.0:8765" is not a loopback address: set api.token as well'),
        ('listen = "myhost:8765"', "api.listen: \"myhost:8765\": 'myhost' is not an IP address"),
        ('listen = "127.0.0.1"', 'api.listen: "127.0.0.1" is not an address (use HOST:PORT'),
        ('listen = "[::1]:99999"', 'api.listen: "[::1]:99999": port 99999 is above 65535'),
        ('listen = "127.0.0.1:1"\nport = 2', "api.port: give listen or port, not both"),
        ("token = 5", "api.token: expected a string"),
        ('lisen = "127.0.0.1:1"', 'api.lisen: unknown key (did you mean "listen"?)'),
    ],
    ids=["public-without-token", "hostname", "no-port", "port-range", "both", "token-type", "typo"],
)
def test_a_bad_api_section_names_the_key_and_the_fix(tmp_path: Path, body: str, message: str) -> None:
    from supervisor.config import ConfigError, load_config

    (tmp_path / "c.toml").write_text(f"[api]\n{body}\n")
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "c.toml")
    assert message in str(info.value)
    where = str(info.value).split(": ", 1)[0]  # file:line of the key
    assert where in (f"{tmp_path / 'c.toml'}:2", f"{tmp_path / 'c.toml'}:3")


@pytest.mark.parametrize(
    ("body", "address"),
    [("", None), ("port = 8765", ("127.0.0.1", 8765)), ('listen = "[::1]:0"', ("::1", 0)),
     ('listen = "0.0.0.0:8765"\ntoken = "${T}"', ("0.0.0.0", 8765))],
    ids=["off", "port", "v6", "public-with-token"],
)
def test_the_api_section_says_where_to_listen(tmp_path: Path, body: str, address: tuple[str, int] | None) -> None:
    from supervisor.config import load_config

    (tmp_path / "c.toml").write_text(f"[api]\n{body}\n[jobs.x]\ncommand = \"true\"\nheartbeat_token = \"${{X}}\"\n")
    config = load_config(tmp_path / "c.toml")
    assert config.api.address == address
    assert "${X}" not in repr(config.jobs["x"])  # a SecretStr: never printed
