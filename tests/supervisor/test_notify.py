"""supervisor/notify: delivery through the outbox to a real HTTP server on 127.0.0.1, a real
command, a real file and Apprise's json:// plugin; retries, restart, timeouts, redaction."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import stat
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest

from policies.alerting import AlertView, NotifySettings, NotifyState, SinkRule, plan_notifications
from status.history import History
from status.models import Severity
from status.outbox import Outbox
from supervisor.config import AlertSink, AlertsSettings, ConfigError, load_config
from supervisor import notify
from supervisor.notify import SIGNATURE_HEADER, Dispatcher, RetryPolicy, redact, render, to_payload

FAST = RetryPolicy(attempts=2, initial=0.02, max_wait=0.05, round_max=0.2)


# --- a real HTTP receiver on loopback ---------------------------------------------------------

class Receiver:
    """A threaded HTTP server that records every POST; can go down and come back on its port."""

    def __init__(self) -> None:
        self.port = 0
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.cond = threading.Condition()
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.cond:
                    receiver.requests.append((self.path, dict(self.headers.items()), body))
                    receiver.cond.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def ids(self) -> list[str]:
        with self.cond:
            return [json.loads(body)["id"] for path, _, body in self.requests if path == "/hook"]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10) -> None:
        def wait() -> bool:
            with self.cond:
                return self.cond.wait_for(predicate, timeout)
        assert await anyio.to_thread.run_sync(wait), "the receiver did not get what was expected"


@pytest.fixture
def receiver() -> Any:
    server = Receiver().start()
    yield server
    server.stop()


class LogWatch(logging.Handler):
    """Counts the dispatcher's log lines, so tests await outcomes instead of sleeping."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.cond = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        with self.cond:
            self.lines.append(record.getMessage())
            self.cond.notify_all()

    def count(self, text: str) -> int:
        return sum(text in line for line in self.lines)

    async def wait_for(self, text: str, n: int = 1, timeout: float = 10) -> None:
        def wait() -> bool:
            with self.cond:
                return self.cond.wait_for(lambda: self.count(text) >= n, timeout)
        assert await anyio.to_thread.run_sync(wait), f"no {n} log lines with {text!r}: {self.lines}"


@pytest.fixture
def watch() -> Any:
    handler = LogWatch()
    logger = logging.getLogger("supervisor.notify")
    old = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(old)


def alert(key: str = "retrain:stalled", severity: Severity = Severity.CRITICAL) -> AlertView:
    now = datetime.now(timezone.utc)
    return AlertView(key=key, job=key.split(":")[0], severity=severity, title=f"{key}: no progress",
                     detail="no progress for 20m; last message: page 3", first_seen=now, last_seen=now)


def sink(**fields: Any) -> AlertSink:
    """A sink as written in config.toml (durations and secrets as strings)."""
    return AlertSink.model_validate(fields)


def settings(*sinks: AlertSink) -> AlertsSettings:
    return AlertsSettings.model_validate({"group_wait": "0s", "sinks": list(sinks)})


def hook(receiver: Receiver, **extra: Any) -> AlertSink:
    return sink(kind="webhook", name="hook", url=f"http://127.0.0.1:{receiver.port}/hook",
                     timeout="2s", **extra)


@asynccontextmanager
async def serving(dispatcher: Dispatcher) -> AsyncIterator[Dispatcher]:
    async with anyio.create_task_group() as tg:
        await tg.start(dispatcher.serve)
        yield dispatcher
        tg.cancel_scope.cancel()


def outbox_rows(db: Path) -> list[Any]:
    history = History(db)
    try:
        return Outbox(history.engine).rows()
    finally:
        history.close()


# --- webhook ------------------------------------------------------------------------------

async def test_webhook_posts_the_json_body_signed_with_hmac(
        tmp_path: Path, receiver: Receiver, watch: LogWatch) -> None:
    db = tmp_path / "history.db"
    dispatcher = Dispatcher(settings(hook(receiver, secret="s3cret-key")), History(db))
    async with serving(dispatcher):
        await dispatcher.update([alert()])
        await receiver.wait_for(lambda: len(receiver.requests) == 1)
        await watch.wait_for("delivered (")
        assert dispatcher.depth() == 0
    path, headers, body = receiver.requests[0]
    expected = "sha256=" + hmac.new(b"s3cret-key", body, hashlib.sha256).hexdigest()
    assert headers[SIGNATURE_HEADER] == expected
    assert headers["Content-Type"] == "application/json"
    payload = json.loads(body)
    assert headers["X-Proofwatch-Delivery"] == payload["id"]
    assert payload["source"] == "proofwatch" and payload["sink"] == "hook"
    assert payload["severity"] == "critical"
    assert payload["title"] == "[CRITICAL] retrain:stalled: no progress"
    [item] = payload["alerts"]
    assert (item["key"], item["event"], item["job"], item["state"]) == (
        "retrain:stalled", "new", "retrain", "firing")
    assert "no progress for 20m" in item["detail"] and "no progress for 20m" in payload["text"]
    [row] = outbox_rows(db)
    assert (row.attempts, row.last_error, row.payload["id"]) == (1, None, payload["id"])
    assert row.delivered_at is not None and row.duration_ms is not None


