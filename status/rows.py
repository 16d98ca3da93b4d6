"""The history's rows as plain dataclasses: what the daemon builds, writes and reads back.

They carry no database machinery, so the daemon's own process never imports SQLAlchemy for
its default SQLite history (status.sqlite writes them with the standard library's sqlite3):
SQLAlchemy and SQLModel alone are ~33 MB of RSS and ~0.3 s of start-up. These classes are
the schema: status.tables makes the SQLModel tables from them (for migrations, PostgreSQL and
status/schema.sql), with what each `column` declares (key, index, server default); `dict` and
`list` columns are JSON.

Times are UTC (a naive one is taken to be UTC); `dict`/`list` columns are JSON.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar


class Row:
    """What every row can do: its columns as a dict, and a copy (the names SQLModel rows use,
    so code and tests read the same for both)."""

    __tablename__: ClassVar[str]

    def model_dump(self) -> dict[str, Any]:
        """Every column, by name (JSON values copied)."""
        return {f.name: copy.deepcopy(getattr(self, f.name)) if isinstance(getattr(self, f.name), (dict, list))
                else getattr(self, f.name) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    def model_copy(self, *, update: dict[str, Any] | None = None) -> Any:
        """A copy, with `update` applied."""
        return dataclasses.replace(self, **(update or {}))  # type: ignore[type-var]


def column(default: Any = dataclasses.MISSING, *, factory: Any = dataclasses.MISSING, key: bool = False,
           index: bool = False, server_default: str | None = None) -> Any:
    """A row's column: its default, and what its table declares (status.tables): primary
    `key`, `index`, a `server_default` (for rows written by an older proofwatch)."""
    meta = {"key": key, "index": index, "server_default": server_default}
    return field(default=default, default_factory=factory, metadata=meta)


@dataclass(kw_only=True)
class RunRow(Row):
    """One run of a job."""

    __tablename__ = "runs"
    run_id: str = column(key=True)
    job: str = column(index=True)
    host: str = column("", server_default="")
    state: str
    started_at: datetime = column(index=True)
    ended_at: datetime | None = None
    pid: int | None = None
    pid_created: float | None = None  # the leader's create time: a reused pid is not this run
    command: str = ""  # the argv it was started with (shell-quoted), for the operator
    exit_code: int | None = None
    signal: str | None = None
    error: str | None = None
    run_dir: str = ""
    phase: str = ""
    message: str = ""
    progress: dict[str, float] = column(factory=dict)
    proofs: list[dict[str, Any]] = column(factory=list)
    last_heartbeat_at: datetime | None = None
    last_progress_at: datetime | None = None


@dataclass(kw_only=True)
class EventRow(Row):
    """Something that happened to a run or job: a transition, an exit, a bad heartbeat."""

    __tablename__ = "events"
    id: int | None = column(None, key=True)  # assigned by the database
    ts: datetime = column(index=True)
    job: str = column(index=True)
    run_id: str | None = column(None, index=True)
    host: str = column("", index=True, server_default="")  # filled in by apply
    kind: str  # transition | exit | heartbeat_error | control | spawn_error | supervisor | proof
    from_state: str | None = None
    to_state: str | None = None
    reason: str = ""


@dataclass(kw_only=True)
class AlertRow(Row):
    """An alert, from first raise to resolution."""

    __tablename__ = "alerts"
    id: str = column(key=True)  # assigned by the daemon (uuid4 hex)
    key: str = column(index=True)
    job: str | None = None
    run_id: str | None = None
    host: str = column("", index=True, server_default="")  # filled in by apply
    severity: str
    title: str
    detail: str
    first_seen: datetime
    last_seen: datetime
    count: int = 1
    resolved_at: datetime | None = None
    resolution: str | None = None
    acknowledged_at: datetime | None = None


@dataclass(kw_only=True)
class HostSampleRow(Row):
    """One host-health sample (or the survivor of a downsampled bucket)."""

    __tablename__ = "host_samples"
    id: int | None = column(None, key=True)
    ts: datetime = column(index=True)
    host: str = column("", index=True, server_default="")
    cpu_pct: float
    load1: float
    mem_pct: float
    swap_pct: float
    disk: dict[str, float | None] = column(factory=dict)
    temp_c: float | None = None
    score: int
    label: str


@dataclass(kw_only=True)
class OutboxRow(Row):
    """One notification for one sink, from decision to delivery."""

    __tablename__ = "outbox"
    id: int | None = column(None, key=True)
    created_at: datetime = column(index=True)
    sink: str = column(index=True)
    payload: dict[str, Any] = column(factory=dict)
    attempts: int = 0
    next_attempt_at: datetime | None = column(None, index=True)
    delivered_at: datetime | None = column(None, index=True)
    last_error: str | None = None
    duration_ms: float | None = None  # of the last attempt


@dataclass(kw_only=True)
class NotifyStateRow(Row):
    """The notification policy's memory (one row, id 1)."""

    __tablename__ = "notify_state"
    id: int = column(1, key=True)
    updated_at: datetime
    state: dict[str, Any] = column(factory=dict)


