"""Run a real `proofwatch run` on a temp config, and read what it recorded.

The daemon is a subprocess in its own temporary directory (config.toml, worker scripts, var/,
data/). Results come from its history database (`var/history.db`, SQLite in WAL mode, read
with the stdlib sqlite3 module) and `var/status.json`, polled at a short interval: polling is
fine in a bench harness, and it measures what any outside reader would see.

Timestamps in the history are the daemon's wall clock in UTC (`datetime.now(timezone.utc)`,
stored without an offset), so they compare directly with `time.time()` in this process.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

POLL_INTERVAL = 0.02  # seconds between two looks at the history while waiting

T = TypeVar("T")


class BenchError(RuntimeError):
    """The daemon under test did not behave as a workload needs (with the daemon's log tail)."""


def proofwatch_command() -> list[str]:
    """The `proofwatch` console script of the interpreter running the bench."""
    exe = Path(sys.executable).with_name("proofwatch")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("proofwatch")
    if found:
        return [found]
    raise BenchError(f"no `proofwatch` command next to {sys.executable} or on PATH "
                     "(install the project: pip install -e .)")


def to_epoch(value: str | None) -> float | None:
    """A history timestamp (naive UTC text, as SQLAlchemy stores it) as seconds since the epoch."""
    if value is None:
        return None
    dt = datetime.fromisoformat(value)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp()


def toml_value(value: object) -> str:
    """A Python value as TOML (the few types the bench configs use)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML for {value!r}")


def wait_for(fn: Callable[[], T], timeout: float, what: str, *,
             check: Callable[[], None] | None = None, interval: float = POLL_INTERVAL) -> T:
    """Poll `fn()` until it returns something truthy; BenchError after `timeout` seconds.
    `check()` runs between polls (e.g. to fail fast when the daemon died)."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if check is not None:
            check()
        if time.monotonic() >= deadline:
            raise BenchError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


@dataclass(frozen=True)
class Event:
    """One row of the daemon's `events` table."""

    id: int
    ts: float  # epoch seconds (daemon wall clock, UTC)
    job: str
    run_id: str | None
    kind: str
    from_state: str | None
    to_state: str | None
    reason: str


@dataclass(frozen=True)
class Run:
    """The columns of a `runs` row the bench uses."""

    run_id: str
    job: str
    state: str
    pid: int | None
    started_at: float
    ended_at: float | None
    last_heartbeat_at: float | None
    last_progress_at: float | None


class HistoryReader:
    """Read-only queries on a daemon's history.db (a fresh snapshot for every query)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None

    def _db(self) -> sqlite3.Connection | None:
        if self._conn is None:
            if not self.path.exists():
                return None
            self._conn = sqlite3.connect(self.path, timeout=5.0, isolation_level=None)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        db = self._db()
        if db is None:
            return []
        try:
            return db.execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):  # the daemon has not created its schema yet
                return []
            raise

    def events(self, *, job: str | None = None, run_id: str | None = None, to_state: str | None = None,
               kind: str | None = None, after_id: int = 0) -> list[Event]:
        """Events in the order they were recorded, filtered by the given columns."""
        sql = "SELECT id, ts, job, run_id, kind, from_state, to_state, reason FROM events WHERE id > ?"
        params: list[Any] = [after_id]
        for column, value in (("job", job), ("run_id", run_id), ("to_state", to_state), ("kind", kind)):
            if value is not None:
                sql += f" AND {column} = ?"
                params.append(value)
        rows = self._query(sql + " ORDER BY id", tuple(params))
        return [Event(r[0], to_epoch(r[1]) or 0.0, *r[2:]) for r in rows]

    def runs(self, job: str | None = None) -> list[Run]:
        """Runs, newest first."""
        sql = ("SELECT run_id, job, state, pid, started_at, ended_at, last_heartbeat_at, last_progress_at "
               "FROM runs")
        params: tuple[Any, ...] = ()
        if job is not None:
            sql += " WHERE job = ?"
            params = (job,)
        rows = self._query(sql + " ORDER BY started_at DESC", params)
        return [Run(r[0], r[1], r[2], r[3], to_epoch(r[4]) or 0.0, to_epoch(r[5]), to_epoch(r[6]),
                    to_epoch(r[7])) for r in rows]

    def run(self, run_id: str) -> Run | None:
        return next((r for r in self.runs() if r.run_id == run_id), None)


class BenchDaemon:
    """A `proofwatch run` subprocess on a config written into a fresh temp directory.

        with BenchDaemon("stall") as d:          # writes config.toml, starts, waits until ready
            ...
        d = BenchDaemon("x"); d.script(...); d.job(...); d.start(); ...; d.stop()
    """

    def __init__(self, name: str, *, supervisor: dict[str, Any] | None = None, keep: bool = False,
                 directory: Path | None = None) -> None:
        self.name = name
        self.dir = directory if directory is not None else Path(tempfile.mkdtemp(prefix=f"pwbench-{name}-"))
        self.keep = keep
        # allow_root: a benchmark sandbox often runs as root (README "Security")
        self.supervisor_settings = {"state_dir": "var", "data_dir": "data", "allow_root": True,
                                    **(supervisor or {})}
        self.tables: list[str] = []
        self.proc: subprocess.Popen[bytes] | None = None
        self.t_launch = 0.0  # time.time() just before the daemon was started
        self.history = HistoryReader(self.state_dir / "history.db")
        self.log_path = self.dir / "daemon.log"

    # ---- setup -----------------------------------------------------------------------------

    @property
    def state_dir(self) -> Path:
        return self.dir / "var"

    @property
    def status_path(self) -> Path:
        return self.state_dir / "status.json"

    @property
    def config_path(self) -> Path:
        return self.dir / "config.toml"

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise BenchError("the daemon is not running")
        return self.proc.pid

    def script(self, name: str, body: str) -> Path:
        """Write a worker script into the temp dir; return its path."""
        path = self.dir / name
        path.write_text(textwrap.dedent(body).lstrip())
        return path

    def job(self, name: str, command: list[str], **settings: object) -> None:
        """Add a [jobs.NAME] table."""
        lines = [f"[jobs.{name}]", f"command = {toml_value(command)}"]
        lines += [f"{key} = {toml_value(value)}" for key, value in settings.items()]
        self.tables.append("\n".join(lines))

    def config_text(self) -> str:
        sup = "\n".join(f"{k} = {toml_value(v)}" for k, v in self.supervisor_settings.items())
        return f"# written by bench ({self.name})\n[supervisor]\n{sup}\n\n" + "\n\n".join(self.tables) + "\n"

    # ---- lifecycle ---------------------------------------------------------------------------

    def start(self, timeout: float = 30.0) -> None:
        """Start `proofwatch run --config config.toml` and wait until it has recorded its start."""
        self.config_path.write_text(self.config_text())
        argv = [*proofwatch_command(), "run", "--config", str(self.config_path)]
        self.t_launch = time.time()
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(argv, cwd=self.dir, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(lambda: self.status_path.exists() and self.history.events(kind="supervisor"),
                 timeout, "the daemon to record its start", check=self.check_alive)

    def check_alive(self) -> None:
        """BenchError (with the log tail) if the daemon has exited."""
        if self.proc is not None and self.proc.poll() is not None:
            raise BenchError(f"the daemon exited with code {self.proc.returncode}:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no daemon log)"

    def stop(self, timeout: float = 30.0) -> int | None:
        """SIGTERM the daemon (it stops its jobs), SIGKILL after `timeout`; return its exit code."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.history.close()
        return proc.returncode

    def cleanup(self) -> None:
        if not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> BenchDaemon:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.stop()
        finally:
            self.cleanup()

    # ---- reading -----------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """The current status.json (replaced atomically by the daemon, so always whole)."""
        return json.loads(self.status_path.read_bytes())

    def wait(self, fn: Callable[[], T], timeout: float, what: str) -> T:
        """`wait_for` that fails fast if the daemon died."""
        return wait_for(fn, timeout, what, check=self.check_alive)
