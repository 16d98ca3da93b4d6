"""The SQL history: runs, events (every transition with its reason) and alerts.

This module is the history on a database server (PostgreSQL, `[store] url`: a fleet of
daemons sharing one history) through SQLModel/SQLAlchemy; a SQLite history (the default) is
status.sqlite's, through the standard library, with the same methods, rows and schema
(`open_history` picks). `History` also opens a SQLite file, for tools that want SQLAlchemy. The schema is versioned (status.migrate, Alembic). Each daemon is
the only writer of its own host's rows and applies changes in batches (`History.apply`), one
transaction per batch. Readers (the CLI) open the same store concurrently.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Table, event, insert
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session, SQLModel, col, create_engine, desc, func, select

from status._time import as_utc
from status.models import FINAL_STATES
from status.rows import AlertRow, Batch, EventRow, RowData, RunRow, batch_rows, latest_by_job
from status.tables import AlertTable, EventTable, RunTable

__all__ = ["AlertRow", "Batch", "EventRow", "History", "RowData", "RunRow",
           "SchemaRefused", "latest_by_job", "make_engine", "run_row"]

_utc = as_utc


def run_row(row: SQLModel) -> RunRow:
    """A RunRow from its table's row (times in UTC)."""
    return _row(RunRow, row)


def _row(cls: type[Any], row: SQLModel) -> Any:
    from status.sqlite import from_db

    return from_db(cls, {name: getattr(row, name) for name in cls.__dataclass_fields__})


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()


def make_engine(target: Path | str) -> Engine:
    """An engine for a SQLite path or any SQLAlchemy URL. PostgreSQL sessions run in UTC (the
    DateTime columns hold UTC without a zone) and give up connecting after 5 s, so an
    unreachable store fails a write fast instead of hanging the writer."""
    url = str(target) if "://" in str(target) else f"sqlite:///{target}"
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=2, max_overflow=4,
                         connect_args={"options": "-c timezone=UTC", "connect_timeout": 5})


class SchemaRefused(OperationalError):
    """Raised by `History.apply` when the migration it owes (`upgrade_pending`) is refused:
    the store was migrated by a newer proofwatch meanwhile (status.migrate.SchemaTooNew). An
    OperationalError, so the recorder keeps the rows and retries like for an unreachable
    store (never drops them) until this proofwatch is upgraded."""

    def __init__(self, message: str) -> None:
        super().__init__(None, None, RuntimeError(message))
        self.message = message

    def __str__(self) -> str:
        return self.message


