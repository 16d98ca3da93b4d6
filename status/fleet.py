"""The fleet's shared tables: each host's report, and claims that decide which daemon acts.

`hosts`: one row per daemon (host), rewritten by that daemon every `report_every` with its
jobs, their states and heartbeat times, and its host health. Only the host itself writes its
row. A clean stop sets `stopped_at` (a stopped host is not stale). `last_seen` and `stopped_at`
are the store's clock (`store_now`: the database server's), never the host's own: the hosts'
clocks need not agree for staleness to be judged right. `started_at` and the jobs' times are
the host's clock; `clock_offset` says how far that clock was ahead of the store's at the report
(None: not measured, a row written by hand or by an older proofwatch). `instance` is a random id
of the daemon process that wrote the row (a new one at every start) and `machine` the machine's
/etc/machine-id: with `pid` they tell a daemon's own previous incarnation (killed, then
restarted on the same machine) from another daemon given the same host name. The JSON columns:
  jobs:   [{"name", "kind", "state", "run_id", "pid", "started_at", "last_heartbeat_at",
            "last_progress_at", "phase", "message", "error", "waiting"}]   (times: ISO 8601 UTC)
  health: status.json's `host` section (HostStatus: score, label, reasons, sample, sampled_at,
          firing), as JSON.

`claims`: one row per fleet-wide condition (`key`, e.g. "stale:emubox:2026-11-25T10:00:00").
The first daemon to claim a key acts on it (raises and notifies the alert); the others see
the claim and do not. A claim is leased: its owner renews it until the work is done
(`done_at`); a claim whose owner stopped renewing (it died mid-send) can be taken over once
the lease has run out, so the work is done at least once. The claim is one atomic statement
(INSERT ... ON CONFLICT DO UPDATE ... WHERE ... RETURNING) on SQLite and PostgreSQL alike.
Every time in a claim (claimed_at, lease_until, done_at and the `now` it is judged at) is the
store's clock (`store_now`): a lease written by one host is judged by another.

Every function here blocks (call it off the event loop).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, Column, func, select as sa_select, text, update
from sqlalchemy.engine import Engine
from sqlmodel import Field, Session, SQLModel, col, select

from status._time import as_utc

if TYPE_CHECKING:
    from status.rows import RunRow


_utc = as_utc


class HostRow(SQLModel, table=True):
    """One daemon's latest report."""

    __tablename__ = "hosts"
    host: str = Field(primary_key=True)
    started_at: datetime
    last_seen: datetime
    stopped_at: datetime | None = None
    pid: int | None = None
    version: str = ""
    report_every: float = 10.0
    health: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    jobs: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON))
    active_alerts: int = 0
    # the writing daemon process's random id, and its machine (/etc/machine-id); "": an older
    # proofwatch's report (it does not send them: the server default), or no machine id
    instance: str = Field(default="", sa_column_kwargs={"server_default": ""})
    machine: str = Field(default="", sa_column_kwargs={"server_default": ""})
    clock_offset: float | None = None  # s the host's clock was ahead of the store's at the report


class ClaimRow(SQLModel, table=True):
    """Who acts on a fleet-wide condition."""

    __tablename__ = "claims"
    key: str = Field(primary_key=True)
    owner: str
    claimed_at: datetime
    lease_until: datetime
    done_at: datetime | None = None
    detail: str = ""


def _fix_host(row: HostRow) -> HostRow:
    row.started_at = _utc(row.started_at)  # type: ignore[assignment]
    row.last_seen = _utc(row.last_seen)  # type: ignore[assignment]
    row.stopped_at = _utc(row.stopped_at)
    return row


def store_now(engine: Engine) -> datetime:
    """The store's clock, in UTC: the database server's (PostgreSQL), the one clock every host
    sharing the store can read. SQLite has no server: its clock is the machine's that opens the
    file (the only machine that can share it safely)."""
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            value = conn.execute(text("SELECT statement_timestamp()")).scalar()
        elif conn.dialect.name == "sqlite":
            raw = conn.execute(text("SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')")).scalar()
            value = datetime.fromisoformat(str(raw))
        else:
            value = conn.execute(sa_select(func.now())).scalar()
    if not isinstance(value, datetime):
        raise RuntimeError(f"the store's clock answered {value!r}, not a time")
    return _utc(value)  # type: ignore[return-value]


def load_host(engine: Engine, host: str) -> HostRow | None:
    """One host's latest report (None: it never reported)."""
    with Session(engine) as s:
        row = s.get(HostRow, host)
        return _fix_host(row) if row is not None else None


