"""The API's request and response bodies (their JSON Schemas go into the OpenAPI document).

status.json's own models (StatusDocument, JobStatus, AlertStatus, ProofStatus) are reused as
they are; these add what only the API says."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from status.models import AlertStatus, JobState, JobStatus, ProofStatus


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Reply(_Model):
    """A write that was done: what the daemon did, in words."""

    ok: Literal[True] = True
    message: str
    run_id: str | None = None


class ErrorReply(_Model):
    """A request that was refused or failed: why, in words."""

    ok: Literal[False] = False
    error: str


class Health(_Model):
    """The daemon is up (also the CLI's ping)."""

    ok: Literal[True] = True
    pid: int
    version: str
    started_at: datetime
    uptime_seconds: float
    jobs: int


class RunRecord(_Model):
    """One run, live or from the history."""

    run_id: str
    job: str
    state: JobState
    started_at: datetime
    ended_at: datetime | None = None
    pid: int | None = None
    exit_code: int | None = None
    signal: str | None = None
    error: str | None = None
    run_dir: str
    phase: str = ""
    message: str = ""
    progress: dict[str, float] = Field(default_factory=dict)
    last_heartbeat_at: datetime | None = None
    last_progress_at: datetime | None = None


class JobDetail(_Model):
    """A job: its status.json entry, its latest runs and its active alerts."""

    name: str
    status: JobStatus
    runs: list[RunRecord]
    alerts: list[AlertStatus]


class EventRecord(_Model):
    """One event of a run (a transition with its reason, a control action, a bad heartbeat)."""

    ts: datetime
    kind: str
    from_state: str | None = None
    to_state: str | None = None
    reason: str


class LogTails(_Model):
    """The last lines of a run's output."""

    stdout: list[str]
    stderr: list[str]


class RunDetail(_Model):
    """A run with its events, proofs and the tails of its output."""

    run: RunRecord
    active: bool
    events: list[EventRecord]
    proofs: list[ProofStatus]
    declared_proofs: list[str]
    logs: LogTails


class HeartbeatProof(_Model):
    path: str
    kind: str = "file"


class HeartbeatBody(BaseModel):
    """The heartbeat document: the same JSON a local worker writes to $PROOFWATCH_HEARTBEAT
    (validated by the same parser; unknown keys are ignored)."""

    seq: int = Field(ge=0, description="Must change with every heartbeat")
    ts: datetime
    progress: dict[str, float] = Field(default_factory=dict, description="Counters; a rise is progress")
    phase: str | None = ""
    message: str | None = ""
    blocker: str | None = None
    progress_at: datetime | None = Field(default=None, description="When a counter last rose or the phase changed")
    proofs: list[str | HeartbeatProof] = Field(default_factory=list)


class HeartbeatReply(_Model):
    """What the intake made of a remote heartbeat."""

    ok: Literal[True] = True
    job: str
    run_id: str
    seq: int
    state: JobState
    progressed: bool
    last_heartbeat_at: datetime | None
    last_progress_at: datetime | None
    stall_deadline: datetime | None


class HeartbeatState(_Model):
    """A live run's current heartbeat (what `proofwatch beat --url` merges with)."""

    job: str
    run_id: str
    state: JobState
    heartbeat: HeartbeatBody | None


class SilenceRequest(_Model):
    target: str = Field(description="A job name or an alert key")
    duration: str = Field(description='How long, e.g. "2h" or "1h30m"',
                          json_schema_extra={"pattern": r"^(\d+(\.\d+)?(ms|d|h|m|s))+$"})
    reason: str = ""


class UnsilenceRequest(_Model):
    target: str


class HostPoint(_Model):
    """One stored host-health sample."""

    ts: datetime
    cpu_pct: float
    mem_pct: float
    temp_c: float | None
    score: int


class HostSamples(_Model):
    """Host samples of the last `minutes`, oldest first (for the dashboard's sparklines)."""

    minutes: int
    samples: list[HostPoint]
