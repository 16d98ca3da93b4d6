"""The only thing a worker needs to talk to proofwatch (stdlib only).

    from workers.sdk import Run
    run = Run.from_env()
    for i, item in enumerate(items, 1):
        work(item)
        run.beat(progress={"items": i}, phase="download")
    run.proof("out/result.json")

Heartbeats are explicit calls from the work loop, never a background thread: a thread would
keep beating while the work is hung, which is the lie proofwatch exists to catch.
"""

from __future__ import annotations

import atexit
import os
import sys
import tempfile
import time
import warnings
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path

from workers.protocol import (
    ENV_DATA_DIR,
    ENV_HEARTBEAT,
    ENV_JOB,
    ENV_RUN_DIR,
    ENV_RUN_ID,
    ENV_SCRATCH,
    Heartbeat,
    HeartbeatError,
    parse_heartbeat,
)

DEFAULT_MIN_INTERVAL = 1.0
DEFAULT_PROGRESS_INTERVAL = 0.1


class Run:
    """A handle on the current run; a no-op (with one warning) outside proofwatch."""

    def __init__(
        self,
        heartbeat_path: Path | None,
        *,
        job: str = "",
        run_id: str = "",
        run_dir: Path | None = None,
        data_dir: Path | None = None,
        min_interval: float = DEFAULT_MIN_INTERVAL,
        progress_interval: float = DEFAULT_PROGRESS_INTERVAL,
        scratch: str | None = None,
    ) -> None:
        self.job = job
        self.run_id = run_id
        self.heartbeat_path = heartbeat_path
        self.run_dir = run_dir or Path.cwd()
        self.data_dir = data_dir or Path.cwd()
        self.min_interval = min_interval
        self.scratch = scratch or os.environ.get(ENV_SCRATCH) or _scratch_for(heartbeat_path)
        self.progress_interval = min(progress_interval, min_interval)
        self._written: dict[str, float] = {}  # counters as last written
        self._progress_at: datetime | None = None
        self._seq = 0
        self._progress: dict[str, float] = {}
        self._phase = ""
        self._message = ""
        self._blocker: str | None = None
        self._proofs: list[tuple[str, str]] = []
        self._last_write = float("-inf")
        self._dirty = False
        if heartbeat_path is not None:
            self._seq = _existing_seq(heartbeat_path)
            atexit.register(self.flush)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **kwargs: float) -> Run:
        """Build from the PROOFWATCH_* environment the supervisor sets."""
        env = os.environ if environ is None else environ
        hb = env.get(ENV_HEARTBEAT)
        if not hb:
            warnings.warn(
                f"{ENV_HEARTBEAT} is not set: not running under proofwatch, "
                "heartbeats and proofs are ignored",
                RuntimeWarning,
                stacklevel=2,
            )
            return cls(None, **kwargs)  # type: ignore[arg-type]
        return cls(
            Path(hb),
            job=env.get(ENV_JOB, ""),
            run_id=env.get(ENV_RUN_ID, ""),
            run_dir=Path(env[ENV_RUN_DIR]) if env.get(ENV_RUN_DIR) else None,
            data_dir=Path(env[ENV_DATA_DIR]) if env.get(ENV_DATA_DIR) else None,
            **kwargs,  # type: ignore[arg-type]
        )

    @property
    def supervised(self) -> bool:
        """True when running under proofwatch."""
        return self.heartbeat_path is not None

    def beat(
        self,
        progress: Mapping[str, float] | None = None,
        *,
        phase: str | None = None,
        message: str | None = None,
        force: bool = False,
    ) -> bool:
        """Report liveness and progress; cheap to call in a tight loop (throttled).

        Counters are merged into what was reported before. A beat that carries progress (a
        counter above what was last written) is written if `progress_interval` (0.1 s) has
        passed, a beat without progress only every `min_interval` (1 s): so progress is never
        held back by more than 0.1 s, and a tight loop costs at most 10 writes a second.
        Returns True when written.
        """
        changed_phase = phase is not None and phase != self._phase
        progressed = False
        if progress:
            for k, v in progress.items():
                value = float(v)
                if value > self._written.get(k, float("-inf")):
                    progressed = True
                self._progress[k] = value
        if phase is not None:
            self._phase = phase
        if message is not None:
            self._message = message
        if progressed or changed_phase or self._progress_at is None:
            self._progress_at = datetime.now(timezone.utc)
        self._dirty = True
        since = time.monotonic() - self._last_write
        if force or changed_phase or since >= self.min_interval or (
            progressed and since >= self.progress_interval
        ):
            return self.flush()
        return False

    def blocked(self, reason: str) -> None:
        """Report that the work cannot go on without help; the operator is alerted."""
        self._blocker = reason
        self._message = reason
        self._dirty = True
        self.flush()

    def unblocked(self) -> None:
        """Clear a blocker reported earlier."""
        self._blocker = None
        self._dirty = True
        self.flush()

    def proof(self, path: str | os.PathLike[str], kind: str = "file") -> None:
        """Declare an extra artifact for proofwatch to verify when the run ends
        (kind: file, text, json, jsonl, png, jpeg, parquet, sqlite)."""
        entry = (os.fspath(path), kind)
        if entry not in self._proofs:
            self._proofs.append(entry)
        self._dirty = True
        self.flush()

    def flush(self) -> bool:
        """Write the pending heartbeat now (also done at interpreter exit)."""
        if self.heartbeat_path is None or not self._dirty:
            return False
        self._seq += 1
        hb = Heartbeat(
            seq=self._seq,
            ts=datetime.now(timezone.utc),
            progress=dict(self._progress),
            phase=self._phase,
            message=self._message,
            blocker=self._blocker,
            proofs=tuple(self._proofs),
            progress_at=self._progress_at,
        )
        write_heartbeat(self.heartbeat_path, hb, scratch=self.scratch)
        self._written = dict(self._progress)
        self._last_write = time.monotonic()
        self._dirty = False
        return True


