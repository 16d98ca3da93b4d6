"""The fleet view: every host sharing the store, its state, health and jobs, as one reader sees
it now (`proofwatch fleet`, `GET /api/fleet`, the dashboard's Fleet section).

Built from the `hosts` rows (status.fleet: each daemon's own latest report) and the stale-host
claims, judged at `now`: the store's clock (the database server's, status.fleet.store_now;
`read_view` reads it when given None). A host's `last_seen`/`stopped_at` are the store's clock
too, so its state and `seen_ago` do not depend on any host's clock. Its jobs' times (heartbeat,
progress, start) are its own clock's: their ages (`heartbeat_age`, `progress_age`) are taken
against the store's now moved onto that host's clock by the offset it measured at its report
(`clock_offset`, its clock minus the store's); a report without one (an older proofwatch's) is
aged against `now` as is, off by that host's skew. Ages are never below zero. A reader that
passes its own clock as `now` gets every age off by its own skew. A host that is stale (or
stopped) is shown as it last reported: its jobs' states are not live (`live` is false) and may
have changed since.

`build_view` is pure; `read_view` reads the store (it blocks: call it off the event loop).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from policies.fleet import HostState, host_state, stale_claim_key
from status._time import as_utc
from status.backend import store_target

if TYPE_CHECKING:  # the fleet's tables are SQLModel's: loaded when a fleet is read (a shared store)
    from sqlalchemy.engine import Engine
    from sqlalchemy.exc import SQLAlchemyError

    from status.fleet import ClaimRow, HostRow

STALE_CLAIMS = "stale:"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FleetJob(_Model):
    """One job of a host, as that host last reported it."""

    name: str
    kind: str = ""
    state: str = ""
    run_id: str | None = None
    pid: int | None = None
    started_at: datetime | None = None
    last_heartbeat_at: datetime | None = None
    heartbeat_age: float | None = Field(
        default=None, description="Seconds since the last heartbeat (the host's clock, against read_at moved by "
                                  "its clock_offset)")
    last_progress_at: datetime | None = None
    progress_age: float | None = Field(default=None, description="Seconds since the last progress (as heartbeat_age)")
    phase: str = ""
    message: str = ""
    error: str | None = None
    waiting: str | None = None
    live: bool = Field(description="False when the host is stale or stopped: the state is its last report")


class FleetHealth(_Model):
    """A host's health as it last reported it."""

    label: str | None = None
    score: int | None = None
    reasons: list[str] = Field(default_factory=list)
    sampled_at: datetime | None = None


class FleetHost(_Model):
    """One daemon (host) of the fleet."""

    host: str
    state: HostState
    last_seen: datetime = Field(description="The host's last report, by the store's clock")
    seen_ago: float = Field(description="Seconds since last_seen (read_at - last_seen)")
    clock_offset: float | None = Field(
        default=None, description="Seconds the host's clock was ahead of the store's at its report (None: unknown)")
    started_at: datetime
    stopped_at: datetime | None = None
    version: str = ""
    pid: int | None = None
    report_every: float
    health: FleetHealth
    active_alerts: int = 0
    alerted_by: str | None = Field(default=None, description="The daemon that raised this host's stale alert")
    jobs: list[FleetJob]


class FleetView(_Model):
    """Every host sharing the store, as read at `read_at`."""

    read_at: datetime = Field(description="The store's clock when it was read: every age is against it")
    reader: str = Field(description="The host that read the store")
    host_stale_after: float
    hosts: list[FleetHost]


def _age(now: datetime, then: datetime | None) -> float | None:
    return None if then is None else round(max(0.0, (now - then).total_seconds()), 3)


def _time(value: Any) -> datetime | None:
    """A reported ISO 8601 time (None for a missing or unreadable one: another version's report
    must not break the view)."""
    if isinstance(value, datetime):
        return as_utc(value)
    if not isinstance(value, str) or not value:
        return None
    try:
        return as_utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
    except ValueError:
        return None


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _job(raw: dict[str, Any], now: datetime, live: bool) -> FleetJob:
    beat, progress = _time(raw.get("last_heartbeat_at")), _time(raw.get("last_progress_at"))
    return FleetJob(
        name=str(raw.get("name", "?")), kind=str(raw.get("kind") or ""), state=str(raw.get("state") or ""),
        run_id=_str(raw.get("run_id")), pid=_int(raw.get("pid")), started_at=_time(raw.get("started_at")),
        last_heartbeat_at=beat, heartbeat_age=_age(now, beat),
        last_progress_at=progress, progress_age=_age(now, progress),
        phase=str(raw.get("phase") or ""), message=str(raw.get("message") or ""),
        error=_str(raw.get("error")), waiting=_str(raw.get("waiting")), live=live)


