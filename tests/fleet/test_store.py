"""The history on PostgreSQL and SQLite: versioned migrations, host scoping, claims."""

from __future__ import annotations

import sqlite3
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect

from status.fleet import HostRow, finish_claim, load_claims, load_hosts, renew_claims, report_host, try_claim
from status.history import AlertRow, Batch, History
from status.migrate import HEAD, SCRIPTS, SchemaTooNew, current, upgrade
from status.sqlite import SqliteHistory

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=timezone.utc)


def _schema(engine) -> dict[str, object]:
    """Every table's columns (name, type, nullable, server default) and indexes."""
    have = inspect(engine)
    # server defaults matter where an older proofwatch does not send the column: those a later
    # migration added (host); the baseline's columns are sent by every version
    return {t: ({(c["name"], repr(c["type"]), c["nullable"], c.get("default") if c["name"] == "host" else "-")
                 for c in have.get_columns(t)},
                sorted((i["name"], tuple(i["column_names"]), bool(i["unique"])) for i in have.get_indexes(t)))
            for t in have.get_table_names()}


def _migrations_only(url: str) -> None:
    """Run every migration from nothing (the path an old database takes), never create_all."""
    from alembic import command
    from alembic.config import Config

    engine = create_engine(url)
    with engine.begin() as conn:
        cfg = Config()
        cfg.set_main_option("script_location", str(SCRIPTS))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")
    engine.dispose()


def test_head_is_the_newest_migration() -> None:
    revisions = sorted(p.name.split("_")[0] for p in (SCRIPTS / "versions").glob("[0-9]*_*.py"))
    assert revisions[-1] == HEAD


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_new_store_created_from_the_models_equals_every_migration_run(
        backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    if backend == "sqlite":
        fast, slow = f"sqlite:///{tmp_path / 'fast.db'}", f"sqlite:///{tmp_path / 'slow.db'}"
    else:
        server = request.getfixturevalue("pg_server")
        fast, slow = server.create_db(), server.create_db()
    History(fast).close()
    _migrations_only(slow)
    a, b = create_engine(fast), create_engine(slow)
    try:
        assert _schema(a) == _schema(b)
        from alembic.migration import MigrationContext
        from alembic.autogenerate import compare_metadata
        from sqlmodel import SQLModel

        with b.connect() as conn:  # the migrated schema matches what the models declare
            diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
        assert [d for d in diff if d[0] not in ("remove_index",) and not _type_only(d)] == []
        with a.connect() as conn:
            assert current(conn) == HEAD
    finally:
        a.dispose()
        b.dispose()


def _type_only(diff: object) -> bool:
    """Autogenerate's notes that are not schema differences: a VARCHAR/AutoString pair, a
    server default the models leave to Python."""
    if isinstance(diff, list):
        return all(d[0] in ("modify_type", "modify_default", "modify_nullable") for d in diff)
    return False


@pytest.mark.parametrize("opener", [History, SqliteHistory], ids=["sqlalchemy", "sqlite3"])
def test_a_history_written_before_migrations_is_upgraded_keeping_every_row(tmp_path: Path, opener) -> None:
    db = tmp_path / "history.db"
    with sqlite3.connect(db) as c:  # the tables as proofwatch 0.1 (issue 10) wrote them
        c.executescript("""
            CREATE TABLE runs (run_id VARCHAR NOT NULL PRIMARY KEY, job VARCHAR NOT NULL, host VARCHAR NOT NULL,
              state VARCHAR NOT NULL, started_at DATETIME NOT NULL, ended_at DATETIME, pid INTEGER,
              exit_code INTEGER, signal VARCHAR, error VARCHAR, run_dir VARCHAR NOT NULL, phase VARCHAR NOT NULL,
              message VARCHAR NOT NULL, progress JSON, proofs JSON, last_heartbeat_at DATETIME,
              last_progress_at DATETIME);
            CREATE TABLE events (id INTEGER NOT NULL PRIMARY KEY, ts DATETIME NOT NULL, job VARCHAR NOT NULL,
              run_id VARCHAR, kind VARCHAR NOT NULL, from_state VARCHAR, to_state VARCHAR, reason VARCHAR NOT NULL);
            INSERT INTO runs VALUES ('r1', 'tick', 'old', 'SUCCEEDED', '2026-11-01 10:00:00.000000', NULL, 42,
              0, NULL, NULL, '/x', '', 'done', '{}', '[]', NULL, NULL);
            INSERT INTO events VALUES (1, '2026-11-01 10:00:00.000000', 'tick', 'r1', 'exit', NULL, NULL, 'exit 0');
        """)
    h = opener(db)  # sqlite3: migrated by `python -m status.migrate` in a child process
    try:
        run = h.run("r1")
        assert run is not None and run.state == "SUCCEEDED" and run.pid == 42 and run.command == ""
        assert [e.reason for e in h.events()] == ["exit 0"]
        with sqlite3.connect(db) as conn:
            assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(HEAD,)]
        h.apply(Batch(events=[{"ts": T0, "job": "tick", "kind": "supervisor", "reason": "upgraded"}]))
        assert [e.host for e in h.events()] == ["", ""]  # host None: rows go in as ""
    finally:
        h.close()


@pytest.mark.parametrize("opener", [History, SqliteHistory], ids=["sqlalchemy", "sqlite3"])
def test_a_store_migrated_by_a_newer_proofwatch_is_refused_with_what_to_do(tmp_path: Path, opener) -> None:
    db = tmp_path / "history.db"
    opener(db).close()
    with sqlite3.connect(db) as c:
        c.execute("UPDATE alembic_version SET version_num = '0099'")
    with pytest.raises(SchemaTooNew, match="revision 0099.*newer proofwatch; upgrade this one"):
        opener(db)