async def test_webhook_outage_then_recovery_delivers_every_notification_once(
        tmp_path: Path, receiver: Receiver, watch: LogWatch) -> None:
    receiver.stop()  # down: connection refused on its port
    dispatcher = Dispatcher(settings(hook(receiver)), History(tmp_path / "h.db"), retry=FAST)
    keys = [f"job{i}:failed" for i in range(5)]
    async with serving(dispatcher):
        for n in range(1, 6):
            await dispatcher.update([alert(k) for k in keys[:n]])  # one new alert per call
        assert dispatcher.depth() == 5
        await watch.wait_for("attempt 2 failed", n=5)  # every row went through a failed round
        assert receiver.requests == []
        receiver.start()  # back up on the same port
        await receiver.wait_for(lambda: len(set(receiver.ids())) == 5)
        await watch.wait_for("delivered (", n=5)
        assert dispatcher.depth() == 0
    ids = receiver.ids()
    assert len(ids) == len(set(ids)) == 5
    assert sorted(json.loads(b)["alerts"][0]["key"] for _, _, b in receiver.requests) == keys


async def test_undelivered_rows_of_a_stopped_dispatcher_go_out_after_restart(
        tmp_path: Path, receiver: Receiver, watch: LogWatch) -> None:
    db = tmp_path / "history.db"
    receiver.stop()
    first = Dispatcher(settings(hook(receiver)), History(db), retry=FAST)
    async with serving(first):
        await first.update([alert("a:failed")])
        await first.update([alert("a:failed"), alert("b:failed")])
        await watch.wait_for("failed after", n=2)
    assert first.depth() == 2  # cancelled with both undelivered

    receiver.start()
    second = Dispatcher(settings(hook(receiver)), History(db), retry=FAST)
    async with serving(second):
        await receiver.wait_for(lambda: len(receiver.ids()) == 2)
        await watch.wait_for("delivered (", n=2)
        assert await second.update([alert("a:failed"), alert("b:failed")]) is not None
        assert second.depth() == 0
    assert sorted(json.loads(b)["alerts"][0]["key"] for _, _, b in receiver.requests) == [
        "a:failed", "b:failed"]  # the restored state knew both were announced: no repeats
    assert all(r.delivered_at is not None for r in outbox_rows(db))


async def test_silence_is_persisted_and_mutes_until_lifted(tmp_path: Path, watch: LogWatch) -> None:
    db = tmp_path / "h.db"
    made = sink(kind="file", name="log", path=str(tmp_path / "n.jsonl"))
    first = Dispatcher(settings(made), History(db))
    made_silence = await first.silence("retrain", 600, reason="deploying")
    assert await first.update([alert()]) == made_silence.until  # due when the silence ends
    assert first.depth() == 0 and watch.count("notification silenced") == 1
    second = Dispatcher(settings(made), History(db))  # a restart: the silence is still there
    await second.update([alert()])
    assert [s.target for s in second.silences()] == ["retrain"] and second.depth() == 0
    assert await second.unsilence("retrain")
    await second.update([alert()])
    assert second.depth() == 1


# --- command, file, apprise ---------------------------------------------------------------

