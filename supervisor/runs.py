"""The daemon's in-memory view of jobs and their runs (owned by the daemon's event loop)."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from policies.triggers import DepRun
from status.models import JobState, ProofStatus
from supervisor.adopt import AdoptedProcess
from supervisor.config import JobSettings
from supervisor.logs import STDERR, STDOUT
from supervisor.spawn import Child
from workers.protocol import HEARTBEAT_FILE


MAX_RESTART_TIMES = 1000  # the restart times a job keeps for its restart window
# (plain lists, not deques: an empty deque allocates a 64-slot block, ~0.6 KB per run and job)


def new_run_id(now: datetime) -> str:
    """A sortable, unique run id: 20261125T084455123Z-3f9a1c (UTC, to the millisecond, so a
    restart within the same second still sorts after the run it replaces)."""
    return now.strftime("%Y%m%dT%H%M%S") + f"{now.microsecond // 1000:03d}Z-" + secrets.token_hex(3)


@dataclass(slots=True)
class RunState:
    """One run of a job, from spawn to its final state."""

    job: str
    run_id: str
    kind: str
    run_dir: Path
    started_at: datetime
    state: JobState = JobState.STARTING
    child: Child | AdoptedProcess | None = None
    pid: int | None = None
    pid_created: float | None = None  # the leader's create time (psutil), to re-adopt it safely
    command: str = ""
    adopted: bool = False  # found alive by a restarted daemon: its exit status is unknowable
    ended_unseen: bool = False  # adopted after it had ended, while no daemon watched
    first_beat_at: datetime | None = None
    next_proof_at: datetime | None = None  # prove_every: when the live proofs are next checked
    proving: bool = False  # a live proof check is in flight
    last_beat_at: datetime | None = None
    last_progress_at: datetime | None = None
    hb_seq: int = -1
    hb_stamp: tuple[int, int, int] = (0, 0, 0)
    read_at: datetime | None = None  # when the heartbeat file was last read
    first_seen_at: datetime | None = None  # the first change not read yet
    progress: dict[str, float] = field(default_factory=dict)
    high_water: dict[str, float] = field(default_factory=dict)
    phase: str = ""
    message: str = ""
    blocker: str | None = None
    declared_proofs: list[tuple[str, str]] = field(default_factory=list)  # (path, kind)
    proofs: list[ProofStatus] = field(default_factory=list)
    exited: bool = False
    finishing: bool = False
    exit_code: int | None = None
    signal: str | None = None
    ended_at: datetime | None = None
    error: str | None = None
    stop_reason: str | None = None
    stop_state: JobState | None = None
    restart_after: bool = False
    kill_at: datetime | None = None
    output_bytes: int = 0
    rotated_bytes: int = 0
    output_grew: bool = True  # stdout/stderr changed since their size was last checked
    cpu_samples: list[tuple[datetime, float]] = field(default_factory=list)  # add_cpu_sample bounds it
    heartbeat_errors: set[str] = field(default_factory=set)
    stable_noted: bool = False
    _hb_path: str | None = field(default=None, repr=False)

    def add_cpu_sample(self, ts: datetime, cpu_seconds: float, keep: timedelta) -> None:
        """Record the process tree's CPU seconds at `ts`, keeping the samples of the last `keep`
        and the newest one before them: what "CPU over the stall window" reads, and no more
        (720 samples for each of 200 runs would be ~12 MB after two hours)."""
        samples = self.cpu_samples
        samples.append((ts, cpu_seconds))
        cutoff = ts - keep
        old = 0
        while old + 1 < len(samples) and samples[old + 1][0] <= cutoff:
            old += 1
        del samples[:old]

    @property
    def heartbeat_path(self) -> str:
        """The file the worker replaces with each heartbeat (a str: read many times a second)."""
        if self._hb_path is None:
            self._hb_path = os.path.join(self.run_dir, HEARTBEAT_FILE)
        return self._hb_path

    @property
    def stdout_path(self) -> Path:
        """The child's stdout file."""
        return self.run_dir / STDOUT

    @property
    def stderr_path(self) -> Path:
        """The child's stderr file."""
        return self.run_dir / STDERR

    @property
    def alive(self) -> bool:
        """True until the leader process has exited."""
        return not self.exited


@dataclass(slots=True)
class JobRuntime:
    """A configured job and what the daemon knows about it."""

    name: str
    settings: JobSettings
    state: JobState = JobState.PENDING
    run: RunState | None = None
    last_run: RunState | None = None
    restarts: int = 0
    consecutive: int = 0
    restart_times: list[datetime] = field(default_factory=list)  # see add_restart
    next_start_at: datetime | None = None
    next_start_reason: str = ""
    next_fire_at: datetime | None = None
    boot_pending: bool = False
    held: bool = False
    last_started_at: datetime | None = None
    last_success_at: datetime | None = None
    waiting: str = ""
    error: str | None = None
    prior: DepRun | None = None  # the latest run recorded before this daemon started
    removed: bool = False  # dropped from the config; forgotten once its run ends

    def add_restart(self, at: datetime) -> None:
        """Count a restart at `at`, keeping the newest MAX_RESTART_TIMES for the restart window."""
        self.restarts += 1
        self.restart_times.append(at)
        del self.restart_times[:-MAX_RESTART_TIMES]
