"""The schema of status.json: the public contract read by people, jq, agents and dashboards.

Field names follow DESIGN.md. Bump SCHEMA_VERSION on any incompatible change.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION = 1


class JobState(StrEnum):
    """Where a job (its latest run) stands."""

    PENDING = "PENDING"  # waiting for a trigger (manual, schedule, after, not_before)
    STARTING = "STARTING"  # spawned, no heartbeat yet
    RUNNING = "RUNNING"  # heartbeating (and progressing)
    STALLED = "STALLED"  # alive, no progress for stall_after
    BLOCKED = "BLOCKED"  # the worker reported a blocker
    SILENT = "SILENT"  # alive, no first heartbeat within startup_grace
    VERIFYING = "VERIFYING"  # exited 0; checking the declared proofs
    SUCCEEDED = "SUCCEEDED"  # exit 0 and every proof verified
    FAILED = "FAILED"  # non-zero exit, unproven, killed, or over max_runtime
    CRASHED = "CRASHED"  # died before its first heartbeat
    BACKOFF = "BACKOFF"  # a service waiting to be restarted
    FATAL = "FATAL"  # restart budget exhausted; retried slowly
    STOPPED = "STOPPED"  # stopped by the operator or by the supervisor shutting down

    @property
    def is_active(self) -> bool:
        """True while a process is (or may be) alive for this run."""
        return self in ACTIVE_STATES

    @property
    def is_final(self) -> bool:
        """True once a run has ended."""
        return self in FINAL_STATES


ACTIVE_STATES = frozenset(
    {
        JobState.STARTING,
        JobState.RUNNING,
        JobState.STALLED,
        JobState.BLOCKED,
        JobState.SILENT,
        JobState.VERIFYING,
    }
)
FINAL_STATES = frozenset(
    {JobState.SUCCEEDED, JobState.FAILED, JobState.CRASHED, JobState.STOPPED}
)


class Severity(StrEnum):
    """How urgent an alert is."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ProofStatus(_Model):
    """One verified (or failed) artifact of a run."""

    path: str
    kind: str
    ok: bool
    detail: str = ""
    size: int | None = None
    sha256: str | None = None
    mtime: datetime | None = None
    checks: list[str] = Field(default_factory=list)  # passed checks, e.g. "fresh", "PNG 1280x720"


class JobStatus(_Model):
    """One job and its latest run."""

    state: JobState
    kind: str
    run_id: str | None = None
    pid: int | None = None
    adopted: bool = False  # re-adopted after a supervisor restart: exit status will be unknown
    started_at: datetime | None = None
    ended_at: datetime | None = None
    last_heartbeat_at: datetime | None = None
    last_progress_at: datetime | None = None
    progress: dict[str, float] = Field(default_factory=dict)
    phase: str = ""
    message: str = ""
    blocker: str | None = None
    restarts: int = 0
    exit_code: int | None = None
    signal: str | None = None
    error: str | None = None
    next_start_at: datetime | None = None
    stall_deadline: datetime | None = None
    proofs: list[ProofStatus] = Field(default_factory=list)
    run_dir: str | None = None


class AlertStatus(_Model):
    """An active alert: one per condition, deduplicated by key."""

    key: str
    job: str | None
    severity: Severity
    title: str
    detail: str
    first_seen: datetime
    last_seen: datetime
    count: int = 1
    run_id: str | None = None
    state: str = "firing"  # firing | acknowledged (resolved alerts leave the list)
    acknowledged_at: datetime | None = None


class RunSummary(_Model):
    """A finished run."""

    job: str
    run_id: str
    state: JobState
    started_at: datetime
    ended_at: datetime | None
    exit_code: int | None = None
    error: str | None = None


class SupervisorStatus(_Model):
    """The daemon that wrote this document."""

    pid: int
    version: str
    started_at: datetime
    config: str
    host: str
    socket: str


class HostStatus(_Model):
    """Host health (filled in by the health sampler): the latest sample, its 0-100 score and
    label (HEALTHY, DEGRADED, WARNING, CRITICAL), the reasons behind the score, and the host
    conditions currently alerting (keys like "host:disk:/", after hysteresis)."""

    score: int | None = None
    label: str | None = None
    reasons: list[str] = Field(default_factory=list)
    sample: dict[str, Any] = Field(default_factory=dict)
    sampled_at: datetime | None = None
    firing: list[str] = Field(default_factory=list)


class SilenceStatus(_Model):
    """A maintenance silence: notifications for a job or alert key are muted until `until`."""

    target: str
    until: datetime
    reason: str = ""


class NotifyStatus(_Model):
    """Notification delivery: undelivered outbox rows and active silences."""

    outbox_depth: int = 0
    silences: list[SilenceStatus] = Field(default_factory=list)


class StoreStatus(_Model):
    """`store`: where the history is written, and whether it can be written now. While it
    cannot (a shared store unreachable, a full disk), supervision and alerting go on, rows
    are queued in memory and written when it returns."""

    kind: str = "sqlite"  # sqlite | postgresql
    target: str = ""  # the file, or host:port/database (never a password)
    ok: bool = True
    error: str | None = None
    failing_since: datetime | None = None
    queued: int = 0  # history rows waiting to be written


class FleetHostStatus(_Model):
    """One host of the fleet as this daemon last read the shared store."""

    host: str
    state: str  # up | stale | stopped (policies.fleet.HostState)
    last_seen: datetime
    jobs: int = 0
    active_alerts: int = 0
    alerted_by: str | None = None  # the daemon that raised this host's stale alert


class FleetStatus(_Model):
    """`fleet` (a shared store only): the other hosts, as of `read_at`."""

    read_at: datetime | None = None
    error: str | None = None  # the shared store could not be read (as of read_at, or never)
    hosts: list[FleetHostStatus] = Field(default_factory=list)


class StatusDocument(_Model):
    """The whole of status.json."""

    schema_: int = Field(default=SCHEMA_VERSION, alias="schema")
    updated_at: datetime
    supervisor: SupervisorStatus
    host: HostStatus = Field(default_factory=HostStatus)
    jobs: dict[str, JobStatus] = Field(default_factory=dict)
    alerts: list[AlertStatus] = Field(default_factory=list)
    recent: list[RunSummary] = Field(default_factory=list)
    notify: NotifyStatus = Field(default_factory=NotifyStatus)
    store: StoreStatus = Field(default_factory=StoreStatus)
    fleet: FleetStatus | None = None

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def status_json_schema() -> dict[str, Any]:
    """The JSON Schema of status.json."""
    schema = StatusDocument.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "proofwatch status.json"
    return schema