async def test_hanging_command_times_out_without_delaying_the_webhook(
        tmp_path: Path, receiver: Receiver, watch: LogWatch) -> None:
    pidfile = tmp_path / "pid"
    hang = sink(kind="command", name="hang", timeout="1s",
                     command=["sh", "-c", f'echo $$ > "{pidfile}"; exec sleep 60'])
    slow_retry = RetryPolicy(attempts=1, initial=0.01, max_wait=0.01, round_max=600)
    dispatcher = Dispatcher(settings(hang, hook(receiver)), History(tmp_path / "h.db"),
                            retry=slow_retry)
    async with serving(dispatcher):
        with anyio.fail_after(0.9):  # well inside the command's own timeout
            await dispatcher.update([alert()])
            await receiver.wait_for(lambda: len(receiver.requests) == 1)
        await watch.wait_for("timed out after 1s")
    pid = int(pidfile.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # killed, and reaped
    hang_row = next(r for r in outbox_rows(tmp_path / "h.db") if r.sink == "hang")
    assert hang_row.delivered_at is None and hang_row.attempts == 1
    assert "timed out after 1s" in (hang_row.last_error or "")


async def test_command_sink_gets_the_json_on_stdin(tmp_path: Path, watch: LogWatch) -> None:
    out = tmp_path / "got.json"
    made = sink(kind="command", name="cmd", command=["sh", "-c", f'cat > "{out}"'])
    dispatcher = Dispatcher(settings(made), History(tmp_path / "h.db"))
    async with serving(dispatcher):
        await dispatcher.update([alert()])
        await watch.wait_for("delivered (")
    assert json.loads(out.read_text())["alerts"][0]["key"] == "retrain:stalled"


async def test_file_sink_appends_json_lines(tmp_path: Path, watch: LogWatch) -> None:
    made = sink(kind="file", name="log", path=Path("notes/alerts.jsonl"))
    dispatcher = Dispatcher(settings(made), History(tmp_path / "h.db"), base_dir=tmp_path)
    async with serving(dispatcher):
        await dispatcher.update([alert("a:failed")])
        await dispatcher.update([alert("a:failed"), alert("b:failed", Severity.WARNING)])
        await dispatcher.update([alert("b:failed", Severity.WARNING)])
        await watch.wait_for("delivered (", n=3)
    path = tmp_path / "notes" / "alerts.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(p["alerts"][0]["key"], p["alerts"][0]["event"]) for p in lines] == [
        ("a:failed", "new"), ("b:failed", "new"), ("a:failed", "resolved")]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


async def test_apprise_json_url_reaches_the_local_server(
        tmp_path: Path, receiver: Receiver, watch: LogWatch) -> None:
    made = sink(kind="apprise", name="apprise", url=f"json://127.0.0.1:{receiver.port}/apprise")
    dispatcher = Dispatcher(settings(made), History(tmp_path / "h.db"))
    async with serving(dispatcher):
        await dispatcher.update([alert()])
        await receiver.wait_for(lambda: any(p == "/apprise" for p, _, _ in receiver.requests))
        await watch.wait_for("delivered (")
    body = json.loads(receiver.requests[0][2])
    assert body["title"] == "[CRITICAL] retrain:stalled: no progress"
    assert "no progress for 20m" in body["message"]
    assert body["type"] == "failure"


# --- secrets --------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "expected"), [
    ("https://user:pw@hooks.example.com/services/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX?token=abc&x=1",
     "https://***@hooks.example.com/services/T000/B000/***?token=***&x=1"),
    ("tgram://123456789:AAHsecret/12345", "tgram://***"),
    ("mailto://me:hunter2@example.com", "mailto://***"),
    ("POST http://127.0.0.1:8080/hook failed", "POST http://127.0.0.1:8080/hook failed"),
    ("Authorization: Bearer abc.def", "Authorization: Bearer ***"),
], ids=["webhook-url", "apprise-telegram", "apprise-mail", "plain-url", "header"])
def test_redact_masks_credentials_in_urls_and_text(text: str, expected: str) -> None:
    assert redact(text) == expected


