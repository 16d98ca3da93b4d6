"""Host-health samples in the history, downsampled for long retention.

Retention (`RETENTION`): every sample for 1 h, then one per minute up to 24 h, one per 10 minutes
up to 30 days; older samples are deleted. Buckets are aligned to the epoch, and in each bucket the
sample with the lowest score survives (ties: the earliest), so an incident outlives the
downsampling that would otherwise average it away. Timestamps are stored and read in UTC
(a naive one is taken to be UTC already).

`engine` is the history's: a status.sqlite.SqliteDB (the default) or a SQLAlchemy engine (a
database server); SQLAlchemy is imported only for the latter.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from status.rows import HostSampleRow
from status.sqlite import SqliteDB, insert_row

__all__ = ["RETENTION", "HostSampleRow", "Tier", "keep", "load_samples", "prune_samples",
           "save_sample"]


@dataclass(frozen=True)
class Tier:
    """Samples younger than `max_age` (and older than the previous tier's) keep one per `step`;
    a step of None keeps them all."""

    max_age: timedelta
    step: timedelta | None


RETENTION: tuple[Tier, ...] = (
    Tier(timedelta(hours=1), None),
    Tier(timedelta(hours=24), timedelta(minutes=1)),
    Tier(timedelta(days=30), timedelta(minutes=10)),
)

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _utc(ts: datetime) -> datetime:
    return ts.replace(tzinfo=timezone.utc) if ts.tzinfo is None else ts.astimezone(timezone.utc)


def keep(rows: Iterable[HostSampleRow], now: datetime,
         tiers: Sequence[Tier] = RETENTION) -> list[HostSampleRow]:
    """The rows that survive downsampling at `now`, oldest first."""
    now = _utc(now)
    survivors: dict[object, HostSampleRow] = {}
    for row in rows:
        ts = _utc(row.ts)
        age = now - ts
        index = next((i for i, tier in enumerate(tiers) if age <= tier.max_age), None)
        if index is None:
            continue  # older than the last tier
        step = tiers[index].step
        bucket: object = (index, id(row)) if step is None else (index, (ts - _EPOCH) // step)
        best = survivors.get(bucket)
        if best is None or (row.score, ts) < (best.score, _utc(best.ts)):
            survivors[bucket] = row
    return sorted(survivors.values(), key=lambda r: _utc(r.ts))


def save_sample(engine: Any, row: HostSampleRow) -> None:
    """Append one sample (its id is set)."""
    row.ts = _utc(row.ts)
    values = row.model_dump()
    values.pop("id")
    if isinstance(engine, SqliteDB):
        with engine.write() as conn:
            row.id = insert_row(conn, "host_samples", values)
        return
    from sqlmodel import Session

    from status.tables import HostSampleTable

    with Session(engine) as s:
        stored = HostSampleTable(**values)
        s.add(stored)
        s.commit()
        row.id = stored.id


def _select(engine: Any, *, host: str | None, before: datetime | None = None, since: datetime | None = None,
            limit: int | None = None) -> list[HostSampleRow]:
    """Samples (of `host`; older than `before`; at or after `since`), newest first with a limit."""
    if isinstance(engine, SqliteDB):
        where: list[str] = []
        params: list[Any] = []
        for cond, value in (("host = ?", host), ("ts < ?", before), ("ts >= ?", since)):
            if value is not None:
                where.append(cond)
                params.append(value)
        return engine.select(HostSampleRow, " AND ".join(where), params,
                             order="ts DESC" if limit is not None else "", limit=limit)
    from sqlmodel import Session, col, select

    from status.history import _row
    from status.tables import HostSampleTable as T

    with Session(engine) as s:
        q = select(T)
        if limit is not None:
            q = q.order_by(col(T.ts).desc()).limit(limit)
        if host is not None:
            q = q.where(T.host == host)
        if before is not None:
            q = q.where(col(T.ts) < before)
        if since is not None:
            q = q.where(col(T.ts) >= since)
        return [_row(HostSampleRow, r) for r in s.exec(q).all()]


def prune_samples(engine: Any, now: datetime, tiers: Sequence[Tier] = RETENTION,
                  host: str | None = None) -> int:
    """Delete what `keep` does not keep; return how many rows went. With `host`, only that
    host's samples (a daemon prunes its own in a shared store)."""
    cutoff = _utc(now) - tiers[0].max_age if tiers[0].step is None else None
    rows = _select(engine, host=host, before=cutoff)  # the first tier keeps everything: not read
    kept = {row.id for row in keep(rows, now, tiers)}
    doomed = [row.id for row in rows if row.id not in kept]
    if not doomed:
        return 0
    if isinstance(engine, SqliteDB):
        with engine.write() as conn:
            for start in range(0, len(doomed), 500):
                part = doomed[start:start + 500]
                conn.execute(f"DELETE FROM host_samples WHERE id IN ({','.join('?' * len(part))})", part)
        return len(doomed)
    from sqlmodel import Session, col, delete

    from status.tables import HostSampleTable as T

    with Session(engine) as s:
        for start in range(0, len(doomed), 500):
            s.exec(delete(T).where(col(T.id).in_(doomed[start:start + 500])))  # type: ignore[call-overload]
        s.commit()
    return len(doomed)


def load_samples(engine: Any, since: datetime | None = None,
                 limit: int = 10_000, host: str | None = None) -> list[HostSampleRow]:
    """Stored samples (UTC timestamps), oldest first: the newest `limit` since `since` (of
    `host` only, when given)."""
    rows = _select(engine, host=host, since=_utc(since) if since is not None else None, limit=limit)
    return rows[::-1]
