"""supervisor/selfwatch: sd_notify datagrams to a real AF_UNIX socket from a real daemon; the
dead-man's switch against a real HTTP server on 127.0.0.1 (answering, slow, silent, trickling);
the systemd unit in deploy/."""

from __future__ import annotations

import configparser
import logging
import os
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import anyio
import anyio.lowlevel
import anyio.to_thread
import pytest

from status.models import JobState
from supervisor import selfwatch
from supervisor.config import load_config
from supervisor.daemon import Daemon
from tests.supervisor.harness import HEADER, job, reach, running

UNIT = Path(__file__).resolve().parents[2] / "deploy" / "proofwatch.service"
HC_UUID = "5f0c1b7e-9a4d-4c2e-8f3b-2d6e1a7c9b40"

CRASH_AND_SHOW_ENV = """
import os, sys
print("NOTIFY_SOCKET=" + os.environ.get("NOTIFY_SOCKET", "<unset>"))
sys.exit(3)
"""


# --- systemd's side of sd_notify --------------------------------------------------------------

class FakeSystemd:
    """A bound AF_UNIX datagram socket, drained by a task (the kernel queues only ~10)."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.setblocking(False)
        self.messages: list[dict[str, str]] = []
        self._new = anyio.Event()

    async def serve(self) -> None:
        while True:
            await anyio.wait_readable(self.sock)
            while True:
                try:
                    data = self.sock.recv(65536)
                except BlockingIOError:
                    break
                self.messages.append(dict(line.split("=", 1) for line in data.decode().splitlines()))
                self._new.set()
                self._new = anyio.Event()

    async def wait_for(self, predicate: Callable[[list[dict[str, str]]], bool], timeout: float = 10) -> None:
        try:
            with anyio.fail_after(timeout):
                while not predicate(self.messages):
                    await self._new.wait()
        except TimeoutError:
            raise AssertionError(f"systemd never got what was expected: {self.messages}") from None

    def count(self, key: str) -> int:
        return sum(key in m for m in self.messages)


# --- Healthchecks.io's side of the dead-man's switch ------------------------------------------

class PingServer:
    """Records every request (method, path, body, arrival on time.monotonic()); answers per
    `mode`: "ok", "slow" (after `delay`), "silent" (accepts, never answers), "trickle" (starts
    an answer and sends one byte every 50 ms, never finishing)."""

    def __init__(self, mode: str = "ok", delay: float = 0.0) -> None:
        self.mode, self.delay = mode, delay
        self.hits: list[tuple[str, str, bytes, float]] = []
        self.cond = threading.Condition()
        self.release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _hit(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with server.cond:
                    server.hits.append((self.command, self.path, body, time.monotonic()))
                    server.cond.notify_all()
                try:
                    server.answer(self)
                except OSError:
                    pass  # the client gave up (its deadline): expected

            do_GET = do_POST = _hit

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def answer(self, handler: BaseHTTPRequestHandler) -> None:
        mode = self.mode
        if mode == "silent":
            self.release.wait(30)
            return
        if mode == "trickle":
            handler.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
            while not self.release.wait(0.05):
                handler.wfile.write(b"a")
            return
        if mode == "slow":
            time.sleep(self.delay)
        handler.send_response(200)
        handler.send_header("Content-Length", "2")
        handler.end_headers()
        handler.wfile.write(b"OK")

    def stop(self) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()

    def matching(self, method: str, path: str) -> list[tuple[str, str, bytes, float]]:
        with self.cond:
            return [h for h in self.hits if h[0] == method and h[1] == path]

    async def wait_for(self, method: str, path: str, n: int = 1, timeout: float = 10) -> None:
        def wait() -> bool:
            with self.cond:
                return self.cond.wait_for(lambda: len(self.matching(method, path)) >= n, timeout)
        assert await anyio.to_thread.run_sync(wait), f"no {n} {method} {path}: {self.hits}"


@pytest.fixture
def make_server() -> Iterator[Callable[..., PingServer]]:
    servers: list[PingServer] = []

    def make(mode: str = "ok", delay: float = 0.0) -> PingServer:
        servers.append(PingServer(mode, delay))
        return servers[-1]

    yield make
    for server in servers:
        server.stop()


def deadman(port: int, every: str = "200ms") -> str:
    return f'deadman_url = "http://127.0.0.1:{port}/ping/${{HC_UUID}}"\ndeadman_every = "{every}"\n'


async def watch_of(daemon: Daemon) -> selfwatch.SelfWatch:
    """The daemon's self-watch, once its task has begun (a few scheduler turns after ready)."""
    with anyio.fail_after(5):
        while (watch := selfwatch.state_of(daemon)) is None:
            await anyio.lowlevel.checkpoint()
    return watch