class History:
    """Access to the history store.

    `host` names the writer: rows written without a host get this one. With `scoped` (the
    default) every read (runs, events, alerts) returns this host's rows only, so daemons sharing
    one store never take each other's runs; a private history (scoped=False) and `host=None`
    read every row (the fleet view; a history from before hosts were recorded). `create` brings the schema to the current version
    (status.migrate); readers open with create=False.

    `upgrade_pending` (with create=False): a daemon that started while its shared store could
    not be reached. Nothing is read or written here until the first `apply`, which runs the
    migration first (once it succeeds; an unreachable store fails `apply` with the connection
    error, which the recorder keeps and retries). Reads fail with the connection error while
    the store is down.
    """

    def __init__(self, target: Path | str, *, create: bool = True, host: str | None = None,
                 scoped: bool = True, upgrade_pending: bool = False) -> None:
        self.engine = make_engine(target)
        self.host = host
        self.scope = host if scoped else None  # a private history reads every row (older ones: host "")
        self.upgrade_pending = upgrade_pending and not create
        self._lock = threading.Lock()
        self._alert_keys: dict[str, str] = {}  # key -> id given at start, to match with the store's
        self._alias: dict[str, str] = {}  # an id given at start -> the store's id of the same alert
        self._keep_final: set[str] = set()  # run ids whose stored final state a write must not undo
        if create:
            from status.migrate import upgrade

            try:
                upgrade(self.engine)
            except BaseException:
                self.engine.dispose()
                raise

    def match_alerts(self, ids_by_key: dict[str, str]) -> None:
        """Alerts restored without the store (from status.json, which has no alert ids) got new
        ids: at the first write, each takes the id of this host's unresolved alert with the
        same key in the store, so the catch-up updates that row instead of leaving it open
        beside a new one. Call it before the first write."""
        self._alert_keys.update(ids_by_key)

    def keep_final(self, run_ids: Iterable[str]) -> None:
        """Runs closed at start without the store (as lost): their rows must not undo a final
        state the store already has (the previous daemon may have recorded how they ended).
        Call it before the first write."""
        self._keep_final.update(run_ids)

    def _upgrade(self) -> None:
        """The migration a history opened with `upgrade_pending` owes before its first write."""
        from status.migrate import SchemaTooNew, upgrade

        try:
            upgrade(self.engine)
        except SchemaTooNew as exc:
            raise SchemaRefused(str(exc)) from exc
        self.upgrade_pending = False

    def _match_alerts(self, conn: Connection) -> None:
        keys = self._alert_keys
        t = AlertTable.__table__  # type: ignore[attr-defined]
        q = (select(t.c.id, t.c.key)  # type: ignore[attr-defined]
             .where(t.c.key.in_(list(keys)), t.c.resolved_at.is_(None), t.c.host == (self.host or ""))  # type: ignore[attr-defined]
             .order_by(t.c.first_seen))  # type: ignore[attr-defined]
        for stored_id, key in conn.execute(q).all():  # the newest unresolved row of a key wins
            if stored_id != keys[key]:
                self._alias[keys[key]] = stored_id
        self._alert_keys = {}

    def close(self) -> None:
        """Release the connection pool."""
        self.engine.dispose()

    def _scoped(self, q: Any, table: Any) -> Any:
        return q if self.scope is None else q.where(table.host == self.scope)

    def apply(self, batch: Batch) -> None:
        """Write runs (upsert), events (append) and alerts (upsert) in one transaction.
        Runs and events go in as bulk statements: no ORM object per row on the hot path."""
        host = self.host or ""
        if self.upgrade_pending:
            with self._lock:  # one writer thread; the lock only guards against a second caller
                if self.upgrade_pending:
                    self._upgrade()
        with Session(self.engine, expire_on_commit=False) as s:
            conn = s.connection()
            if self._alert_keys:
                self._match_alerts(conn)
            guarded, runs, events = batch_rows(batch, host, self._keep_final)
            _upsert(conn, RunTable.__table__, "run_id", guarded, keep_final=True)  # type: ignore[arg-type]
            for i in range(0, len(runs), _CHUNK):
                _upsert(conn, RunTable.__table__, "run_id", runs[i:i + _CHUNK])  # type: ignore[arg-type]
            if events:
                conn.execute(insert(EventTable.__table__), events)  # type: ignore[arg-type]
            for alert in batch.alerts:
                if not alert.host:
                    alert.host = host
                alert.id = self._alias.get(alert.id, alert.id)
                s.merge(AlertTable(**alert.model_dump()))
            s.commit()
            if guarded:
                self._keep_final.difference_update(r["run_id"] for r in guarded)

    def runs(self, job: str | None = None, limit: int = 50) -> list[RunRow]:
        """The latest runs, newest first."""
        with Session(self.engine) as s:
            q = self._scoped(select(RunTable).order_by(desc(RunTable.started_at)).limit(limit), RunTable)
            if job:
                q = q.where(RunTable.job == job)
            return [run_row(r) for r in s.exec(q).all()]

    def runs_in(self, states: Iterable[str]) -> list[RunRow]:
        """Every run in one of `states` (e.g. the active ones), newest first."""
        with Session(self.engine) as s:
            q = select(RunTable).where(col(RunTable.state).in_(list(states))).order_by(desc(RunTable.started_at))
            q = self._scoped(q, RunTable)
            return [run_row(r) for r in s.exec(q).all()]

    def known_ids(self, run_ids: Iterable[str]) -> set[str]:
        """Which of `run_ids` the history has."""
        ids, found = list(run_ids), set()
        with Session(self.engine) as s:
            for i in range(0, len(ids), 500):
                found.update(s.exec(select(RunTable.run_id).where(col(RunTable.run_id).in_(ids[i:i + 500]))).all())
        return found

    def run(self, run_id: str) -> RunRow | None:
        """One run by id (of this host only, when scoped: another host's run is not ours to
        show, and its events are not read here)."""
        with Session(self.engine) as s:
            row = s.get(RunTable, run_id)
            if row is not None and self.scope is not None and row.host != self.scope:
                return None
            return run_row(row) if row else None

    def events(
        self, job: str | None = None, run_id: str | None = None, limit: int = 200
    ) -> list[EventRow]:
        """Events, oldest first (the last `limit` of them)."""
        with Session(self.engine) as s:
            q = self._scoped(select(EventTable).order_by(desc(EventTable.id)).limit(limit), EventTable)
            if job:
                q = q.where(EventTable.job == job)
            if run_id:
                q = q.where(EventTable.run_id == run_id)
            rows = [_row(EventRow, r) for r in s.exec(q).all()]
        return rows[::-1]

    def alerts(self, *, active_only: bool = False, limit: int = 200) -> list[AlertRow]:
        """Alerts, newest first."""
        with Session(self.engine) as s:
            q = self._scoped(select(AlertTable).order_by(desc(AlertTable.first_seen)).limit(limit), AlertTable)
            if active_only:
                q = q.where(AlertTable.resolved_at.is_(None))  # type: ignore[union-attr]
            return [_row(AlertRow, r) for r in s.exec(q).all()]

    def last_start(self) -> tuple[EventRow | None, datetime | None]:
        """(this host's newest "proofwatch ... started (pid ...)" event: its last daemon's
        start; the time of its newest event at all)."""
        with Session(self.engine) as s:
            mine = [] if self.scope is None else [EventTable.host == self.scope]
            started = s.exec(select(EventTable).where(EventTable.kind == "supervisor", *mine,
                                                      col(EventTable.reason).like("proofwatch % started (pid %)"))
                             .order_by(desc(EventTable.id)).limit(1)).first()
            last = s.exec(select(func.max(EventTable.ts)).where(*mine)).one()
        return (_row(EventRow, started) if started is not None else None), _utc(last)


