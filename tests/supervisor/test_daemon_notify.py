"""Alerts from the running daemon reach a real webhook on 127.0.0.1, at least once, across
a notifier outage and a daemon restart."""

from __future__ import annotations

import json

import pytest

from status.models import JobState
from tests import _procs as P
from tests._procs import script
from tests.supervisor.harness import HEADER, job, reach, running
from tests.supervisor.test_notify import Receiver, receiver  # noqa: F401  (fixture)


def sink(port: int) -> str:
    return (f'\n[alerts]\ngroup_wait = "50ms"\n[[alerts.sinks]]\nkind = "webhook"\n'
            f'url = "http://127.0.0.1:{port}/hook"\nsecret = "s3cret-token"\ntimeout = "2s"\n')


def alerts_in(receiver: Receiver) -> list[dict]:
    with receiver.cond:
        bodies = [json.loads(body) for path, _, body in receiver.requests if path == "/hook"]
    return [a for b in bodies for a in b["alerts"]]


async def test_a_crash_alert_reaches_the_webhook_with_its_detail(tmp_path, receiver):  # noqa: F811
    async with running(tmp_path, job(tmp_path, "boom", P.CRASH_AT_START), sink(receiver.port)) as d:
        await reach(d, "boom", JobState.CRASHED)
        await receiver.wait_for(lambda: any(a["key"] == "boom:crashed" for a in alerts_in(receiver)))
        sent = next(a for a in alerts_in(receiver) if a["key"] == "boom:crashed")
        assert "exited with code 3 before its first heartbeat" in sent["title"]
        assert "fatal: FEED_TOKEN is not set" in sent["detail"]
        status = d.config.status_file.read_text()
        assert "s3cret-token" not in status


async def test_notifications_queued_while_the_webhook_was_down_arrive_after_a_restart(tmp_path):
    server = Receiver().start()
    port = server.port
    server.stop()  # the notifier endpoint is down
    tables = [job(tmp_path, "boom", P.CRASH_AT_START), sink(port)]
    async with running(tmp_path, *tables) as d:
        await reach(d, "boom", JobState.CRASHED)
        await d.wait_until(lambda: d.notifier.dispatcher.depth() >= 1, 10)
    # the daemon is gone with the notification undelivered; the endpoint comes back
    server = Receiver()
    server.port = port
    server.start()
    try:
        manual = job(tmp_path, "boom", P.CRASH_AT_START, start="manual")
        async with running(tmp_path, manual, sink(port)):
            await server.wait_for(lambda: any(a["key"] == "boom:crashed" for a in alerts_in(server)))
        ids = server.ids()
        assert len(ids) == len(set(ids)), "each notification delivered once"
    finally:
        server.stop()


async def test_a_webhook_secret_can_come_from_the_environment(tmp_path, receiver, monkeypatch):  # noqa: F811
    import hashlib
    import hmac

    monkeypatch.setenv("PW_HOOK_SECRET", "from-the-env")
    table = sink(receiver.port).replace('secret = "s3cret-token"', 'secret = "${PW_HOOK_SECRET}"')
    async with running(tmp_path, job(tmp_path, "boom", P.CRASH_AT_START), table):
        await receiver.wait_for(lambda: bool(receiver.ids()))
    with receiver.cond:
        _path, headers, body = receiver.requests[0]
    expected = hmac.new(b"from-the-env", body, hashlib.sha256).hexdigest()
    assert headers["X-Proofwatch-Signature"] == f"sha256={expected}"


def _undelivered(db) -> int:
    import sqlite3

    try:
        with sqlite3.connect(db) as con:
            return con.execute("select count(*) from outbox where delivered_at is null").fetchone()[0]
    except sqlite3.OperationalError:  # the daemon has not created its tables yet
        return 0


@pytest.mark.slow
def test_a_daemon_killed_with_undelivered_notifications_sends_them_after_restart(tmp_path):
    import os
    import signal
    import subprocess
    import sys

    from tests.supervisor.test_cli import PROOFWATCH, wait_for

    server = Receiver().start()
    port = server.port
    server.stop()  # the endpoint is down while the alert is raised
    crash = script(tmp_path, "boom", P.CRASH_AT_START)
    cfg = tmp_path / "config.toml"
    cfg.write_text(HEADER + f'[jobs.boom]\ncommand = ["{sys.executable}", "{crash}"]\n' + sink(port))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROOFWATCH_")}

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen([*PROOFWATCH, "run", "--config", str(cfg)], cwd=tmp_path, env=env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    db = tmp_path / "var" / "history.db"
    daemon = start()
    try:
        wait_for("an undelivered notification in the outbox", lambda: db.exists() and _undelivered(db) >= 1)
    finally:
        daemon.send_signal(signal.SIGKILL)  # no chance to flush or say goodbye
        daemon.wait()
    server = Receiver()
    server.port = port
    server.start()
    cfg.write_text(cfg.read_text().replace("[jobs.boom]\n", '[jobs.boom]\nstart = "manual"\n'))
    daemon = start()
    try:
        wait_for("the notification to arrive", lambda: any(a["key"] == "boom:crashed" for a in alerts_in(server)))
        wait_for("the outbox to drain", lambda: _undelivered(db) == 0)
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=20)
        server.stop()