def leaks(text: str, port: int) -> bool:
    return HC_UUID in text or f"127.0.0.1:{port}/ping/" in text


# --- pure pieces ------------------------------------------------------------------------------

@pytest.mark.parametrize(("env", "expected"), [
    ({}, None),
    ({"WATCHDOG_USEC": "30000000"}, 15.0),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "4242"}, 15.0),
    ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),
    ({"WATCHDOG_USEC": "0"}, None),
    ({"WATCHDOG_USEC": "30s"}, None),
], ids=["unset", "no-pid", "our-pid", "another-pid", "zero", "garbage"])
def test_watchdog_interval_is_half_of_watchdog_usec_for_this_process_only(env, expected):
    assert selfwatch.watchdog_interval(env, 4242) == expected


@pytest.mark.parametrize(("previous", "now", "expected"), [
    (10.0, 10.1, 12.0),   # on time: the next tick on the grid
    (10.0, 11.9, 12.0),   # the tick's work took most of the period: no drift
    (10.0, 12.5, 14.0),   # one tick missed: skipped, not sent late twice
    (10.0, 16.0, 18.0),   # exactly on a later tick: the one after
], ids=["on-time", "slow-work", "missed-one", "on-a-tick"])
def test_next_slot_keeps_the_cadence_whatever_the_work_took(previous, now, expected):
    assert selfwatch.next_slot(previous, 2.0, now) == pytest.approx(expected)


@pytest.mark.parametrize(("url", "expected"), [
    ("https://hc-ping.com/abc", "https://hc-ping.com/abc/fail"),
    ("https://hc-ping.com/abc/", "https://hc-ping.com/abc/fail"),
    ("https://hc.example/ping/key/slug?create=1", "https://hc.example/ping/key/slug/fail?create=1"),
], ids=["uuid", "trailing-slash", "slug-with-query"])
def test_signal_url_appends_the_signal_to_the_path(url, expected):
    assert selfwatch.signal_url(url, "fail") == expected


def test_status_line_counts_jobs_by_state_and_alerts():
    jobs = [SimpleNamespace(state=s) for s in
            [JobState.RUNNING] * 9 + [JobState.STALLED] + [JobState.PENDING] * 2]
    assert selfwatch.status_line(jobs, 2) == "12 jobs: 2 pending, 9 running, 1 stalled; 2 alerts"
    assert selfwatch.status_line(jobs[:1], 1) == "1 job: 1 running; 1 alert"
    assert selfwatch.status_line([], 0) == "0 jobs; no alerts"


def test_a_reconciler_silent_past_the_limit_makes_the_daemon_unhealthy():
    now = time.monotonic()
    fresh = SimpleNamespace(reconciled_at=now - 5.0)
    stale = SimpleNamespace(reconciled_at=now - selfwatch.RECONCILE_STALE - 1)
    assert selfwatch.health_problem(fresh, now) is None  # type: ignore[arg-type]
    assert "the reconciler has not run for 46s" == selfwatch.health_problem(stale, now)  # type: ignore[arg-type]


async def test_sd_notify_reaches_an_abstract_socket_and_leaves_the_environment_clean():
    name = f"proofwatch-test-{uuid.uuid4().hex}"
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind("\0" + name)
    receiver.settimeout(5)
    environ = {"NOTIFY_SOCKET": "@" + name, "WATCHDOG_USEC": "4000000", "PATH": "/bin"}
    try:
        address, every = selfwatch.take_systemd_env(environ, os.getpid())
        assert environ == {"PATH": "/bin"} and every == 2.0
        notify = selfwatch.SdNotify(address)
        assert notify.send("READY=1", "STATUS=up")
        assert receiver.recv(4096) == b"READY=1\nSTATUS=up"
        notify.close()
    finally:
        receiver.close()


