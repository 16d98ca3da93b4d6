"""Losing the shared store (issue 12): a real daemon on a real PostgreSQL, the server stopped
under it (pg_ctl stop -m fast) and started again. Supervision and local alerting go on, history
writes are queued (never split row by row, never dropped), status.json and `proofwatch status`
say so, `store:unreachable` is raised after a while, and every row reaches PostgreSQL once the
server is back."""

from __future__ import annotations

import io
import json
import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest
from rich.console import Console
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from status.history import AlertRow, Batch, History
from status.models import JobState
from status.store import read_status
from supervisor import recorder as recorder_mod
from supervisor import storewatch
from supervisor.recorder import Recorder, _database_wide, connection_lost, error_text
from supervisor.render import status_view
from tests._procs import BEATS_FOREVER
from tests.fleet.pg import PostgresServer, free_port
from tests.supervisor.harness import job, reach, running
from tests.supervisor.test_notify import Receiver

pytestmark = pytest.mark.anyio

# progress until the test drops `hold` in its run dir, then alive without progress (a stall)
STALLS_ON_HOLD = """
import os, time
from pathlib import Path
from workers.sdk import Run
run = Run.from_env()
hold = Path(os.environ["PROOFWATCH_RUN_DIR"]) / "hold"
i = 0
while True:
    if not hold.exists():
        i += 1
    run.beat({"n": i}, force=True)
    time.sleep(0.05)
"""

# heartbeats until the test drops `go` in its run dir, then exits 1 (a failed task)
FAILS_ON_GO = """
import os, sys, time
from pathlib import Path
from workers.sdk import Run
run = Run.from_env()
go = Path(os.environ["PROOFWATCH_RUN_DIR"]) / "go"
i = 0
while not go.exists():
    i += 1
    run.beat({"n": i}, force=True)
    time.sleep(0.05)
sys.exit(1)
"""



def _header(url: str) -> str:
    return ('[supervisor]\nstate_dir = "var"\ndata_dir = "data"\nrescan_every = "200ms"\n'
            'status_min_interval = "50ms"\nallow_root = true\nhost = "box1"\n'
            f'[store]\nurl = "{url}"\n')


async def _poll(predicate: Any, what: str, timeout: float = 15) -> None:
    """Poll `predicate()` every 50 ms until it holds; fail naming `what` at the deadline."""
    with anyio.move_on_after(timeout):
        while not predicate():
            await anyio.sleep(0.05)
        return
    raise AssertionError(f"timed out after {timeout}s waiting for: {what}")


def _doc(path: Path) -> Any:
    try:
        return read_status(path)
    except Exception:
        return None


async def _hooked(receiver: Receiver, *want: tuple[str, str]) -> None:
    """Wait until the webhook received each (alert key, event)."""
    try:
        await receiver.wait_for(lambda: set(want) <= set(_hook_keys(receiver)), timeout=15)
    except AssertionError:
        raise AssertionError(f"webhook: wanted {want}, got {_hook_keys(receiver)}") from None


def _hook_keys(receiver: Receiver) -> list[tuple[str, str]]:
    with receiver.cond:
        bodies = [json.loads(body) for path, _, body in receiver.requests if path == "/hook"]
    return [(a["key"], a["event"]) for b in bodies for a in b["alerts"]]


class Spy:
    """Every row the daemon hands its recorder, and how the recorder writes them."""

    def __init__(self, rec: Recorder) -> None:
        self.events: list[dict[str, Any]] = []
        self.runs: dict[str, dict[str, Any]] = {}
        self.alerts: dict[str, AlertRow] = {}
        self.applies: list[int] = []  # rows per History.apply attempt
        self.splits = 0
        for name in ("event", "run", "alert"):
            setattr(rec, name, self._wrap(name, getattr(rec, name)))
        real_apply = rec.history.apply

        def apply(batch: Batch) -> None:
            self.applies.append(len(batch.runs) + len(batch.events) + len(batch.alerts))
            real_apply(batch)

        rec.history.apply = apply  # type: ignore[method-assign]
        real_split = rec._apply_rows

        def split(batch: Batch) -> Any:
            self.splits += 1
            return real_split(batch)

        rec._apply_rows = split  # type: ignore[method-assign]

    def _wrap(self, name: str, fn: Any) -> Any:
        def wrapped(row: Any, *args: Any) -> None:
            if name == "event":
                self.events.append(dict(row))
            elif name == "run":
                self.runs[row["run_id"] if isinstance(row, dict) else row.run_id] = (
                    dict(row) if isinstance(row, dict) else row.model_dump())
            else:
                self.alerts[row.id] = row.model_copy()
            fn(row, *args)
        return wrapped