def _health(raw: dict[str, Any]) -> FleetHealth:
    reasons = raw.get("reasons")
    return FleetHealth(label=_str(raw.get("label")), score=_int(raw.get("score")),
                       reasons=[str(r) for r in reasons] if isinstance(reasons, list) else [],
                       sampled_at=_time(raw.get("sampled_at")))


def _alerted_by(row: HostRow, claims: dict[str, ClaimRow], by_host: dict[str, list[ClaimRow]]) -> str | None:
    """Who raised the alert for this episode of staleness (the report it went silent after)."""
    exact = claims.get(stale_claim_key(row.host, row.last_seen))
    if exact is not None:
        return exact.owner
    same_episode = [c for c in by_host.get(row.host, []) if c.claimed_at >= row.last_seen]
    return same_episode[-1].owner if same_episode else None


def build_view(hosts: list[HostRow], claims: list[ClaimRow], now: datetime, stale_after: float,
               reader: str) -> FleetView:
    """The fleet as seen at `now` (the store's clock) from the hosts' reports and the
    stale-host claims (oldest first)."""
    by_key = {c.key: c for c in claims}
    by_host: dict[str, list[ClaimRow]] = {}
    for c in claims:
        by_host.setdefault(c.key.removeprefix(STALE_CLAIMS).split(":", 1)[0], []).append(c)
    out = []
    for row in hosts:
        state = host_state(row.last_seen, row.stopped_at, now, stale_after)
        live = state == HostState.UP
        offset = row.clock_offset if isinstance(row.clock_offset, (int, float)) else None
        host_now = now + timedelta(seconds=offset) if offset is not None else now  # on the host's clock
        out.append(FleetHost(
            host=row.host, state=state, last_seen=row.last_seen, seen_ago=_age(now, row.last_seen) or 0.0,
            started_at=row.started_at, stopped_at=row.stopped_at, version=row.version, pid=row.pid,
            clock_offset=offset,
            report_every=row.report_every, health=_health(row.health if isinstance(row.health, dict) else {}),
            active_alerts=row.active_alerts,
            alerted_by=_alerted_by(row, by_key, by_host) if state == HostState.STALE else None,
            jobs=[_job(j, host_now, live) for j in (row.jobs or []) if isinstance(j, dict)]))
    return FleetView(read_at=now, reader=reader, host_stale_after=stale_after, hosts=out)


class FleetReadError(Exception):
    """Raised when the shared store cannot be read: unreachable, or no daemon has reported to
    it yet. `message` says which, naming the store without its password."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def read_view(engine: Engine, now: datetime | None, stale_after: float, reader: str) -> FleetView:
    """The fleet from the store (blocks), judged at `now`: None reads the store's clock in the
    same exchange (what every reader should do; a reader's own clock is off by its skew).
    FleetReadError when the store cannot be read."""
    from sqlalchemy.exc import SQLAlchemyError

    from status.fleet import load_claims, load_hosts, store_now

    try:
        at = store_now(engine) if now is None else now
        return build_view(load_hosts(engine), load_claims(engine, STALE_CLAIMS), at, stale_after, reader)
    except SQLAlchemyError as exc:
        raise FleetReadError(_why(engine, exc)) from None


def _why(engine: Engine, exc: SQLAlchemyError) -> str:
    from sqlalchemy import inspect
    from sqlalchemy.exc import SQLAlchemyError

    target = store_target(engine)
    try:
        reported = inspect(engine).has_table("hosts")
    except SQLAlchemyError:
        reported = True  # not even that could be read: the first error says why
    if not reported:
        return f"{target}: no daemon has reported to this store yet (no hosts table)"
    first = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return f"{target}: cannot read the fleet: {first[0] if first else type(exc).__name__}"
