"""The SQLite history through the standard library's sqlite3: what the daemon uses by default.

The schema is status.tables' (SQLModel), so a history written here is the one SQLAlchemy
reads and migrates, byte for byte: times are stored the way SQLAlchemy stores them on SQLite
(naive UTC, "YYYY-MM-DD HH:MM:SS.ffffff"), JSON columns as JSON text. A new history is created
with status/schema.sql (the DDL `create_all` runs, written out by `python -m status.tables`)
and stamped at the newest revision; a history at an older revision is migrated by
`python -m status.migrate` in a child process (Alembic and SQLAlchemy load there, once, and
their memory goes with it); one at a newer revision is refused.

`SqliteDB` is the file: a small pool of connections (WAL, synchronous=NORMAL, 5-s busy
timeout), write transactions with BEGIN IMMEDIATE. `SqliteHistory` is status.history.History
for it, with the same methods and semantics. Everything here blocks (call it off the loop).
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from status.models import FINAL_STATES
from status.rows import AlertRow, Batch, EventRow, Row, RunRow, batch_rows, kinds

HEAD = "0003"  # the newest revision in status/migrations/versions (tests/fleet/test_store.py)
SCHEMA = Path(__file__).with_name("schema.sql")
_FORMAT = "%Y-%m-%d %H:%M:%S.%f"  # SQLAlchemy's DateTime on SQLite
_CHUNK = 500  # ids per IN (...)


class SchemaError(RuntimeError):
    """The history's schema could not be brought to this proofwatch's (the message says why)."""


class SchemaTooNew(SchemaError):
    """The database was migrated by a newer proofwatch than this one."""


def to_db(value: Any) -> Any:
    """A Python value as SQLite stores it here."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return value.strftime(_FORMAT)
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return value


def parse_time(value: Any) -> datetime | None:
    """A stored time as an aware UTC datetime."""
    if value is None:
        return None
    if isinstance(value, datetime):
        ts = value
    else:
        ts = datetime.fromisoformat(str(value))
    return ts.replace(tzinfo=timezone.utc) if ts.tzinfo is None else ts.astimezone(timezone.utc)


def from_db(cls: type[Row], data: dict[str, Any]) -> Any:
    """A row of `cls` from its stored columns."""
    times, blobs = kinds(cls)
    for name in times:
        data[name] = parse_time(data.get(name))
    for name in blobs:
        value = data.get(name)
        data[name] = json.loads(value) if isinstance(value, (str, bytes)) else value
    return cls(**data)