async def test_losing_postgresql_keeps_supervising_and_alerting_and_loses_no_history(
        tmp_path: Path, pg_server: PostgresServer, pg_url: str, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(recorder_mod, "RETRY_MAX", 1.0)  # catch up within 1 s of the server's return
    monkeypatch.setattr(storewatch, "UNREACHABLE_AFTER", 2.0)
    monkeypatch.setattr(storewatch, "CHECK_EVERY", 0.2)
    receiver = Receiver().start()
    sinks = (f'[alerts]\ngroup_wait = "0s"\n[[alerts.sinks]]\nkind = "webhook"\nname = "hook"\n'
             f'url = "http://127.0.0.1:{receiver.port}/hook"\n')
    tables = [job(tmp_path, "steady", BEATS_FOREVER, kind="service"),
              job(tmp_path, "slow", STALLS_ON_HOLD, kind="service", stall_after="1s"),
              job(tmp_path, "flaky", FAILS_ON_GO, kind="task"),
              sinks]
    caplog.set_level(logging.INFO, logger="supervisor.recorder")
    try:
        async with running(tmp_path, *tables, header=_header(pg_url)) as d:
            spy = Spy(d.recorder)
            for name in ("steady", "slow", "flaky"):
                await reach(d, name, JobState.RUNNING)
            assert await d.recorder.flush() and d.store_status().ok

            # ---- the outage ----
            await anyio.to_thread.run_sync(pg_server.stop)
            down_at = datetime.now(timezone.utc)
            (d.jobs["slow"].run.run_dir / "hold").touch()  # type: ignore[union-attr]
            (d.jobs["flaky"].run.run_dir / "go").touch()  # type: ignore[union-attr]
            await reach(d, "slow", JobState.STALLED)  # supervision goes on
            await reach(d, "flaky", JobState.FAILED)
            await _hooked(receiver, ("flaky:failed", "new"), ("slow:stalled", "new"))
            await _poll(lambda: (doc := _doc(d.config.status_file)) is not None and not doc.store.ok
                        and doc.store.queued > 0, "status.json: store ok=false with rows queued")
            doc = read_status(d.config.status_file)
            assert doc.store.kind == "postgresql" and doc.store.target.startswith("127.0.0.1:")
            assert "connection failed" in (doc.store.error or ""), doc.store.error  # refused, or cut while stopping
            assert doc.store.failing_since is not None and doc.store.failing_since >= down_at
            assert doc.jobs["steady"].state == JobState.RUNNING  # still heartbeating, still watched
            console = Console(width=250, record=True, file=io.StringIO())
            console.print(status_view(doc, daemon_up=True))
            screen = console.export_text()
            assert "history store postgresql 127.0.0.1:" in screen and "UNREACHABLE" in screen, screen
            assert f"{doc.store.queued} row{'' if doc.store.queued == 1 else 's'} queued" in screen

            # after UNREACHABLE_AFTER the operator is told, through the local outbox
            await _hooked(receiver, ("store:unreachable", "new"))
            assert "store:unreachable" in d.alerts.active
            # past SPLIT_AFTER failed attempts: still whole batches, never row by row
            await _poll(lambda: len(spy.applies) >= recorder_mod.SPLIT_AFTER + 3,
                        "more failed attempts than SPLIT_AFTER")
            assert spy.splits == 0 and d.recorder.quarantined == 0
            queued_down = d.recorder.queued()

            # ---- the server returns ----
            await anyio.to_thread.run_sync(pg_server.start)
            await _poll(lambda: (doc := _doc(d.config.status_file)) is not None and doc.store.ok
                        and doc.store.queued == 0 and "store:unreachable" not in d.alerts.active,
                        "status.json: store ok=true, nothing queued, store:unreachable resolved")
            await _hooked(receiver, ("store:unreachable", "resolved"))
            assert await d.recorder.flush()
            assert spy.splits == 0 and d.recorder.quarantined == 0
    finally:
        receiver.stop()
    events, runs, alerts = spy.events, spy.runs, spy.alerts  # up to the last write at shutdown

    # every row handed over during the outage is in PostgreSQL, as last handed over
    history = History(pg_url, create=False, host="box1")
    try:
        stored_events = {(e.job, e.kind, e.reason, e.to_state) for e in history.events(limit=10_000)}
        want = {(e["job"], e["kind"], e["reason"], e["to_state"]) for e in events}
        assert want - stored_events == set()
        assert ("slow", "transition", "no progress for 1s (stall_after)", "STALLED") in want
        assert any(e[0] == "flaky" and e[3] == "FAILED" for e in want)
        for run_id, row in runs.items():
            stored = history.run(run_id)
            assert stored is not None and stored.state == row["state"], (run_id, row["state"])
        stored_alerts = {a.id: a for a in history.alerts(limit=1000)}
        for alert_id, row in alerts.items():
            assert alert_id in stored_alerts and stored_alerts[alert_id].count >= row.count
        keys = {a.key: a for a in stored_alerts.values()}
        assert {"flaky:failed", "slow:stalled", "store:unreachable"} <= set(keys)
        assert keys["store:unreachable"].resolved_at is not None
    finally:
        history.close()
    assert queued_down > 0

    # the log: each distinct error once per outage (no traceback), then one "written again"
    failed = [r for r in caplog.records if "write failed" in r.getMessage()]
    assert 1 <= len(failed) <= 3 and len({r.getMessage().split(";")[0] for r in failed}) == len(failed)
    assert not any(r.exc_info for r in failed)  # no traceback for an unreachable server
    assert len([r for r in caplog.records if "written again" in r.getMessage()]) == 1
    assert not [r for r in caplog.records if "quarantined" in r.getMessage()]


def test_a_refused_connection_is_database_wide_and_named_without_the_password() -> None:
    engine = create_engine(f"postgresql+psycopg://proofwatch:s3cret@127.0.0.1:{free_port()}/x",
                           connect_args={"connect_timeout": 5})
    try:
        with pytest.raises(DBAPIError) as caught:
            with engine.connect() as conn:
                conn.execute(text("select 1"))
    finally:
        engine.dispose()
    exc = caught.value
    assert connection_lost(exc) and _database_wide(exc)
    line = error_text(exc)
    assert "Connection refused" in line and "s3cret" not in line and "\n" not in line
    assert "sqlalche.me" not in line


async def test_the_recorder_never_splits_rows_while_postgresql_is_down(
        tmp_path: Path, pg_server: PostgresServer, pg_url: str) -> None:
    history = History(pg_url, host="box1")
    recorder = Recorder(history, tmp_path / "alerts.jsonl")
    attempts: list[int] = []
    real_apply, real_split = history.apply, recorder._apply_rows

    def apply(batch: Batch) -> None:
        attempts.append(len(batch.events))
        real_apply(batch)

    def split(batch: Batch) -> Any:
        raise AssertionError("row-by-row split while the server is down")

    history.apply = apply  # type: ignore[method-assign]
    recorder._apply_rows = split  # type: ignore[method-assign]
    t0 = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(recorder.serve)
            await anyio.to_thread.run_sync(pg_server.stop)
            try:
                for i in range(20):
                    recorder.event({"ts": t0, "job": "j", "run_id": None, "kind": "supervisor", "reason": f"e{i}"})
                while len(attempts) < recorder_mod.SPLIT_AFTER * 3:
                    recorder.retry_now()  # as fast as it goes: still one attempt per batch
                    await anyio.sleep(0.01)
                assert recorder.queued() == 20 and recorder.quarantined == 0
                assert all(n == 20 for n in attempts), attempts
                assert "connection failed" in recorder.failing[recorder.history_name]
            finally:
                await anyio.to_thread.run_sync(pg_server.start)
            await _poll(lambda: (recorder.retry_now(), recorder.queued())[1] == 0, "the queue drained")
            tg.cancel_scope.cancel()
        assert sorted(e.reason for e in history.events(limit=100)) == sorted(f"e{i}" for i in range(20))
    finally:
        history.close()
