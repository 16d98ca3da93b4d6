"""The notification outbox: every notification is a row here (committed) before it is sent.

Rows live in the history database. A sender takes due rows of its sink (undelivered,
`next_attempt_at` passed), records each attempt (error text, duration) and marks the row
delivered; rows left undelivered by a stop are picked up by the next start. The notification
policy's state (`notify_state`, one row) is written in the same transaction as the rows it
produced, so a decision and its notifications persist together.

The outbox is always a local SQLite file (the history's, or `state_dir/outbox.db` beside a
shared store), so alerts go out while a shared store is down; it is written with sqlite3.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from status.rows import OutboxRow
from status.sqlite import SqliteDB, insert_row, parse_time, to_db

__all__ = ["Outbox", "OutboxRow"]


def outbox_db(engine: Any) -> SqliteDB:
    """The SQLite file an outbox lives in: a SqliteDB, a SQLAlchemy engine on a SQLite file,
    or a path."""
    if isinstance(engine, SqliteDB):
        return engine
    url = getattr(engine, "url", None)
    if url is not None:
        if url.get_backend_name() != "sqlite" or not url.database:
            raise ValueError(f"the notification outbox is a local SQLite file, not {url.get_backend_name()}")
        return SqliteDB(url.database)
    return SqliteDB(engine)


class Outbox:
    """Outbox access on the history's SQLite file; every method blocks (call it off the loop)."""

    def __init__(self, engine: Any) -> None:
        self.engine = outbox_db(engine)

    def create(self) -> None:
        """Create the history's tables (the outbox's among them) if the file has none."""
        self.engine.upgrade()

    def add(
        self, rows: Sequence[OutboxRow], state: dict[str, Any] | None = None,
        now: datetime | None = None,
    ) -> list[int]:
        """Insert rows (and replace the policy state) in one transaction; return the row ids."""
        with self.engine.write() as conn:
            for row in rows:
                values = row.model_dump()
                values.pop("id")
                row.id = insert_row(conn, "outbox", values)
            if state is not None:
                conn.execute("INSERT INTO notify_state (id, updated_at, state) VALUES (1, ?, ?) ON CONFLICT (id) "
                             "DO UPDATE SET updated_at = excluded.updated_at, state = excluded.state",
                             (to_db(now or datetime.now(timezone.utc)), to_db(state)))
        return [row.id for row in rows if row.id is not None]

    def load_state(self) -> dict[str, Any] | None:
        """The last policy state written, if any."""
        value = self.engine.scalar("SELECT state FROM notify_state WHERE id = 1")
        return dict(json.loads(value)) if value is not None else None

    def due(self, sink: str, now: datetime, limit: int = 20) -> list[OutboxRow]:
        """Undelivered rows of `sink` whose next attempt is due, oldest first."""
        return self.engine.select(OutboxRow, "sink = ? AND delivered_at IS NULL AND next_attempt_at <= ?",
                                  [sink, now], order="next_attempt_at, id", limit=limit)

    def next_attempt(self, sink: str) -> datetime | None:
        """When the earliest undelivered row of `sink` is due, if there is one."""
        return parse_time(self.engine.scalar(
            "SELECT min(next_attempt_at) FROM outbox WHERE sink = ? AND delivered_at IS NULL", [sink]))

    def record(
        self, row_id: int, *, now: datetime, duration_ms: float, error: str | None,
        next_attempt_at: datetime | None = None,
    ) -> None:
        """Record one attempt: delivered when `error` is None, else the error and the retry time."""
        sets = "attempts = attempts + 1, duration_ms = ?, last_error = ?"
        params: list[Any] = [round(duration_ms, 1), error]
        if error is None:
            sets += ", delivered_at = ?"
            params.append(now)
        elif next_attempt_at is not None:
            sets += ", next_attempt_at = ?"
            params.append(next_attempt_at)
        with self.engine.write() as conn:
            conn.execute(f"UPDATE outbox SET {sets} WHERE id = ?", [to_db(p) for p in params] + [row_id])

    def reschedule(self, row_id: int, next_attempt_at: datetime) -> None:
        """Move an undelivered row's next attempt."""
        with self.engine.write() as conn:
            conn.execute("UPDATE outbox SET next_attempt_at = ? WHERE id = ? AND delivered_at IS NULL",
                         (to_db(next_attempt_at), row_id))

    def retry_now(self, now: datetime) -> int:
        """Make every undelivered row due at `now` (after a restart); return how many there are."""
        with self.engine.write() as conn:
            return conn.execute("UPDATE outbox SET next_attempt_at = ? WHERE delivered_at IS NULL",
                                (to_db(now),)).rowcount

    def undelivered_count(self, sink: str | None = None) -> int:
        """How many rows (of `sink`, or of all sinks) are not delivered yet."""
        if sink is None:
            return int(self.engine.scalar("SELECT count(*) FROM outbox WHERE delivered_at IS NULL"))
        return int(self.engine.scalar("SELECT count(*) FROM outbox WHERE delivered_at IS NULL AND sink = ?", [sink]))

    def rows(self, *, undelivered_only: bool = False, limit: int = 200) -> list[OutboxRow]:
        """Rows, newest first."""
        return self.engine.select(OutboxRow, "delivered_at IS NULL" if undelivered_only else "",
                                  order="id DESC", limit=limit)

    def delivered_sinks(self, key: str, since: datetime) -> set[str]:
        """The sinks that have delivered a notification carrying alert `key` (any event)
        created at or after `since`."""
        rows = self.engine.select(OutboxRow, "delivered_at IS NOT NULL AND created_at >= ?", [since])
        return {r.sink for r in rows
                if any(isinstance(i, dict) and i.get("key") == key for i in (r.payload or {}).get("alerts", []))}

    def prune(self, delivered_before: datetime) -> int:
        """Delete rows delivered before the given time; return how many."""
        with self.engine.write() as conn:
            return conn.execute("DELETE FROM outbox WHERE delivered_at IS NOT NULL AND delivered_at < ?",
                                (to_db(delivered_before),)).rowcount