# --- a real daemon talking to systemd ---------------------------------------------------------

async def test_systemd_gets_ready_status_watchdog_and_stopping_from_a_real_daemon(tmp_path, monkeypatch):
    monkeypatch.setattr(selfwatch, "STATUS_EVERY", 0.1)
    systemd = FakeSystemd(str(tmp_path / "notify.sock"))
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify.sock"))
    monkeypatch.setenv("WATCHDOG_USEC", "200000")  # a ping every 100 ms
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(systemd.serve)
            async with running(tmp_path, job(tmp_path, "show", CRASH_AND_SHOW_ENV, start="manual")) as d:
                await systemd.wait_for(lambda ms: len(ms) >= 1)
                assert systemd.messages[0] == {"READY": "1", "STATUS": "1 job: 1 pending; no alerts"}
                assert not set(selfwatch.SYSTEMD_ENV) & set(os.environ), "jobs must not inherit them"
                await systemd.wait_for(lambda ms: sum("WATCHDOG" in m for m in ms) >= 3)
                assert {m["WATCHDOG"] for m in systemd.messages if "WATCHDOG" in m} == {"1"}

                d.control("start", "show")
                await reach(d, "show", JobState.CRASHED)
                await systemd.wait_for(lambda ms: any(m.get("STATUS") == "1 job: 1 crashed; 1 alert"
                                                      for m in ms))
                out = d.jobs["show"].last_run.stdout_path.read_text()
                assert "NOTIFY_SOCKET=<unset>" in out
                watch = selfwatch.state_of(d)
                assert watch is not None and watch.watchdog_every == 0.1 and watch.problem is None
            await systemd.wait_for(lambda ms: any("STOPPING" in m for m in ms))
            tg.cancel_scope.cancel()
    finally:
        systemd.sock.close()
    stopping = next(m for m in systemd.messages if "STOPPING" in m)
    assert stopping["STOPPING"] == "1" and stopping["STATUS"].startswith("stopping (test finished)")
    assert watch.watchdog_pings == systemd.count("WATCHDOG")
    assert systemd.count("READY") == 1 and systemd.count("STOPPING") == 1


# --- the dead-man's switch --------------------------------------------------------------------

async def test_deadman_pings_on_a_fixed_cadence_and_never_shows_its_url(tmp_path, monkeypatch, caplog,
                                                                       make_server):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("HC_UUID", HC_UUID)
    server = make_server("slow", delay=0.1)  # each ping takes half the period
    path = f"/ping/{HC_UUID}"
    async with running(tmp_path, supervisor=deadman(server.port)) as d:
        await server.wait_for("GET", path, n=6)
        state = selfwatch.state_of(d).deadman
    arrivals = [t for *_, t in server.matching("GET", path)][:6]
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
    assert 0.15 < statistics.median(gaps) < 0.27, f"not every 200ms: {gaps}"  # 0.3 if it drifted
    assert state.pings >= 1 and state.last_ok_at is not None
    assert not server.matching("GET", path + "/start") and not server.matching("POST", path + "/fail")
    assert not leaks(caplog.text, server.port), caplog.text
    assert not leaks(d.config.status_file.read_text(), server.port)


@pytest.mark.parametrize("mode", ["silent", "trickle"])
async def test_a_hanging_deadman_endpoint_times_out_is_logged_once_and_never_blocks_the_daemon(
        tmp_path, monkeypatch, caplog, make_server, mode):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("HC_UUID", HC_UUID)
    server = make_server(mode)
    path = f"/ping/{HC_UUID}"
    async with running(tmp_path, supervisor=deadman(server.port)) as d:
        await server.wait_for("GET", path, n=4)  # each one abandoned after 200ms
        state = selfwatch.state_of(d).deadman
        assert state.failures >= 3 and state.pings == 0
        assert state.last_error == "no complete answer within 200ms"
        server.mode = "ok"  # the endpoint recovers
        watch = await watch_of(d)
        with anyio.fail_after(10):
            while state.failures:
                await watch.next_deadman_tick()
        began = time.monotonic()
    assert time.monotonic() - began < 3, "a hanging endpoint must not hold up the shutdown"
    failed = [r for r in caplog.records if "dead-man's switch: ping failed:" in r.getMessage()]
    assert len(failed) == 1 and failed[0].levelno == logging.WARNING
    assert any("ping ok again after" in r.getMessage() for r in caplog.records)
    assert not leaks(caplog.text, server.port), caplog.text