def test_daemons_starting_together_on_one_new_postgres_database_migrate_it_once(pg_server) -> None:
    url = pg_server.create_db()
    errors: list[BaseException] = []
    results: list[str | None] = []

    def start() -> None:
        try:
            engine = create_engine(url)
            results.append(upgrade(engine))
            engine.dispose()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(results, key=str) == [HEAD, HEAD, HEAD, None]  # one created it, three found it done


def test_hosts_sharing_a_store_read_only_their_own_rows(pg_url: str) -> None:
    a, b, fleet = History(pg_url, host="boxa"), History(pg_url, host="boxb"), History(pg_url, create=False)
    try:
        for h, run_id in ((a, "ra"), (b, "rb")):
            h.apply(Batch(
                runs=[{"run_id": run_id, "job": "tick", "state": "RUNNING", "started_at": T0}],
                events=[{"ts": T0, "job": "tick", "run_id": run_id, "kind": "spawn", "reason": "boot"}],
                alerts=[AlertRow(id=f"al-{run_id}", key="tick:silent", job="tick", severity="warning",
                                 title="t", detail="d", first_seen=T0, last_seen=T0)]))
        assert [r.run_id for r in a.runs()] == ["ra"] and [r.host for r in a.runs()] == ["boxa"]
        assert [r.run_id for r in b.runs_in(["RUNNING"])] == ["rb"]
        assert [e.host for e in b.events()] == ["boxb"]
        assert [x.id for x in a.alerts(active_only=True)] == ["al-ra"]
        assert sorted(r.run_id for r in fleet.runs()) == ["ra", "rb"]
        assert a.run("rb") is None and fleet.run("rb") is not None  # another host's run is not a's
        when = a.runs()[0].started_at
        assert when == T0 and when.tzinfo is not None  # UTC in, UTC out, whatever the server's zone
    finally:
        for h in (a, b, fleet):
            h.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_one_claim_wins_a_race_and_a_dead_owners_claim_is_taken_over(
        backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    url = (f"sqlite:///{tmp_path / 'h.db'}" if backend == "sqlite"
           else request.getfixturevalue("pg_server").create_db())
    h = History(url)
    try:
        winners: list[str] = []
        barrier = threading.Barrier(6)

        def claim(owner: str) -> None:
            barrier.wait()
            if try_claim(h.engine, "stale:boxc:1", owner, T0, lease=30):
                winners.append(owner)

        threads = [threading.Thread(target=claim, args=(f"box{i}",)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(winners) == 1
        owner = winners[0]
        other = "boxz"
        assert try_claim(h.engine, "stale:boxc:1", owner, T0 + timedelta(seconds=5), lease=30)  # its own
        assert not try_claim(h.engine, "stale:boxc:1", other, T0 + timedelta(seconds=20), lease=30)
        assert renew_claims(h.engine, owner, ["stale:boxc:1"], T0 + timedelta(seconds=60)) == 1
        assert not try_claim(h.engine, "stale:boxc:1", other, T0 + timedelta(seconds=50), lease=30)
        # the owner stops renewing (it died mid-send): once the lease is out, another takes over
        assert try_claim(h.engine, "stale:boxc:1", other, T0 + timedelta(seconds=61), lease=30)
        assert [c.owner for c in load_claims(h.engine, "stale:")] == [other]
        assert finish_claim(h.engine, "stale:boxc:1", other, T0 + timedelta(seconds=62))
        assert not try_claim(h.engine, "stale:boxc:1", owner, T0 + timedelta(hours=1), lease=30)  # done
    finally:
        h.close()


def test_host_reports_replace_the_hosts_own_row(pg_url: str) -> None:
    h = History(pg_url)
    try:
        for seen in (T0, T0 + timedelta(seconds=10)):
            report_host(h.engine, HostRow(host="boxa", started_at=T0, last_seen=seen, pid=7,
                                          jobs=[{"name": "tick", "state": "RUNNING"}], health={"label": "ok"}))
        report_host(h.engine, HostRow(host="boxb", started_at=T0, last_seen=T0))
        rows = load_hosts(h.engine)
        assert [(r.host, r.last_seen) for r in rows] == [("boxa", T0 + timedelta(seconds=10)), ("boxb", T0)]
        assert rows[0].jobs == [{"name": "tick", "state": "RUNNING"}]
    finally:
        h.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_the_stores_clock_is_read_from_the_store_and_a_hosts_identity_round_trips(
        backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    from status.fleet import load_host, store_now

    url = (f"sqlite:///{tmp_path / 'h.db'}" if backend == "sqlite"
           else request.getfixturevalue("pg_server").create_db())
    h = History(url)
    try:
        before = datetime.now(timezone.utc)
        now = store_now(h.engine)
        assert now.tzinfo is not None and before - timedelta(seconds=1) <= now <= datetime.now(timezone.utc) + timedelta(seconds=1)
        report_host(h.engine, HostRow(host="boxa", started_at=T0, last_seen=now, pid=7, instance="i-1",
                                      machine="m-1", clock_offset=-2.5))
        row = load_host(h.engine, "boxa")
        assert row is not None and (row.last_seen, row.instance, row.machine, row.clock_offset) == (now, "i-1", "m-1", -2.5)
        assert load_host(h.engine, "nobody") is None
    finally:
        h.close()