ROWS: tuple[type[Row], ...] = (RunRow, EventRow, AlertRow, HostSampleRow, OutboxRow, NotifyStateRow)


RowData = dict[str, Any]  # a row's columns, as the daemon hands them over (cheap to build)


@dataclass(frozen=True)
class Batch:
    """History changes to apply in one transaction."""

    runs: Sequence[RunRow | RowData] = ()
    events: Sequence[EventRow | RowData] = ()
    alerts: Sequence[AlertRow] = ()


def columns(cls: type[Row], row: Row | RowData) -> RowData:
    """All of a row's columns; a dict's missing ones get the row's defaults (a missing
    required one, or an unknown one, is an error naming the table)."""
    if not isinstance(row, dict):
        return row.model_dump()
    fields = _FIELDS[cls]
    unknown = set(row) - set(fields)
    if unknown:
        raise ValueError(f"{cls.__tablename__}: unknown columns {sorted(unknown)}")
    out: RowData = {}
    for name, f in fields.items():
        if name in row:
            continue
        if f.default is not dataclasses.MISSING:
            out[name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[name] = f.default_factory()
        else:
            raise ValueError(f"{cls.__tablename__}: column {name} is missing")
    out.update(row)
    return out


def batch_rows(batch: Batch, host: str, keep_final: set[str]) -> tuple[list[RowData], list[RowData], list[RowData]]:
    """A batch's runs and events as complete column dicts, each with a host (the writer's when
    it names none), an event without an id left to the database to number: (the runs whose
    stored final state must not be undone (`keep_final`), the other runs, the events)."""
    runs = [columns(RunRow, r) for r in batch.runs]
    events = [columns(EventRow, e) for e in batch.events]
    for row in (*runs, *events):
        if not row.get("host"):
            row["host"] = host
    for e in events:
        if e["id"] is None:
            del e["id"]
    guarded = [r for r in runs if r["run_id"] in keep_final]
    if guarded:
        runs = [r for r in runs if r["run_id"] not in keep_final]
    return guarded, runs, events


def latest_by_job(rows: Iterable[RunRow]) -> dict[str, RunRow]:
    """The newest run of each job among `rows` (which are newest first)."""
    out: dict[str, RunRow] = {}
    for row in rows:
        out.setdefault(row.job, row)
    return out


def kinds(cls: type[Row]) -> tuple[frozenset[str], frozenset[str]]:
    """(the datetime columns, the JSON columns) of a row class."""
    return _KINDS[cls]


_FIELDS: dict[type[Row], dict[str, dataclasses.Field[Any]]] = {
    cls: {f.name: f for f in dataclasses.fields(cls)} for cls in ROWS}  # type: ignore[arg-type]
_KINDS: dict[type[Row], tuple[frozenset[str], frozenset[str]]] = {
    cls: (frozenset(n for n, f in fs.items() if str(f.type).startswith("datetime")),
          frozenset(n for n, f in fs.items() if str(f.type).startswith(("dict", "list"))))
    for cls, fs in _FIELDS.items()}