def _scratch_for(heartbeat: Path | None) -> str | None:
    """proofwatch's scratch dir next to runs/ (<state_dir>/tmp), when it exists."""
    if heartbeat is None:
        return None
    candidate = heartbeat.parent.parent.parent.parent / "tmp"  # runs/<job>/<run>/heartbeat.json
    return str(candidate) if candidate.is_dir() else None


def write_heartbeat(path: Path, hb: Heartbeat, scratch: str | None = None) -> None:
    """Atomically replace the heartbeat file: write a temp file, then rename it over.

    The temp file goes to $PROOFWATCH_SCRATCH when set (a directory the supervisor does not
    watch, on the same filesystem), so each heartbeat is one file event instead of five.
    """
    where = scratch if scratch is not None else os.environ.get(ENV_SCRATCH) or str(path.parent)
    try:
        fd, tmp = tempfile.mkstemp(prefix=".hb-", dir=where)
    except OSError:
        fd, tmp = tempfile.mkstemp(prefix=".hb-", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(hb.to_json())
        try:
            os.replace(tmp, path)
        except OSError as exc:
            if exc.errno != 18:  # EXDEV: scratch on another filesystem after all
                raise
            os.unlink(tmp)
            write_heartbeat(path, hb, scratch=str(path.parent))
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def read_heartbeat(path: Path) -> Heartbeat | None:
    """The current heartbeat, or None when there is none yet or it is unreadable."""
    try:
        return parse_heartbeat(path.read_bytes())
    except (FileNotFoundError, HeartbeatError):
        return None


def _existing_seq(path: Path) -> int:
    hb = read_heartbeat(path)
    return hb.seq if hb else 0


if __name__ == "__main__":  # pragma: no cover - manual smoke check
    Run.from_env().beat({"smoke": 1}, force=True)
    sys.exit(0)
