"""The three supervisors under comparison, behind one small interface.

Each target supervises N jobs named j0000.. that all run the same child (`_procs.CHILD_SH`),
started the way its users start it:

- proofwatch: `proofwatch run --config <tmp>/config.toml` (kind = "service", one job per child);
- supervisord 4.3.0 from PyPI, in its own venv (bench/.venv-supervisord): `supervisord -n -c
  <tmp>/supervisord.conf`, one [program:x] per child, autorestart = true, startsecs = 0 (a child
  counts as started at once, so a restart is never delayed by a start check);
- Monit from Debian: `monit -I -c <tmp>/monitrc` (foreground, its own id/state/pid/log files),
  `set daemon 1` (its shortest cycle), one `check process x with pidfile` per child whose start
  program launches the child in the background (Monit waits for a start program to exit).

What each noticed, and when, is read from its own records: proofwatch's history.db events,
supervisord's log (millisecond timestamps), Monit's log (second timestamps: the time the bench
saw the line appear, polled every 2 ms, is used instead).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from bench import _procs
from bench._daemon import BenchDaemon, BenchError, wait_for

BENCH_DIR = Path(__file__).resolve().parent
SUPERVISORD_VENV = BENCH_DIR / ".venv-supervisord"
INSTALL_HINT = "run scripts/install-bench-deps.sh (make bench does) to install the peers"


def supervisord_exe() -> Path:
    exe = Path(os.environ.get("PWBENCH_SUPERVISORD", SUPERVISORD_VENV / "bin" / "supervisord"))
    if not exe.exists():
        raise BenchError(f"no supervisord at {exe}: {INSTALL_HINT}")
    return exe


def monit_exe() -> Path:
    found = os.environ.get("PWBENCH_MONIT") or shutil.which("monit") or "/usr/bin/monit"
    if not Path(found).exists():
        raise BenchError(f"no monit on PATH: {INSTALL_HINT}")
    return Path(found)


def peer_versions() -> dict[str, str]:
    out: dict[str, str] = {}
    try:
        out["supervisord"] = subprocess.run([str(supervisord_exe()), "--version"], capture_output=True,
                                            text=True, timeout=20).stdout.strip()
    except (BenchError, OSError, subprocess.TimeoutExpired):
        out["supervisord"] = "?"
    try:
        first = subprocess.run([str(monit_exe()), "-V"], capture_output=True, text=True,
                               timeout=20).stdout.splitlines()
        out["monit"] = first[0].replace("This is Monit version ", "") if first else "?"
    except (BenchError, OSError, subprocess.TimeoutExpired):
        out["monit"] = "?"
    return out


class Target:
    """One supervisor instance with N jobs in its own temp directory."""

    name = "?"
    # the crash workload pauses a random 0..kill_phase s before each kill, so that kills land at a
    # random phase of the supervisor's own period (supervisord's 1-s tick, Monit's 1-s cycle)
    kill_phase = 1.0

    def __init__(self, token: str, names: list[str], *, keep: bool = False) -> None:
        self.token = token
        self.names = names
        self.keep = keep
        self.dir = Path(tempfile.mkdtemp(prefix=f"pwbench-{self.name}-"))
        self.rec = self.dir / "rec"
        self.rec.mkdir()
        self.child = self.dir / "child.sh"
        self.child.write_text(_procs.CHILD_SH)
        self.child.chmod(0o755)
        self.proc: subprocess.Popen[bytes] | None = None
        self.t_launch = 0.0
        self.notes: list[str] = []

    def tag(self, job: str) -> str:
        return f"pwb-{self.token}-{self.name}-{job}"

    def argv(self, job: str) -> list[str]:
        return ["/bin/bash", str(self.child), str(self.rec), job, self.tag(job)]

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise BenchError(f"{self.name} is not running")
        return self.proc.pid

    def start(self) -> None:
        raise NotImplementedError

    def check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise BenchError(f"{self.name} exited with code {self.proc.returncode}:\n{self.log_tail()}")

    def log_tail(self) -> str:
        return ""

    def records(self) -> dict[str, _procs.Record]:
        return _procs.read_records(self.rec, self.names)

    def wait_all_started(self, timeout: float) -> dict[str, _procs.Record]:
        """Wait until every child has written its record; return the records."""
        got: dict[str, _procs.Record] = {}

        def done() -> bool:
            for n in self.names:
                if n not in got:
                    rec = _procs.read_record(self.rec, n)
                    if rec is not None:
                        got[n] = rec
            return len(got) == len(self.names)

        wait_for(done, timeout, f"{len(self.names)} children of {self.name} to start", check=self.check_alive,
                 interval=0.01)
        return got

    def alive_children(self) -> int:
        return _procs.count_tagged(f"pwb-{self.token}-{self.name}-")

    # crash workload: `mark` before the kill, then `noticed`/`spawned` (epoch or None) after it.
    # True when `noticed` is the moment the bench saw it (Monit logs whole seconds), so it must be
    # polled while the replacement is awaited; otherwise it is the supervisor's own timestamp,
    # read once the replacement runs
    noticed_when_seen = False

    def mark(self) -> Any:
        raise NotImplementedError

    def noticed(self, job: str, mark: Any, old_pid: int) -> float | None:
        raise NotImplementedError

    def spawned(self, job: str, mark: Any) -> float | None:
        return None

    def poll(self) -> None:
        """Called every few ms while waiting (log tails)."""

    def stop(self) -> None:
        raise NotImplementedError

    def cleanup(self) -> None:
        _procs.sweep(f"pwb-{self.token}-{self.name}-")
        time.sleep(0.05)
        _procs.reap_orphans()
        if not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)


# ---- proofwatch --------------------------------------------------------------------------

class Proofwatch(Target):
    name = "proofwatch"
    kill_phase = 0.25  # event-driven: no sub-second period to sample; a short random pause suffices
    STALL_AFTER = "5s"

    def __init__(self, token: str, names: list[str], *, keep: bool = False) -> None:
        super().__init__(token, names, keep=keep)
        self.daemon = BenchDaemon("cmp", keep=True, directory=self.dir)
        for job in names:
            # never heartbeating on its own: STARTING (quiet, startup_grace 1 h) until the beater
            # writes its heartbeats; stall_after 5 s for the hang workload
            self.daemon.job(job, self.argv(job), kind="service", startup_grace="1h",
                            stall_after=self.STALL_AFTER, on_stall="alert", max_restarts=1_000_000)

    def start(self) -> None:
        self.daemon.start(timeout=120)
        self.t_launch = self.daemon.t_launch
        self.proc = self.daemon.proc

    def log_tail(self) -> str:
        return self.daemon.log_tail()

    def ready_at(self) -> float | None:
        ev = self.daemon.history.events(kind="supervisor")
        return ev[0].ts if ev else None

    def all_starting_at(self) -> float | None:
        first: dict[str, float] = {}
        for e in self.daemon.history.events(to_state="STARTING"):
            first.setdefault(e.job, e.ts)
        return max(first.values()) if len(first) >= len(self.names) else None

    def mark(self) -> int:
        return max((e.id for e in self.daemon.history.events()), default=0)

    def _events(self, job: str, mark: int) -> list[Any]:
        return self.daemon.history.events(job=job, after_id=mark)

    def noticed(self, job: str, mark: int, old_pid: int) -> float | None:
        ev = [e for e in self._events(job, mark) if e.to_state in ("FAILED", "CRASHED")]
        return ev[0].ts if ev else None

    def spawned(self, job: str, mark: int) -> float | None:
        ev = [e for e in self._events(job, mark) if e.to_state == "STARTING"]
        return ev[0].ts if ev else None

    def stop(self, timeout: float = 60) -> None:
        if self.proc is None:
            return
        try:
            self.daemon.stop(timeout=timeout)
        finally:
            self.proc = None

    def cleanup(self) -> None:
        if self.daemon.proc is not None and self.daemon.proc.poll() is None:
            os.killpg(self.daemon.proc.pid, signal.SIGKILL)
            self.daemon.proc.wait()
        self.daemon.history.close()
        super().cleanup()


# ---- supervisord -------------------------------------------------------------------------

_SD_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) \w+ (.*)$")


def _sd_ts(line: str) -> tuple[float, str] | None:
    m = _SD_LINE.match(line)
    if not m:
        return None
    # supervisord logs local time with millisecond resolution
    return datetime.strptime(m[1], "%Y-%m-%d %H:%M:%S").timestamp() + int(m[2]) / 1000, m[3]


class Supervisord(Target):
    name = "supervisord"

    def config_text(self) -> str:
        d = self.dir
        minfds = max(1024, 4 * len(self.names) + 256)
        out = [
            "[unix_http_server]", f"file={d}/supervisor.sock", "",
            "[supervisord]", f"logfile={d}/supervisord.log", f"pidfile={d}/supervisord.pid",
            f"childlogdir={d}/childlogs", "nodaemon=true", f"minfds={minfds}",
            f"minprocs={max(200, 2 * len(self.names) + 100)}", "loglevel=info", "",
            "[rpcinterface:supervisor]",
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface", "",
            "[supervisorctl]", f"serverurl=unix://{d}/supervisor.sock", "",
        ]
        for job in self.names:
            out += [f"[program:{job}]", "command=" + " ".join(self.argv(job)), "autorestart=true",
                    "startsecs=0", "startretries=1000", "redirect_stderr=true", "stopwaitsecs=5", ""]
        return "\n".join(out)

    @property
    def log_path(self) -> Path:
        return self.dir / "supervisord.log"

    def start(self) -> None:
        (self.dir / "childlogs").mkdir()
        conf = self.dir / "supervisord.conf"
        conf.write_text(self.config_text())
        self.t_launch = time.time()
        with open(self.dir / "stdout.log", "wb") as out:
            self.proc = subprocess.Popen([str(supervisord_exe()), "-n", "-c", str(conf)], cwd=self.dir,
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        self.tail: _procs.LogTail | None = None

    def log_tail(self) -> str:
        try:
            text = self.log_path.read_text(errors="replace") + (self.dir / "stdout.log").read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-20:])

    def mark(self) -> int:
        if self.tail is None:
            self.tail = _procs.LogTail(self.log_path)
        self.tail.poll()
        return len(self.tail.lines)

    def poll(self) -> None:
        if self.tail is not None:
            self.tail.poll()

    def _find(self, mark: int, pattern: str) -> float | None:
        assert self.tail is not None
        self.tail.poll()
        for seen, line in self.tail.lines[mark:]:
            parsed = _sd_ts(line)
            if parsed and parsed[1].startswith(pattern):
                return parsed[0]
        return None

    def noticed(self, job: str, mark: int, old_pid: int) -> float | None:
        return self._find(mark, f"exited: {job} ")

    def spawned(self, job: str, mark: int) -> float | None:
        return self._find(mark, f"spawned: '{job}' ")

    def stop(self) -> None:
        # supervisord's orderly stop takes one program group per ~1 s tick (16 s for 20
        # programs here), so the bench stops it hard and kills the children itself
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.proc = None
        _procs.sweep(f"pwb-{self.token}-{self.name}-")


# ---- Monit -------------------------------------------------------------------------------

class Monit(Target):
    name = "monit"
    noticed_when_seen = True  # its log has whole seconds: the bench dates the line as it sees it
    CYCLE = 1  # seconds: `set daemon 1`, the shortest Monit accepts
    STALL_AFTER = 5  # seconds: the hang workload's file-timestamp test

    def __init__(self, token: str, names: list[str], *, keep: bool = False,
                 hang_files: dict[str, Path] | None = None) -> None:
        super().__init__(token, names, keep=keep)
        self.hang_files = hang_files or {}
        self.tail: _procs.LogTail | None = None

    @property
    def log_path(self) -> Path:
        return self.dir / "monit.log"

    def config_text(self) -> str:
        d = self.dir
        out = [f"set daemon {self.CYCLE}", f"set log {d}/monit.log", f"set idfile {d}/monit.id",
               f"set statefile {d}/monit.state", f"set pidfile {d}/monit.pid", ""]
        for job in self.names:
            line = " ".join(self.argv(job)) + " </dev/null >/dev/null 2>&1 &"
            out += [f"check process {job} with pidfile {self.rec}/{job}.pid",
                    f"    start program = \"/bin/bash -c '{line}'\"", ""]
        for name, path in self.hang_files.items():
            out += [f"check file {name} with path {path}",
                    f"    if timestamp > {self.STALL_AFTER} seconds then alert", ""]
        return "\n".join(out)

    def prestart_children(self) -> None:
        """Start the children the way Monit's start program would, before Monit runs (Monit
        then finds them running and adopts them). Used where Monit's own serial start would
        not fit the time budget."""
        script = self.dir / "prestart.sh"
        script.write_text("\n".join(" ".join(self.argv(job)) + " </dev/null >/dev/null 2>&1 &"
                                    for job in self.names) + "\n")
        subprocess.run(["/bin/bash", str(script)], check=True, start_new_session=True)

    def start(self) -> None:
        rc = self.dir / "monitrc"
        rc.write_text(self.config_text())
        rc.chmod(0o700)  # Monit refuses a control file readable by others
        self.t_launch = time.time()
        with open(self.dir / "stdout.log", "wb") as out:
            self.proc = subprocess.Popen([str(monit_exe()), "-I", "-c", str(rc)], cwd=self.dir,
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        self.tail = _procs.LogTail(self.log_path, from_end=False)

    def log_tail(self) -> str:
        try:
            text = self.log_path.read_text(errors="replace") + (self.dir / "stdout.log").read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-20:])

    def mark(self) -> int:
        assert self.tail is not None
        self.tail.poll()
        return len(self.tail.lines)

    def poll(self) -> None:
        if self.tail is not None:
            self.tail.poll()

    def _seen(self, mark: int, needle: str) -> float | None:
        assert self.tail is not None
        self.tail.poll()
        for seen, line in self.tail.lines[mark:]:
            if needle in line:
                return seen
        return None

    def noticed(self, job: str, mark: int, old_pid: int) -> float | None:
        # "'j0007' process is not running" (or "... is a zombie" when nobody reaped it)
        t1 = self._seen(mark, f"'{job}' process is not running")
        t2 = self._seen(mark, f"'{job}' process with pid {old_pid} is a zombie")
        return min((t for t in (t1, t2) if t is not None), default=None)

    def spawned(self, job: str, mark: int) -> float | None:
        return self._seen(mark, f"'{job}' start:")

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # Monit exits without stopping its services
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None
        _procs.sweep(f"pwb-{self.token}-{self.name}-")
        time.sleep(0.05)
        _procs.reap_orphans()


def python() -> str:
    return sys.executable