class SqliteDB:
    """One SQLite history file. `url` and `path` name it; connections are pooled (any thread)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        self._idle: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=5.0, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA busy_timeout=5000")
        return conn

    @contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        """A connection in autocommit mode (each statement its own transaction)."""
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = self._connect()
        ok = False
        try:
            yield conn
            ok = True
        finally:
            if ok and not conn.in_transaction:
                with self._lock:
                    self._idle.append(conn)
            else:
                try:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    with self._lock:
                        self._idle.append(conn)
                except sqlite3.Error:
                    conn.close()

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE ... COMMIT; ROLLBACK on an error)."""
        with self.connection() as conn:  # which rolls back what an error left open
            conn.execute("BEGIN IMMEDIATE")
            yield conn
            conn.execute("COMMIT")

    def select(self, cls: type[Row], where: str = "", params: Sequence[Any] = (), *,
               order: str = "", limit: int | None = None) -> list[Any]:
        """Rows of `cls`'s table (`where` and `order` are SQL, `params` its values)."""
        sql = f"SELECT * FROM {cls.__tablename__}"
        if where:
            sql += f" WHERE {where}"
        if order:
            sql += f" ORDER BY {order}"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self.connection() as conn:
            cur = conn.execute(sql, [to_db(p) for p in params])
            names = [d[0] for d in cur.description]
            return [from_db(cls, dict(zip(names, values))) for values in cur.fetchall()]

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """The first column of the first row of a query (None: no row)."""
        with self.connection() as conn:
            row = conn.execute(sql, [to_db(p) for p in params]).fetchone()
            return row[0] if row else None

    def close(self) -> None:
        """Close the idle connections."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    # ---- schema ---------------------------------------------------------------------------

    def revision(self) -> str | None:
        """The schema revision the file is at (None: not versioned, or no tables)."""
        with self.connection() as conn:
            if not conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'").fetchone():
                return None
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
            return row[0] if row else None

    def upgrade(self) -> None:
        """Bring the file to the newest schema: create it (schema.sql + stamp), or migrate it
        in a child process (Alembic), or refuse a newer one (SchemaError with the reason)."""
        if self.revision() == HEAD:
            return
        with self.write() as conn:  # a new file: created in one transaction, raced by nobody
            if not conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table'").fetchone():
                for stmt in SCHEMA.read_text().split(";\n"):
                    stmt = "\n".join(line for line in stmt.splitlines() if not line.startswith("--")).strip()
                    if stmt:
                        conn.execute(stmt)
                conn.execute("INSERT INTO alembic_version (version_num) VALUES (?)", (HEAD,))
                return
        self._migrate()

    def _migrate(self) -> None:
        done = subprocess.run([sys.executable, "-m", "status.migrate", self.url], capture_output=True,
                              text=True, check=False, cwd=Path(__file__).resolve().parent.parent)
        if done.returncode != 0:
            lines = (done.stderr or done.stdout).strip().splitlines()
            message = lines[-1] if lines else f"status.migrate exited with {done.returncode}"
            raise (SchemaTooNew if done.returncode == 3 else SchemaError)(message)


class SqliteHistory:
    """status.history.History on a SQLite file (see there for `host`, `scoped`, `create`)."""

    def __init__(self, target: Path | str, *, create: bool = True, host: str | None = None,
                 scoped: bool = True) -> None:
        path = str(target).removeprefix("sqlite:///")
        if not path or path == ":memory:":
            raise ValueError(f"{target}: the history must be a file")
        self.engine = SqliteDB(path)
        self.host = host
        self.scope = host if scoped else None
        self.upgrade_pending = False  # a local file is there at start (only a server's history defers it)
        self._alert_keys: dict[str, str] = {}
        self._alias: dict[str, str] = {}
        self._keep_final: set[str] = set()
        if create:
            self.engine.path.parent.mkdir(parents=True, exist_ok=True)
            try:
                self.engine.upgrade()
            except BaseException:
                self.engine.close()
                raise

    def match_alerts(self, ids_by_key: dict[str, str]) -> None:
        """See History.match_alerts."""
        self._alert_keys.update(ids_by_key)

    def keep_final(self, run_ids: Iterable[str]) -> None:
        """See History.keep_final."""
        self._keep_final.update(run_ids)

    def close(self) -> None:
        """Close the connections."""
        self.engine.close()

    def _match_alerts(self, conn: sqlite3.Connection) -> None:
        keys = self._alert_keys
        marks = ",".join("?" * len(keys))
        rows = conn.execute(f'SELECT id, "key" FROM alerts WHERE "key" IN ({marks}) AND resolved_at IS NULL '
                            "AND host = ? ORDER BY first_seen", [*keys, self.host or ""]).fetchall()
        for stored_id, key in rows:  # the newest unresolved row of a key wins
            if stored_id != keys[key]:
                self._alias[keys[key]] = stored_id
        self._alert_keys = {}

    def apply(self, batch: Batch) -> None:
        """Write runs (upsert), events (append) and alerts (upsert) in one transaction."""
        host = self.host or ""
        guarded, runs, events = batch_rows(batch, host, self._keep_final)
        alerts = [a.model_dump() for a in batch.alerts]
        for a in alerts:
            if not a.get("host"):
                a["host"] = host
        with self.engine.write() as conn:
            if self._alert_keys:
                self._match_alerts(conn)
                for a in alerts:
                    a["id"] = self._alias.get(a["id"], a["id"])
            _upsert(conn, "runs", "run_id", guarded, keep_final=True)
            _upsert(conn, "runs", "run_id", runs)
            _insert(conn, "events", events)
            _upsert(conn, "alerts", "id", alerts)
        for a, row in zip(alerts, batch.alerts):
            row.host, row.id = a["host"], a["id"]
        if guarded:
            self._keep_final.difference_update(r["run_id"] for r in guarded)

    def _scope(self, where: list[str], params: list[Any]) -> str:
        if self.scope is not None:
            where.append("host = ?")
            params.append(self.scope)
        return " AND ".join(where)

    def runs(self, job: str | None = None, limit: int = 50) -> list[RunRow]:
        """The latest runs, newest first."""
        where, params = (["job = ?"], [job]) if job else ([], [])
        return self.engine.select(RunRow, self._scope(where, params), params, order="started_at DESC", limit=limit)

    def runs_in(self, states: Iterable[str]) -> list[RunRow]:
        """Every run in one of `states`, newest first."""
        wanted = list(states)
        if not wanted:
            return []
        where, params = [f"state IN ({','.join('?' * len(wanted))})"], list(wanted)
        return self.engine.select(RunRow, self._scope(where, params), params, order="started_at DESC")

    def known_ids(self, run_ids: Iterable[str]) -> set[str]:
        """Which of `run_ids` the history has."""
        ids, found = list(run_ids), set()
        with self.engine.connection() as conn:
            for i in range(0, len(ids), _CHUNK):
                part = ids[i:i + _CHUNK]
                found.update(r[0] for r in conn.execute(
                    f"SELECT run_id FROM runs WHERE run_id IN ({','.join('?' * len(part))})", part))
        return found

    def run(self, run_id: str) -> RunRow | None:
        """One run by id (of this host only, when scoped)."""
        rows = self.engine.select(RunRow, "run_id = ?", [run_id])
        if not rows or (self.scope is not None and rows[0].host != self.scope):
            return None
        return rows[0]

    def events(self, job: str | None = None, run_id: str | None = None, limit: int = 200) -> list[EventRow]:
        """Events, oldest first (the last `limit` of them)."""
        where: list[str] = []
        params: list[Any] = []
        if job:
            where.append("job = ?")
            params.append(job)
        if run_id:
            where.append("run_id = ?")
            params.append(run_id)
        rows = self.engine.select(EventRow, self._scope(where, params), params, order="id DESC", limit=limit)
        return rows[::-1]

    def alerts(self, *, active_only: bool = False, limit: int = 200) -> list[AlertRow]:
        """Alerts, newest first."""
        where, params = (["resolved_at IS NULL"] if active_only else []), []
        return self.engine.select(AlertRow, self._scope(where, params), params, order="first_seen DESC", limit=limit)

    def last_start(self) -> tuple[EventRow | None, datetime | None]:
        """(this host's newest "proofwatch ... started (pid ...)" event: its last daemon's
        start; the time of its newest event at all)."""
        where, params = ["kind = 'supervisor'", "reason LIKE 'proofwatch % started (pid %)'"], []
        started = self.engine.select(EventRow, self._scope(where, params), params, order="id DESC", limit=1)
        params: list[Any] = []
        mine = self._scope([], params)
        last = self.engine.scalar("SELECT max(ts) FROM events" + (f" WHERE {mine}" if mine else ""), params)
        return (started[0] if started else None), parse_time(last)


_FINAL = sorted(s.value for s in FINAL_STATES)


def insert_row(conn: sqlite3.Connection, table: str, values: dict[str, Any]) -> int | None:
    """Insert one row (`values` by column); return its rowid."""
    cur = conn.execute(f"INSERT INTO {table} ({_names(values)}) VALUES ({', '.join('?' * len(values))})",
                       [to_db(v) for v in values.values()])
    return cur.lastrowid


def _insert(conn: sqlite3.Connection, table: str, rows: list[dict[str, Any]]) -> None:
    for names, group in _groups(rows).items():
        conn.executemany(f"INSERT INTO {table} ({_names(names)}) VALUES ({', '.join('?' * len(names))})",
                         [[to_db(r[n]) for n in names] for r in group])


def _upsert(conn: sqlite3.Connection, table: str, key: str, rows: list[dict[str, Any]], *,
            keep_final: bool = False) -> None:
    """INSERT ... ON CONFLICT (key) DO UPDATE; `keep_final` (runs): a stored row already in a
    final state is left as it is."""
    guard = f" WHERE {table}.state NOT IN ({', '.join(repr(s) for s in _FINAL)})" if keep_final else ""
    for names, group in _groups(rows).items():
        sets = ", ".join(f'"{n}" = excluded."{n}"' for n in names if n != key)
        conn.executemany(f"INSERT INTO {table} ({_names(names)}) VALUES ({', '.join('?' * len(names))}) "
                         f"ON CONFLICT ({key}) DO UPDATE SET {sets}{guard}",
                         [[to_db(r[n]) for n in names] for r in group])


def _names(names: Iterable[str]) -> str:
    return ", ".join(f'"{n}"' for n in names)


def _groups(rows: list[dict[str, Any]]) -> dict[tuple[str, ...], list[dict[str, Any]]]:
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:  # one statement per set of columns
        groups.setdefault(tuple(row), []).append(row)
    return groups
