"""status/history.py: batches in one transaction, ordered reads, UTC timestamps, WAL readers."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from status.history import AlertRow, Batch, EventRow, History, RunRow, latest_by_job

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)
CEST = timezone(timedelta(hours=2))


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "history.db"


@pytest.fixture
def history(db: Path) -> Iterator[History]:
    h = History(db)
    yield h
    h.close()


def run(run_id: str, job: str, minutes: int, state: str = "RUNNING", **kw: object) -> RunRow:
    return RunRow(run_id=run_id, job=job, state=state, started_at=T0 + timedelta(minutes=minutes), **kw)


def ev(job: str, reason: str, run_id: str | None = None, seconds: int = 0) -> EventRow:
    return EventRow(ts=T0 + timedelta(seconds=seconds), job=job, run_id=run_id, kind="transition",
                    reason=reason)


def alert(alert_id: str, minutes: int, **kw: object) -> AlertRow:
    fields: dict[str, object] = dict(key=f"job:{alert_id}", job="job", severity="critical",
                                     title=f"title {alert_id}", detail="detail",
                                     first_seen=T0 + timedelta(minutes=minutes),
                                     last_seen=T0 + timedelta(minutes=minutes))
    fields.update(kw)
    return AlertRow(id=alert_id, **fields)  # type: ignore[arg-type]


def test_history_apply_upserts_runs(history: History) -> None:
    history.apply(Batch(runs=[run("r1", "ingestor", 0, pid=10, progress={"ticks": 1.0})]))
    history.apply(Batch(runs=[run("r1", "ingestor", 0, state="FAILED", pid=10, exit_code=3,
                                  ended_at=T0 + timedelta(minutes=1), progress={"ticks": 7.0},
                                  proofs=[{"path": "out.json", "ok": False}])]))
    rows = history.runs()
    assert len(rows) == 1
    row = rows[0]
    assert (row.state, row.exit_code, row.progress) == ("FAILED", 3, {"ticks": 7.0})
    assert row.proofs == [{"path": "out.json", "ok": False}]
    assert history.run("r1") == row
    assert history.run("nope") is None


def test_history_apply_appends_events_in_order(history: History) -> None:
    history.apply(Batch(events=[ev("a", "PENDING->STARTING"), ev("a", "STARTING->RUNNING")]))
    history.apply(Batch(events=[ev("a", "RUNNING->STALLED")]))
    events = history.events()
    assert [e.reason for e in events] == ["PENDING->STARTING", "STARTING->RUNNING", "RUNNING->STALLED"]
    ids = [e.id for e in events]
    assert ids == sorted(ids) and len(set(ids)) == 3


def test_history_apply_upserts_alerts_by_id(history: History) -> None:
    history.apply(Batch(alerts=[alert("a1", 0)]))
    history.apply(Batch(alerts=[alert("a1", 0, count=4, last_seen=T0 + timedelta(minutes=9))]))
    rows = history.alerts()
    assert len(rows) == 1
    assert rows[0].count == 4
    assert rows[0].last_seen == T0 + timedelta(minutes=9)


def test_history_apply_writes_runs_events_and_alerts_together(history: History, db: Path) -> None:
    history.apply(Batch(runs=[run("r1", "a", 0)], events=[ev("a", "spawned", "r1")],
                        alerts=[alert("x", 0)]))
    con = sqlite3.connect(db)
    try:
        counts = [con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                  for t in ("runs", "events", "alerts")]
    finally:
        con.close()
    assert counts == [1, 1, 1]


def test_history_runs_are_newest_first_and_filtered_by_job(history: History) -> None:
    history.apply(Batch(runs=[run("a1", "a", 0), run("b1", "b", 1), run("a3", "a", 3),
                              run("a2", "a", 2)]))
    assert [r.run_id for r in history.runs()] == ["a3", "a2", "b1", "a1"]
    assert [r.run_id for r in history.runs(job="a")] == ["a3", "a2", "a1"]
    assert [r.run_id for r in history.runs(job="a", limit=2)] == ["a3", "a2"]
    assert [r.run_id for r in history.runs(job="c")] == []
    assert {job: r.run_id for job, r in latest_by_job(history.runs()).items()} == {"a": "a3", "b": "b1"}


def test_history_events_are_the_last_n_oldest_first(history: History) -> None:
    history.apply(Batch(events=[ev("a" if i % 2 else "b", f"e{i}", seconds=i) for i in range(10)]))
    assert [e.reason for e in history.events(limit=3)] == ["e7", "e8", "e9"]
    assert [e.reason for e in history.events(job="a", limit=2)] == ["e7", "e9"]
    assert [e.reason for e in history.events(job="b")] == ["e0", "e2", "e4", "e6", "e8"]


def test_history_events_filter_by_run(history: History) -> None:
    history.apply(Batch(events=[ev("a", "one", "r1"), ev("a", "two", "r2"), ev("a", "three", "r1")]))
    assert [e.reason for e in history.events(run_id="r1")] == ["one", "three"]


def test_history_alerts_active_only_leaves_out_resolved(history: History) -> None:
    history.apply(Batch(alerts=[
        alert("old", 0),
        alert("fixed", 1, resolved_at=T0 + timedelta(minutes=2), resolution="progress resumed"),
        alert("new", 3),
    ]))
    assert [a.id for a in history.alerts()] == ["new", "fixed", "old"]
    assert [a.id for a in history.alerts(active_only=True)] == ["new", "old"]


def test_history_timestamps_come_back_aware_utc(history: History) -> None:
    local = datetime(2026, 5, 1, 14, 0, tzinfo=CEST)  # 12:00 UTC
    west = datetime(2026, 5, 1, 7, 0, 5, tzinfo=timezone(timedelta(hours=-5)))  # 12:00:05 UTC
    history.apply(Batch(
        runs=[RunRow(run_id="r1", job="a", state="RUNNING", started_at=local, ended_at=west,
                     last_heartbeat_at=local, last_progress_at=local)],
        events=[EventRow(ts=local, job="a", kind="transition")],
        alerts=[alert("x", 0, first_seen=local, last_seen=local, resolved_at=local)],
    ))
    r = history.runs()[0]
    e = history.events()[0]
    a = history.alerts()[0]
    stamps = [r.started_at, r.ended_at, r.last_heartbeat_at, r.last_progress_at, e.ts,
              a.first_seen, a.last_seen, a.resolved_at]
    for stamp in stamps:
        assert stamp is not None and stamp.utcoffset() == timedelta(0), stamp
    assert r.started_at == T0
    assert r.ended_at == T0 + timedelta(seconds=5)
    assert e.ts == T0 and a.first_seen == T0


def test_history_second_reader_sees_committed_data(history: History, db: Path) -> None:
    reader = History(db, create=False)
    try:
        assert reader.runs() == []
        history.apply(Batch(runs=[run("r1", "a", 0)], events=[ev("a", "spawned", "r1")]))
        assert [r.run_id for r in reader.runs()] == ["r1"]
        history.apply(Batch(runs=[run("r1", "a", 0, state="SUCCEEDED")]))
        assert reader.runs()[0].state == "SUCCEEDED"
        assert [e.reason for e in reader.events()] == ["spawned"]
    finally:
        reader.close()


def test_history_reader_works_while_a_writer_holds_a_transaction(history: History, db: Path) -> None:
    history.apply(Batch(runs=[run("r1", "a", 0)]))
    writer = sqlite3.connect(db, isolation_level=None)
    reader = History(db, create=False)
    try:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("UPDATE runs SET state = 'FAILED'")
        # an open write transaction neither blocks the reader nor leaks uncommitted rows
        assert reader.runs()[0].state == "RUNNING"
        writer.execute("COMMIT")
        assert reader.runs()[0].state == "FAILED"
    finally:
        writer.close()
        reader.close()


def test_history_database_is_in_wal_mode(history: History, db: Path) -> None:
    history.apply(Batch(runs=[run("r1", "a", 0)]))
    con = sqlite3.connect(db)
    try:
        assert con.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        con.close()


def test_history_apply_takes_rows_as_plain_dicts_and_upserts_them_in_bulk(history: History) -> None:
    first = {"run_id": "r1", "job": "a", "state": "STARTING", "started_at": T0, "progress": {}}
    history.apply(Batch(runs=[first], events=[{"ts": T0, "job": "a", "run_id": "r1", "kind": "transition",
                                                "to_state": "STARTING", "reason": "boot"}]))
    history.apply(Batch(runs=[{**first, "state": "RUNNING", "progress": {"ticks": 3.0}},
                              {"run_id": "r2", "job": "b", "state": "STARTING", "started_at": T0}]))
    r1, r2 = history.run("r1"), history.run("r2")
    assert r1 is not None and r1.state == "RUNNING" and r1.progress == {"ticks": 3.0}
    assert r2 is not None and r2.job == "b" and r2.proofs == []  # columns left out get their defaults
    [event] = history.events(job="a")
    assert event.id is not None and event.reason == "boot"


def test_history_apply_names_an_unknown_column(history: History) -> None:
    with pytest.raises(ValueError, match=r"runs: unknown columns \['colour'\]"):
        history.apply(Batch(runs=[{"run_id": "r1", "job": "a", "state": "X", "started_at": T0, "colour": 1}]))


def test_a_history_from_an_older_proofwatch_gains_the_new_columns_and_keeps_its_rows(db: Path) -> None:
    # an alerts table as an older daemon wrote it: no acknowledged_at column
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE alerts (id VARCHAR PRIMARY KEY, key VARCHAR, job VARCHAR, run_id VARCHAR, "
                "severity VARCHAR, title VARCHAR, detail VARCHAR, first_seen DATETIME, last_seen DATETIME, "
                "count INTEGER, resolved_at DATETIME, resolution VARCHAR)")
    con.execute("INSERT INTO alerts VALUES ('a1', 'job:crashed', 'job', NULL, 'critical', 't', 'd', "
                "'2026-05-01 12:00:00', '2026-05-01 12:00:00', 2, NULL, NULL)")
    con.commit()
    con.close()
    h = History(db)
    try:
        [row] = h.alerts()
        assert (row.id, row.count, row.acknowledged_at) == ("a1", 2, None)
        h.apply(Batch(alerts=[alert("a2", 1, acknowledged_at=T0)]))
        assert {a.id for a in h.alerts()} == {"a1", "a2"}
    finally:
        h.close()
    with sqlite3.connect(db) as con:
        assert "acknowledged_at" in {r[1] for r in con.execute("PRAGMA table_info(alerts)")}