async def test_secrets_stay_out_of_logs_outbox_and_config_repr(
        tmp_path: Path, receiver: Receiver, watch: LogWatch, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    receiver.stop()
    base = f"127.0.0.1:{receiver.port}"
    sinks = [sink(kind="webhook", name="hook", timeout="2s", secret="hmac-TOPSECRET-1",
                       url=f"http://{base}/hook?token=URLTOKEN123"),
             sink(kind="apprise", name="chat", timeout="5s", url=f"json://bot:APPRISEPW99@{base}/x")]
    dispatcher = Dispatcher(settings(*sinks), History(tmp_path / "h.db"), retry=FAST)
    async with serving(dispatcher):
        await dispatcher.update([alert()])
        await watch.wait_for("-> hook: attempt 2 failed")
        await watch.wait_for("-> chat: attempt 2 failed")
        receiver.start()  # success is logged too (httpx logs the request line with the URL)
        await watch.wait_for("delivered (", n=2)
    assert "HTTP Request: POST" in caplog.text
    secrets = ("hmac-TOPSECRET-1", "URLTOKEN123", "APPRISEPW99")
    logged = caplog.text + "\n".join(watch.lines)
    assert "attempt 1 failed" in logged
    stored = json.dumps([(r.last_error, r.payload) for r in outbox_rows(tmp_path / "h.db")])
    shown = repr(sinks) + str(settings(*sinks)) + render(json.loads(stored)[0][1])[1]
    for secret in secrets:
        assert secret not in logged and secret not in stored and secret not in shown


# --- config ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("toml", "message"), [
    ('[[alerts.sinks]]\nkind = "webhook"\n',
     'config.toml:1: alerts.sinks[0].url: is required for kind webhook (e.g. url = "https://example.com/hook")'),
    ('[[alerts.sinks]]\nkind = "webhook"\nurl = "ftp://h/x"\n',
     "config.toml:3: alerts.sinks[0].url: is not an http(s) URL (it must start with http:// or https://)"),
    ('[[alerts.sinks]]\nkind = "command"\n', "config.toml:1: alerts.sinks[0].command: is required "
     'for kind command (e.g. command = ["notify-send", "proofwatch"])'),
    ('[[alerts.sinks]]\nkind = "file"\npath = "a"\n[[alerts.sinks]]\nkind = "apprise"\nurl = "x"\n',
     'config.toml:6: alerts.sinks[1].url: is not an Apprise URL (use e.g. "tgram://BOT_TOKEN/CHAT_ID")'),
    ('[[alerts.sinks]]\nkind = "file"\npath = "a"\nsecret = "k"\n',
     "config.toml:4: alerts.sinks[0].secret: applies to kind webhook only, not file"),
    ('[[alerts.sinks]]\nkind = "file"\npath = "a"\nname = "x"\n[[alerts.sinks]]\nkind = "file"\n'
     'path = "b"\nname = "x"\n', 'config.toml:8: alerts.sinks[1].name: "x" is already the name of alerts.sinks[0]'),
    ('[alerts]\nrepeat_every = "1 hour"\n',
     'config.toml:2: alerts.repeat_every: "1 hour" is not a duration (use e.g. "1h")'),
    ('[[alerts.sinks]]\nkind = "file"\npath = "a"\nmin_severity = "high"\n',
     'config.toml:4: alerts.sinks[0].min_severity: "high" is not one of: info, warning, critical'),
], ids=["webhook-no-url", "webhook-not-http", "command-missing", "apprise-bad-url",
        "secret-on-file", "duplicate-name", "bad-duration", "bad-severity"])
def test_sink_config_errors_name_the_line_and_key(tmp_path: Path, toml: str, message: str) -> None:
    (tmp_path / "config.toml").write_text(toml)
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "config.toml")
    assert str(info.value) == f"{tmp_path}/{message}"


def test_sink_config_defaults_and_secret_fields(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(
        '[alerts]\nescalate_after = "2h"\n[[alerts.sinks]]\nkind = "file"\npath = "n.jsonl"\n'
        '[[alerts.sinks]]\nkind = "webhook"\nurl = "https://h/x?key=K1"\nsecret = "S1"\n'
        'timeout = "3s"\nmin_severity = "warning"\njobs = ["arb"]\n')
    alerts = load_config(tmp_path / "config.toml").alerts
    assert (alerts.repeat_every, alerts.escalate_after, alerts.group_wait) == (3600, 7200, 10)
    file_sink, web = alerts.sinks
    assert (file_sink.name, file_sink.timeout, file_sink.min_severity) == ("file0", 10, "info")
    assert (web.name, web.timeout, web.min_severity, web.jobs) == ("webhook1", 3, "warning", ["arb"])
    assert web.url is not None and web.url.get_secret_value() == "https://h/x?key=K1"
    assert "K1" not in repr(alerts) and "S1" not in repr(alerts)


# --- message and package surface ------------------------------------------------------------

def test_grouped_message_text_puts_caused_alerts_under_the_host_alert() -> None:
    t0 = datetime(2026, 5, 1, tzinfo=timezone.utc)
    host = AlertView(key="host:disk:/", severity=Severity.CRITICAL, title="disk / is 97% full",
                     first_seen=t0, last_seen=t0)
    job = AlertView(key="retrain:failed", job="retrain", severity=Severity.CRITICAL,
                    title="retrain: failed", detail="No space left on device", first_seen=t0,
                    last_seen=t0)
    plan = plan_notifications([host, job], [SinkRule(name="s")], NotifyState(), t0,
                              NotifySettings(group_wait=0))
    payload = to_payload(plan.notifications[0])
    assert payload["title"] == "[CRITICAL] disk / is 97% full"
    assert payload["text"].splitlines()[1].startswith("  caused by it: [critical] retrain: failed")
    assert "No space left on device" in payload["text"]
    assert [a["inhibited_by"] for a in payload["alerts"]] == [None, "host:disk:/"]


def test_public_names_are_sorted_and_importable() -> None:
    assert notify.__all__ == sorted(notify.__all__)
    assert all(hasattr(notify, name) for name in notify.__all__)