def report_host(engine: Engine, row: HostRow) -> None:
    """Write this host's report (insert or replace its row) as given: a daemon stamps
    `last_seen` (and `stopped_at`) with `store_now` first (supervisor/fleet.py)."""
    values = row.model_dump()
    with Session(engine) as s:
        conn = s.connection()
        _upsert(conn, HostRow.__table__, "host", values)  # type: ignore[arg-type]
        s.commit()


def load_hosts(engine: Engine) -> list[HostRow]:
    """Every host's latest report, by name."""
    with Session(engine) as s:
        return [_fix_host(r) for r in s.exec(select(HostRow).order_by(col(HostRow.host))).all()]


def _upsert(conn: Any, table: Any, key: str, values: dict[str, Any], where: Any = None) -> Any:
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
    stmt = insert(table).values(**values)
    stmt = stmt.on_conflict_do_update(
        index_elements=[key], set_={n: stmt.excluded[n] for n in values if n != key}, where=where)
    return conn.execute(stmt.returning(table.c[key]) if where is not None else stmt)


def try_claim(engine: Engine, key: str, owner: str, now: datetime, lease: float,
              detail: str = "") -> bool:
    """Claim `key` for `owner`; True if it is now the owner's (new, already its own, or taken
    over from an owner whose lease ran out before the work was done). One atomic statement.
    `now`: the store's clock (`store_now`), as every lease is."""
    from datetime import timedelta

    table = ClaimRow.__table__  # type: ignore[attr-defined]
    values = {"key": key, "owner": owner, "claimed_at": now,
              "lease_until": now + timedelta(seconds=lease), "detail": detail}
    with Session(engine) as s:
        conn = s.connection()
        won = _upsert(conn, table, "key", values, where=(
            (table.c.owner == owner) | ((table.c.done_at.is_(None)) & (table.c.lease_until < now))
        )).first() is not None
        s.commit()
    return won


def renew_claims(engine: Engine, owner: str, keys: Iterable[str], until: datetime) -> int:
    """Extend the lease of `owner`'s unfinished claims among `keys` to `until` (the store's
    clock: `store_now` + the lease); return how many."""
    keys = list(keys)
    if not keys:
        return 0
    with Session(engine) as s:
        result = s.exec(update(ClaimRow).where(  # type: ignore[call-overload]
            col(ClaimRow.key).in_(keys), col(ClaimRow.owner) == owner, col(ClaimRow.done_at).is_(None)
        ).values(lease_until=until))
        s.commit()
        return int(result.rowcount or 0)


def finish_claim(engine: Engine, key: str, owner: str, now: datetime) -> bool:
    """Mark `owner`'s claim on `key` done (no one takes it over after this)."""
    with Session(engine) as s:
        result = s.exec(update(ClaimRow).where(  # type: ignore[call-overload]
            col(ClaimRow.key) == key, col(ClaimRow.owner) == owner
        ).values(done_at=now))
        s.commit()
        return bool(result.rowcount)


def load_claims(engine: Engine, prefix: str = "") -> list[ClaimRow]:
    """Claims whose key starts with `prefix`, oldest first."""
    with Session(engine) as s:
        q = select(ClaimRow).order_by(col(ClaimRow.claimed_at))
        if prefix:
            q = q.where(col(ClaimRow.key).startswith(prefix))
        rows = list(s.exec(q).all())
    for r in rows:
        r.claimed_at = _utc(r.claimed_at)  # type: ignore[assignment]
        r.lease_until = _utc(r.lease_until)  # type: ignore[assignment]
        r.done_at = _utc(r.done_at)
    return rows


def latest_runs(engine: Engine, wanted: Iterable[tuple[str, str]]) -> dict[tuple[str, str], RunRow | None]:
    """The latest run (by start) of each (job, host) in the shared history; None for a job
    that has never run there."""
    from status.history import run_row
    from status.tables import RunTable

    out: dict[tuple[str, str], RunRow | None] = {}
    with Session(engine) as s:
        for job, host in wanted:
            row = s.exec(select(RunTable).where(RunTable.job == job, RunTable.host == host)
                         .order_by(col(RunTable.started_at).desc()).limit(1)).first()
            out[(job, host)] = run_row(row) if row is not None else None
    return out


def last_start_reasons(engine: Engine, host: str, jobs: Iterable[str]) -> dict[str, str]:
    """Each of `jobs`' last start reason on `host` (the transition to STARTING), if any."""
    from status.tables import EventTable

    out: dict[str, str] = {}
    with Session(engine) as s:
        for job in jobs:
            row = s.exec(select(EventTable).where(EventTable.host == host, EventTable.job == job,
                                                  EventTable.to_state == "STARTING")
                         .order_by(col(EventTable.id).desc()).limit(1)).first()
            if row is not None:
                out[job] = row.reason
    return out