async def test_a_deadman_url_naming_an_unset_variable_is_reported_once(tmp_path, monkeypatch, caplog,
                                                                      make_server):
    monkeypatch.delenv("HC_UUID", raising=False)
    server = make_server()
    async with running(tmp_path, supervisor=deadman(server.port, every="50ms")) as d:
        watch = await watch_of(d)
        with anyio.fail_after(10):
            while watch.deadman.failures < 3:
                await watch.next_deadman_tick()
        state = watch.deadman
    assert state.last_error == "deadman_url: ${HC_UUID} is not set in the daemon's environment"
    assert not server.hits
    assert [r.levelno for r in caplog.records if "ping failed" in r.getMessage()] == [logging.WARNING]


async def test_a_daemon_that_crashes_sends_fail_with_the_reason(tmp_path, monkeypatch, make_server):
    monkeypatch.setenv("HC_UUID", HC_UUID)
    server = make_server()
    path = f"/ping/{HC_UUID}"
    cfg = tmp_path / "config.toml"
    cfg.write_text(HEADER + deadman(server.port, every="10s"))
    daemon = Daemon(load_config(cfg))

    def broken() -> Any:
        raise RuntimeError("status document broken")  # a bug (an unwritable document is survived)

    with pytest.raises(BaseExceptionGroup) as caught:
        async with anyio.create_task_group() as tg:
            tg.start_soon(partial(daemon.run, handle_signals=False))
            await server.wait_for("GET", path)
            daemon.status.build = broken  # a bug in the daemon: its status writer dies
            daemon.status.changed(urgent=True)
    daemon.history.close()
    assert caught.group_contains(RuntimeError, match="status document broken")
    [(_, _, body, _)] = server.matching("POST", path + "/fail")
    assert b"stopping without a shutdown request: it crashed" in body
    assert selfwatch.state_of(daemon).deadman.fail_sent


async def test_a_clean_shutdown_sends_no_fail_signal(tmp_path, monkeypatch, make_server):
    monkeypatch.setenv("HC_UUID", HC_UUID)
    server = make_server()
    async with running(tmp_path, supervisor=deadman(server.port, every="10s")):
        await server.wait_for("GET", f"/ping/{HC_UUID}")
    assert [(m, p) for m, p, *_ in server.hits] == [("GET", f"/ping/{HC_UUID}")]


# --- the systemd unit -------------------------------------------------------------------------

def test_the_systemd_unit_is_valid_and_keeps_jobs_alive_across_daemon_restarts(tmp_path):
    unit = configparser.ConfigParser(interpolation=None, strict=False)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string(UNIT.read_text())
    service = unit["Service"]
    assert (service["Type"], service["NotifyAccess"], service["WatchdogSec"]) == ("notify", "main", "30s")
    assert service["Restart"] == "on-failure" and service["KillMode"] == "process"
    assert set(service["SuccessExitStatus"].split()) == {"130", "143"}
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert " run --config " in service["ExecStart"]
    assert int(service["TimeoutStopSec"].removesuffix("s")) >= 60
    assert "PrivateTmp" not in service and "ProtectHome" not in service
    assert unit["Install"]["WantedBy"] == "multi-user.target"

    analyze = shutil.which("systemd-analyze")
    if analyze is not None:  # verify it for real, with the venv placeholder filled in
        venv_bin = Path(sys.executable).parent / "proofwatch"
        text = UNIT.read_text().replace("/opt/proofwatch/.venv/bin/proofwatch", str(venv_bin))
        (tmp_path / "proofwatch.service").write_text(text)
        done = subprocess.run([analyze, "verify", str(tmp_path / "proofwatch.service")],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert "proofwatch.service" not in done.stderr, done.stderr