_CHUNK = 500  # rows per multi-row upsert (SQLite binds at most 32,766 parameters)


_FINAL = sorted(s.value for s in FINAL_STATES)


def _upsert(conn: Connection, table: Table, key: str, rows: list[RowData], *, keep_final: bool = False) -> None:
    """INSERT ... ON CONFLICT (key) DO UPDATE for SQLite and PostgreSQL; merge otherwise.
    `keep_final` (runs): a stored row already in a final state is left as it is."""
    if not rows:
        return
    dialect = conn.dialect.name
    if keep_final:
        for row in rows:
            stored = conn.execute(select(table.c.state).where(table.c[key] == row[key])).scalar()
            if stored is None:
                conn.execute(table.insert().values(**row))
            elif stored not in _FINAL:
                conn.execute(table.update().where(table.c[key] == row[key]).values(**row))
        return
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    elif dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert  # type: ignore[assignment]
    else:
        for row in rows:
            if conn.execute(table.update().where(table.c[key] == row[key]).values(**row)).rowcount == 0:
                conn.execute(table.insert().values(**row))
        return
    groups: dict[tuple[str, ...], list[RowData]] = {}
    for row in rows:  # a multi-row VALUES needs the same columns in every row
        groups.setdefault(tuple(sorted(row)), []).append(row)
    for names, group in groups.items():
        stmt = dialect_insert(table).values(group)
        conn.execute(stmt.on_conflict_do_update(
            index_elements=[key], set_={name: stmt.excluded[name] for name in names if name != key}))
