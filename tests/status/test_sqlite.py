"""status.sqlite: the daemon's SQLite history without SQLAlchemy, held to the SQLModel schema.

Every claim that lets the daemon skip SQLAlchemy is checked against SQLAlchemy itself: the DDL
is create_all's, the rows are the tables' columns, and what one side writes the other reads.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from status.history import History
from status.rows import ROWS, AlertRow, Batch, EventRow, HostSampleRow, OutboxRow, RunRow, kinds
from status.sqlite import HEAD, SCHEMA, SqliteHistory
from status.tables import TABLES, sqlite_ddl
from tests._procs import EXIT_OK

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)
ROOT = Path(__file__).resolve().parents[2]


def _master(db: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(db) as c:
        return sorted(c.execute("SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'"))


def test_schema_sql_is_what_create_all_runs() -> None:
    """status/schema.sql is generated (python -m status.tables); a model change without it fails here."""
    assert SCHEMA.read_text().split("\n\n", 1)[1] == sqlite_ddl()


def test_a_new_history_is_created_exactly_as_sqlalchemy_creates_it(tmp_path: Path) -> None:
    SqliteHistory(tmp_path / "lite.db").close()
    History(tmp_path / "sa.db").close()
    lite, sa = _master(tmp_path / "lite.db"), _master(tmp_path / "sa.db")
    assert lite == sa and len(lite) > 10
    with sqlite3.connect(tmp_path / "lite.db") as c:
        assert c.execute("SELECT version_num FROM alembic_version").fetchall() == [(HEAD,)]
        assert c.execute("PRAGMA journal_mode").fetchone() == ("wal",)


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.__tablename__)
def test_each_row_has_exactly_its_tables_columns_and_defaults(row) -> None:
    table = TABLES[row.__tablename__].__table__
    fields = {f.name: f for f in dataclasses.fields(row)}
    assert set(fields) == set(table.columns.keys())
    for name, f in fields.items():
        column = table.columns[name]
        if not column.primary_key and name not in kinds(row)[1]:  # JSON columns: nullable, never written NULL
            assert column.nullable == ("None" in str(f.type)), name
        model_field = TABLES[row.__tablename__].model_fields[name]
        if f.default is not dataclasses.MISSING:
            assert model_field.default == f.default, name
        elif f.default_factory is not dataclasses.MISSING:
            assert model_field.default_factory is not None and model_field.default_factory() == f.default_factory(), name
        else:
            assert model_field.is_required(), name


def _batch() -> Batch:
    paris = timezone(timedelta(hours=1))
    run = RunRow(run_id="r1", job="tick", state="RUNNING", started_at=T0.astimezone(paris), pid=42,
                 progress={"ticks": 3.0}, proofs=[{"path": "a.json", "ok": True}], message="tick 3 ✓",
                 last_heartbeat_at=T0 + timedelta(seconds=1, microseconds=250))
    events = [{"ts": T0, "job": "tick", "run_id": "r1", "kind": "transition", "from_state": "STARTING",
               "to_state": "RUNNING", "reason": "first heartbeat"},
              EventRow(ts=T0 + timedelta(seconds=2), job="tick", kind="exit", reason="exit 0")]
    alert = AlertRow(id="a1", key="stall:tick", severity="warning", title="tick stalled", detail="no progress",
                     first_seen=T0, last_seen=T0, job="tick", run_id="r1")
    return Batch(runs=[run], events=events, alerts=[alert])


@pytest.mark.parametrize("writer,reader", [(SqliteHistory, History), (History, SqliteHistory)],
                         ids=["sqlite3-writes", "sqlalchemy-writes"])
def test_what_one_side_writes_the_other_reads_the_same(tmp_path: Path, writer, reader) -> None:
    db = tmp_path / "history.db"
    w = writer(db, host="box")
    w.apply(_batch())
    w.apply(Batch(runs=[{"run_id": "r1", "job": "tick", "state": "SUCCEEDED", "started_at": T0,
                         "ended_at": T0 + timedelta(seconds=3), "exit_code": 0}]))
    w.close()
    r = reader(db, create=False, host="box")
    try:
        (run,) = r.runs()
        assert (run.state, run.exit_code, run.host, run.pid) == ("SUCCEEDED", 0, "box", None)
        assert run.started_at == T0 and run.started_at.tzinfo is not None  # stored in UTC, read back aware
        assert run.ended_at == T0 + timedelta(seconds=3)
        assert [e.reason for e in r.events()] == ["first heartbeat", "exit 0"]
        assert [e.host for e in r.events(run_id="r1")] == ["box"]
        (alert,) = r.alerts(active_only=True)
        assert (alert.key, alert.host, alert.first_seen) == ("stall:tick", "box", T0)
        assert r.known_ids(["r1", "r2"]) == {"r1"}
        assert r.run("r1") == run and r.runs_in(["SUCCEEDED"]) == [run]
    finally:
        r.close()


def test_json_and_times_round_trip_through_sqlite3(tmp_path: Path) -> None:
    h = SqliteHistory(tmp_path / "history.db")
    try:
        h.apply(_batch())
        run = h.run("r1")
        assert run is not None
        assert run.progress == {"ticks": 3.0} and run.proofs == [{"path": "a.json", "ok": True}]
        assert run.message == "tick 3 ✓" and run.last_heartbeat_at == T0 + timedelta(seconds=1, microseconds=250)
        started, last = h.last_start()
        assert started is None and last == T0 + timedelta(seconds=2)
    finally:
        h.close()


def test_a_run_closed_at_start_does_not_undo_a_final_state_already_stored(tmp_path: Path) -> None:
    h = SqliteHistory(tmp_path / "history.db")
    try:
        h.apply(Batch(runs=[{"run_id": "r1", "job": "tick", "state": "SUCCEEDED", "started_at": T0}]))
        h.keep_final(["r1", "r2"])
        h.apply(Batch(runs=[{"run_id": "r1", "job": "tick", "state": "LOST", "started_at": T0},
                            {"run_id": "r2", "job": "tick", "state": "LOST", "started_at": T0}]))
        assert {r.run_id: r.state for r in h.runs()} == {"r1": "SUCCEEDED", "r2": "LOST"}
    finally:
        h.close()


def test_alerts_restored_without_ids_take_the_stored_unresolved_ones(tmp_path: Path) -> None:
    h = SqliteHistory(tmp_path / "history.db", host="box")
    h.apply(_batch())
    h.close()
    h = SqliteHistory(tmp_path / "history.db", host="box")
    try:
        h.match_alerts({"stall:tick": "new-id"})
        again = AlertRow(id="new-id", key="stall:tick", severity="warning", title="tick stalled", detail="d",
                         first_seen=T0, last_seen=T0 + timedelta(minutes=1), count=2)
        h.apply(Batch(alerts=[again]))
        (alert,) = h.alerts()
        assert (alert.id, alert.count, again.id) == ("a1", 2, "a1")
    finally:
        h.close()


def test_a_bad_dict_row_names_its_table_and_column(tmp_path: Path) -> None:
    h = SqliteHistory(tmp_path / "history.db")
    try:
        with pytest.raises(ValueError, match=r"events: unknown columns \['colour'\]"):
            h.apply(Batch(events=[{"ts": T0, "job": "x", "kind": "k", "colour": "red"}]))
        with pytest.raises(ValueError, match="runs: column started_at is missing"):
            h.apply(Batch(runs=[{"run_id": "r", "job": "x", "state": "RUNNING"}]))
        assert h.events() == [] and h.runs() == []  # nothing half-written
    finally:
        h.close()


def test_samples_and_outbox_work_on_either_engine(tmp_path: Path) -> None:
    from status.outbox import Outbox
    from status.samples import load_samples, prune_samples, save_sample

    lite = SqliteHistory(tmp_path / "history.db")
    sa = History(tmp_path / "history.db", create=False)
    try:
        for i, engine in enumerate([lite.engine, sa.engine]):
            save_sample(engine, HostSampleRow(ts=T0 - timedelta(hours=2) + timedelta(seconds=i), cpu_pct=1, load1=0.1,
                                              mem_pct=2, swap_pct=0, score=90 - i, label="healthy",
                                              disk={"/": 40.0}))
        assert [(s.score, s.disk) for s in load_samples(sa.engine)] == [(90, {"/": 40.0}), (89, {"/": 40.0})]
        assert load_samples(lite.engine) == load_samples(sa.engine)
        assert prune_samples(lite.engine, T0) == 1  # after the first hour, one per minute: the worst
        assert [s.score for s in load_samples(lite.engine)] == [89]
        box = Outbox(lite.engine)
        (row_id,) = box.add([OutboxRow(created_at=T0, sink="hook", payload={"alerts": [{"key": "k"}]},
                                       next_attempt_at=T0)], state={"x": 1}, now=T0)
        assert [r.id for r in Outbox(sa.engine).due("hook", T0)] == [row_id]
        box.record(row_id, now=T0, duration_ms=3.14159, error=None)
        assert box.delivered_sinks("k", T0) == {"hook"} and box.load_state() == {"x": 1}
        assert (box.undelivered_count(), box.rows()[0].duration_ms) == (0, 3.1)
    finally:
        lite.close()
        sa.close()


def test_a_daemon_on_its_sqlite_history_never_loads_sqlalchemy(tmp_path: Path) -> None:
    """The daemon writes runs, events and alerts, and reads them back through its API, and
    SQLAlchemy's compiled modules are never mapped into it; the history it wrote is what
    SQLAlchemy reads."""
    script = tmp_path / "ok.py"
    script.write_text(EXIT_OK)
    cfg = tmp_path / "config.toml"
    cfg.write_text('[supervisor]\nstate_dir = "var"\ndata_dir = "data"\nallow_root = true\n'
                   'status_min_interval = "50ms"\n'
                   f'[jobs.ok]\ncommand = ["{sys.executable}", "{script}"]\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROOFWATCH_")}
    env["PYTHONPATH"] = str(ROOT)
    log = tmp_path / "daemon.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "supervisor.cli", "run", "--config", str(cfg)],
                                cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
    status = tmp_path / "var" / "status.json"
    try:
        deadline = time.monotonic() + 30
        state = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                state = json.loads(status.read_text())["jobs"]["ok"]["state"]
            except (OSError, ValueError, KeyError):
                state = None
            if state == "SUCCEEDED":
                break
            time.sleep(0.05)
        assert state == "SUCCEEDED", log.read_text()[-3000:]
        out = subprocess.run([sys.executable, "-m", "supervisor.cli", "history", "--config", str(cfg)],
                             cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30)
        assert "SUCCEEDED" in out.stdout, out.stdout + out.stderr
        maps = Path(f"/proc/{proc.pid}/maps").read_text()
        assert "/sqlalchemy/" not in maps and "/alembic/" not in maps
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    h = History(tmp_path / "var" / "history.db", create=False)
    try:
        (run,) = h.runs(job="ok")
        assert run.state == "SUCCEEDED" and run.exit_code == 0
        assert any(e.to_state == "SUCCEEDED" for e in h.events(job="ok"))
    finally:
        h.close()
