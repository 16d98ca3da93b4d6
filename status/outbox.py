"""The notification outbox: every notification is a row here (committed) before it is sent.

Rows live in the history database. A sender takes due rows of its sink (undelivered,
`next_attempt_at` passed), records each attempt (error text, duration) and marks the row
delivered; rows left undelivered by a stop are picked up by the next start. The notification
policy's state (`notify_state`, one row) is written in the same transaction as the rows it
produced, so a decision and its notifications persist together.

This module must not import status.history (history imports it to register the tables).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, Column, func
from sqlalchemy.engine import Engine
from sqlmodel import Field, Session, SQLModel, col, delete, select

from status._time import as_utc


_utc = as_utc


class OutboxRow(SQLModel, table=True):
    """One notification for one sink, from decision to delivery."""

    __tablename__ = "outbox"
    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = Field(index=True)
    sink: str = Field(index=True)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    attempts: int = 0
    next_attempt_at: datetime | None = Field(default=None, index=True)
    delivered_at: datetime | None = Field(default=None, index=True)
    last_error: str | None = None
    duration_ms: float | None = None  # of the last attempt


class NotifyStateRow(SQLModel, table=True):
    """The notification policy's memory (one row, id 1)."""

    __tablename__ = "notify_state"
    id: int = Field(default=1, primary_key=True)
    updated_at: datetime
    state: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))


def _fix(row: OutboxRow) -> OutboxRow:
    row.created_at = _utc(row.created_at)  # type: ignore[assignment]
    row.next_attempt_at = _utc(row.next_attempt_at)
    row.delivered_at = _utc(row.delivered_at)
    return row


class Outbox:
    """Outbox access on a history engine; every method is blocking (call it off the loop)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def create(self) -> None:
        """Create the outbox tables if they are missing."""
        tables = [OutboxRow.__table__, NotifyStateRow.__table__]  # type: ignore[attr-defined]
        SQLModel.metadata.create_all(self.engine, tables=tables)

    def add(
        self, rows: Sequence[OutboxRow], state: dict[str, Any] | None = None,
        now: datetime | None = None,
    ) -> list[int]:
        """Insert rows (and replace the policy state) in one transaction; return the row ids."""
        with Session(self.engine, expire_on_commit=False) as s:
            for row in rows:
                s.add(row)
            if state is not None:
                s.merge(NotifyStateRow(id=1, updated_at=now or datetime.now(timezone.utc), state=state))
            s.commit()
            return [row.id for row in rows if row.id is not None]

    def load_state(self) -> dict[str, Any] | None:
        """The last policy state written, if any."""
        with Session(self.engine) as s:
            row = s.get(NotifyStateRow, 1)
            return dict(row.state) if row is not None else None

    def due(self, sink: str, now: datetime, limit: int = 20) -> list[OutboxRow]:
        """Undelivered rows of `sink` whose next attempt is due, oldest first."""
        with Session(self.engine) as s:
            q = (select(OutboxRow)
                 .where(OutboxRow.sink == sink, col(OutboxRow.delivered_at).is_(None),
                        col(OutboxRow.next_attempt_at) <= now)
                 .order_by(col(OutboxRow.next_attempt_at), col(OutboxRow.id)).limit(limit))
            return [_fix(r) for r in s.exec(q).all()]

    def next_attempt(self, sink: str) -> datetime | None:
        """When the earliest undelivered row of `sink` is due, if there is one."""
        with Session(self.engine) as s:
            q = select(func.min(OutboxRow.next_attempt_at)).where(
                OutboxRow.sink == sink, col(OutboxRow.delivered_at).is_(None))
            return _utc(s.exec(q).one())

    def record(
        self, row_id: int, *, now: datetime, duration_ms: float, error: str | None,
        next_attempt_at: datetime | None = None,
    ) -> None:
        """Record one attempt: delivered when `error` is None, else the error and the retry time."""
        with Session(self.engine) as s:
            row = s.get(OutboxRow, row_id)
            if row is None:
                return
            row.attempts += 1
            row.duration_ms = round(duration_ms, 1)
            row.last_error = error
            if error is None:
                row.delivered_at = now
            elif next_attempt_at is not None:
                row.next_attempt_at = next_attempt_at
            s.add(row)
            s.commit()

    def reschedule(self, row_id: int, next_attempt_at: datetime) -> None:
        """Move an undelivered row's next attempt."""
        with Session(self.engine) as s:
            row = s.get(OutboxRow, row_id)
            if row is not None and row.delivered_at is None:
                row.next_attempt_at = next_attempt_at
                s.add(row)
                s.commit()

    def retry_now(self, now: datetime) -> int:
        """Make every undelivered row due at `now` (after a restart); return how many there are."""
        with Session(self.engine) as s:
            rows = list(s.exec(select(OutboxRow).where(col(OutboxRow.delivered_at).is_(None))).all())
            for row in rows:
                row.next_attempt_at = now
                s.add(row)
            s.commit()
            return len(rows)

    def undelivered_count(self, sink: str | None = None) -> int:
        """How many rows (of `sink`, or of all sinks) are not delivered yet."""
        with Session(self.engine) as s:
            q = select(func.count()).select_from(OutboxRow).where(col(OutboxRow.delivered_at).is_(None))
            if sink is not None:
                q = q.where(OutboxRow.sink == sink)
            return int(s.exec(q).one())

    def rows(self, *, undelivered_only: bool = False, limit: int = 200) -> list[OutboxRow]:
        """Rows, newest first."""
        with Session(self.engine) as s:
            q = select(OutboxRow).order_by(col(OutboxRow.id).desc()).limit(limit)
            if undelivered_only:
                q = q.where(col(OutboxRow.delivered_at).is_(None))
            return [_fix(r) for r in s.exec(q).all()]

    def prune(self, delivered_before: datetime) -> int:
        """Delete rows delivered before the given time; return how many."""
        with Session(self.engine) as s:
            delivered = col(OutboxRow.delivered_at)
            result = s.exec(delete(OutboxRow).where(
                delivered.is_not(None), delivered < delivered_before))
            s.commit()
            return int(result.rowcount or 0)
