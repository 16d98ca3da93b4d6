"""Host-health samples in the history, downsampled for long retention.

Retention (`RETENTION`): every sample for 1 h, then one per minute up to 24 h, one per 10 minutes
up to 30 days; older samples are deleted. Buckets are aligned to the epoch, and in each bucket the
sample with the lowest score survives (ties: the earliest), so an incident outlives the
downsampling that would otherwise average it away. Timestamps are stored and read in UTC
(a naive one is taken to be UTC already).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import JSON, Column, delete
from sqlalchemy.engine import Engine
from sqlmodel import Field, Session, SQLModel, col, select

__all__ = ["RETENTION", "HostSampleRow", "Tier", "keep", "load_samples", "prune_samples",
           "save_sample"]


class HostSampleRow(SQLModel, table=True):
    """One host-health sample (or the survivor of a downsampled bucket)."""

    __tablename__ = "host_samples"
    id: int | None = Field(default=None, primary_key=True)
    ts: datetime = Field(index=True)
    host: str = Field(default="", index=True, sa_column_kwargs={"server_default": ""})
    cpu_pct: float
    load1: float
    mem_pct: float
    swap_pct: float
    disk: dict[str, float | None] = Field(default_factory=dict, sa_column=Column(JSON))
    temp_c: float | None = None
    score: int
    label: str


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


def save_sample(engine: Engine, row: HostSampleRow) -> None:
    """Append one sample."""
    row.ts = _utc(row.ts)
    with Session(engine) as s:
        s.add(row)
        s.commit()


def prune_samples(engine: Engine, now: datetime, tiers: Sequence[Tier] = RETENTION,
                  host: str | None = None) -> int:
    """Delete what `keep` does not keep (in one transaction); return how many rows went.
    With `host`, only that host's samples (a daemon prunes its own in a shared store)."""
    cutoff = _utc(now) - tiers[0].max_age if tiers[0].step is None else None
    with Session(engine) as s:
        q = select(HostSampleRow)
        if host is not None:
            q = q.where(HostSampleRow.host == host)
        if cutoff is not None:  # the first tier keeps everything: no need to read it
            q = q.where(col(HostSampleRow.ts) < cutoff)
        rows = list(s.exec(q).all())
        kept = {row.id for row in keep(rows, now, tiers)}
        doomed = [row.id for row in rows if row.id not in kept]
        for start in range(0, len(doomed), 500):
            s.exec(delete(HostSampleRow).where(
                col(HostSampleRow.id).in_(doomed[start:start + 500])))
        s.commit()
    return len(doomed)


def load_samples(engine: Engine, since: datetime | None = None,
                 limit: int = 10_000, host: str | None = None) -> list[HostSampleRow]:
    """Stored samples (UTC timestamps), oldest first: the newest `limit` since `since` (of
    `host` only, when given)."""
    with Session(engine) as s:
        q = select(HostSampleRow).order_by(col(HostSampleRow.ts).desc()).limit(limit)
        if host is not None:
            q = q.where(HostSampleRow.host == host)
        if since is not None:
            q = q.where(col(HostSampleRow.ts) >= _utc(since))
        rows = list(s.exec(q).all())
    return rows[::-1]
