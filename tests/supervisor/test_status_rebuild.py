"""Crash-safe truth (issue 11): status.json is always a complete document (temp + fsync +
rename + directory fsync, proven by strace and by SIGKILLing a writer at random moments); a
corrupt or hand-edited status.json is kept aside and replaced at daemon start; and
`proofwatch status --rebuild` rewrites it from the history while the daemon is down."""

from __future__ import annotations

import json
import logging
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from status.history import History
from status.models import JobState, StatusDocument
from status.store import dump_status, read_status, temp_files
from supervisor.statusrebuild import check_at_start
from tests.status.test_store import T0, make_doc
from tests import _procs as P
from tests.supervisor.harness import job, reach, running
from tests.supervisor.test_cli import start_daemon, stop_daemon, wait_for

# --- status.json is never torn ----------------------------------------------------------------

def test_write_atomic_is_temp_fsync_rename_then_directory_fsync(tmp_path: Path) -> None:
    strace = shutil.which("strace")
    if strace is None:
        pytest.skip("strace is not installed")
    target, trace = tmp_path / "state" / "status.json", tmp_path / "trace.txt"
    code = ("import sys; from pathlib import Path; from status.store import write_atomic; "
            "write_atomic(Path(sys.argv[1]), b'{\"complete\": true}')")
    subprocess.run([strace, "-f", "-s", "4096", "-o", str(trace), "-e", "trace=openat,write,fsync,rename,renameat,renameat2",
                    sys.executable, "-c", code, str(target)], check=True, cwd=Path(__file__).parents[2])
    calls = [line.split(None, 1)[1] for line in trace.read_text().splitlines()]
    first = next(i for i, c in enumerate(calls) if f'"{target.parent}/.status.json.' in c and "O_CREAT" in c)
    tmp_fd = calls[first].rsplit("= ", 1)[1]
    steps = [c for c in calls[first + 1:] if c.startswith(("write(", "fsync(", "rename", "openat("))]
    assert steps[0].startswith(f"write({tmp_fd}, ") and steps[0].endswith("= 18"), steps  # the temp file
    assert steps[1].startswith(f"fsync({tmp_fd})"), steps  # its data on disk
    assert re.match(rf'rename(at2?)?\(.*"{target.parent}/\.status\.json\.\w+", .*"{target}"', steps[2]), steps
    assert re.match(rf'openat\(AT_FDCWD, "{target.parent}", O_RDONLY.*O_DIRECTORY', steps[3]), steps
    assert steps[4].startswith(f"fsync({steps[3].rsplit('= ', 1)[1]})"), steps  # the rename on disk
    assert json.loads(target.read_text()) == {"complete": True}


# A single-threaded "zygote" that forks one writer per line it reads: each writer replaces
# status.json with a small and a large document alternately, as fast as it can, until the
# test SIGKILLs it at a random moment. Forking keeps each round at a few milliseconds.
ZYGOTE = r"""
import os, sys
from pathlib import Path
from status.store import write_status
from tests.status.test_store import make_doc

path = Path(sys.argv[1])
small = make_doc()
big = small.model_copy(update={"jobs": {f"job{i:04d}": small.jobs["ingestor"] for i in range(400)}})
for line in sys.stdin:
    pid = os.fork()
    if pid == 0:
        while True:
            write_status(path, big)
            write_status(path, small)
    print(pid, flush=True)
    sys.stdin.readline()  # the test killed it
    os.waitpid(pid, 0)
"""


def test_status_json_always_parses_after_sigkill_at_random_moments(tmp_path: Path) -> None:
    path = tmp_path / "status.json"
    path.write_bytes(dump_status(make_doc()))
    zygote = subprocess.Popen([sys.executable, "-c", ZYGOTE, str(path)], cwd=Path(__file__).parents[2],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert zygote.stdin is not None and zygote.stdout is not None
    rng = random.Random(11)
    sizes = set()
    try:
        for _ in range(40):
            zygote.stdin.write("go\n")
            zygote.stdin.flush()
            pid = int(zygote.stdout.readline())
            time.sleep(rng.uniform(0.001, 0.03))  # the fault: a kill at a random moment, not a wait
            os.kill(pid, signal.SIGKILL)
            zygote.stdin.write("killed\n")
            zygote.stdin.flush()
            raw = path.read_bytes()
            sizes.add(len(raw))
            StatusDocument.model_validate(json.loads(raw))  # complete and valid, every time
    finally:
        zygote.stdin.close()
        zygote.wait(timeout=10)
        zygote.stdout.close()
    assert len(sizes) == 2, "both documents were seen: the writer was killed at different points"
    # a writer killed mid-write can leave its temp file, never a torn status.json; the daemon
    # removes such leftovers at start
    found = check_at_start(path, T0)
    assert temp_files(path) == []
    assert all(line.startswith("removed ") for line in found)
    read_status(path)


# --- a corrupt status.json at daemon start ------------------------------------------------------

def _wrong_type(raw: bytes) -> bytes:
    doc = json.loads(raw)
    doc["jobs"]["ingestor"]["restarts"] = "three"  # hand-edited
    return json.dumps(doc, indent=2).encode()


@pytest.mark.parametrize(
    ("mangle", "problem"),
    [
        (lambda raw: raw[: len(raw) // 2], r"not valid JSON \(.*: line \d+ column \d+ \(char \d+\)\)"),
        (_wrong_type, r"jobs\.ingestor\.restarts: Input should be a valid integer"),
        (lambda raw: b"", r"not valid JSON \(Expecting value: line 1 column 1 \(char 0\)\)"),
        (lambda raw: raw.replace(b'"vm"', b'"v\xffm"'), r"not valid JSON \(not UTF-8: byte \d+\)"),
    ],
    ids=["truncated", "hand-edited-wrong-type", "empty", "not-utf8"],
)
async def test_a_corrupt_status_json_is_kept_aside_and_replaced_at_start(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, mangle, problem: str) -> None:
    state = tmp_path / "var"
    state.mkdir()
    bad = mangle(dump_status(make_doc()))
    (state / "status.json").write_bytes(bad)
    (state / ".status.json.k1ll3d").write_bytes(b'{"half": ')  # a killed writer's temp file
    caplog.set_level(logging.WARNING, "supervisor.daemon")
    async with running(tmp_path) as d:
        doc = read_status(d.config.status_file)  # the daemon's first write replaced it
        assert doc.supervisor.pid == os.getpid()
        [kept] = state.glob("status.json.corrupt-*")
        assert re.fullmatch(r"status\.json\.corrupt-\d{8}T\d{6}Z", kept.name)
        assert kept.read_bytes() == bad  # nothing lost
        assert temp_files(d.config.status_file) == []
        assert await d.recorder.flush()
        events = [e.reason for e in d.history.events(job="", limit=50) if e.kind == "supervisor"]
    [corrupt] = [e for e in events if e.startswith("corrupt status.json at start")]
    assert re.search(problem, corrupt), corrupt
    assert f"kept as {kept.name}" in corrupt
    assert any(e.startswith("removed 1 temp file(s) of status.json") for e in events)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(re.search(problem, w) for w in warnings), warnings


async def test_a_valid_status_json_is_not_touched_at_start(tmp_path: Path) -> None:
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "status.json").write_bytes(dump_status(make_doc()))
    async with running(tmp_path) as d:
        assert await d.recorder.flush()
        events = [e.reason for e in d.history.events(job="", limit=50)]
    assert not list((tmp_path / "var").glob("status.json.corrupt-*"))
    assert not any("corrupt" in e for e in events)


# --- proofwatch status --rebuild ------------------------------------------------------------------

def _pw(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROOFWATCH_")}
    return subprocess.run([sys.executable, "-m", "supervisor.cli", *args, "--config", "config.toml"],
                          cwd=directory, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.slow
def test_status_rebuild_refuses_while_the_daemon_runs_and_rebuilds_from_the_history_after(tmp_path: Path) -> None:
    daemon = start_daemon(tmp_path)
    svc_pid = None
    try:
        svc = daemon.wait_state("svc", "RUNNING")
        svc_pid = svc["pid"]
        daemon.wait_state("crashy", "CRASHED")
        wait_for("the history to hold svc RUNNING", lambda: _history_state(tmp_path, "svc") == "RUNNING")
        before = (daemon.state_dir / "status.json").read_bytes()
        result = _pw(tmp_path, "status", "--rebuild")
        assert result.returncode == 0, result.stderr
        assert f"the daemon (pid {daemon.proc.pid}) is running and owns" in result.stdout
        daemon.proc.send_signal(signal.SIGKILL)  # dies without a last word; svc lives on
        daemon.proc.wait()
        status_file = daemon.state_dir / "status.json"
        status_file.write_bytes(before[: len(before) // 3])  # and status.json is torn by hand

        result = _pw(tmp_path, "status", "--rebuild")
        assert result.returncode == 0, result.stderr
        assert "Traceback" not in result.stderr
        assert f"rebuilt {status_file} from {daemon.state_dir / 'history.db'}: 2 jobs" in result.stdout
        assert "shown as last recorded: svc (RUNNING)" in result.stdout
        assert "not valid JSON" in result.stderr and "kept as" in result.stderr
        [kept] = daemon.state_dir.glob("status.json.corrupt-*")
        assert kept.read_bytes() == before[: len(before) // 3]

        doc = read_status(status_file)
        assert doc.jobs["svc"].state == JobState.RUNNING and doc.jobs["svc"].run_id == svc["run_id"]
        assert "the supervisor is not running: RUNNING is the last recorded state" in (doc.jobs["svc"].error or "")
        assert doc.jobs["crashy"].state == JobState.CRASHED
        assert doc.jobs["crashy"].error == _history_error(tmp_path, "crashy")
        assert [r.job for r in doc.recent] == ["crashy"]
        assert doc.supervisor.pid == daemon.proc.pid
        keys = [a.key for a in doc.alerts]
        assert keys[0] == "supervisor:down" and "crashy:crashed" in keys
        assert svc["run_id"] in doc.alerts[0].detail
        # the shape is the daemon's: the same keys at every level of a job
        assert json.loads(before)["jobs"]["svc"].keys() == json.loads(status_file.read_bytes())["jobs"]["svc"].keys()

        shown = _pw(tmp_path, "status")
        assert shown.returncode == 0 and "daemon NOT running" in shown.stdout
    finally:
        stop_daemon(daemon)
        if svc_pid:
            try:
                os.killpg(svc_pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def test_status_rebuild_without_a_history_says_so(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text('[supervisor]\nstate_dir = "var"\n[jobs.x]\ncommand = "true"\n')
    result = _pw(tmp_path, "status", "--rebuild")
    assert result.returncode == 1
    assert "no history to rebuild status.json from (has the daemon run?)" in result.stderr
    assert "Traceback" not in result.stderr


def _history_state(directory: Path, job_name: str) -> str | None:
    db = directory / "var" / "history.db"
    if not db.exists():
        return None
    h = History(db, create=False)
    try:
        rows = h.runs(job=job_name, limit=1)
    finally:
        h.close()
    return rows[0].state if rows else None


def _history_error(directory: Path, job_name: str) -> str | None:
    h = History(directory / "var" / "history.db", create=False)
    try:
        return h.runs(job=job_name, limit=1)[0].error
    finally:
        h.close()


@pytest.mark.anyio
async def test_a_rebuilt_status_json_is_owner_only_like_the_daemons(tmp_path):
    async with running(tmp_path, job(tmp_path, "t", P.EXIT_OK)) as d:
        await reach(d, "t", JobState.SUCCEEDED)
    done = subprocess.run([sys.executable, "-m", "supervisor.cli", "status", "--rebuild", "--config",
                           str(tmp_path / "config.toml")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert d.config.status_file.stat().st_mode & 0o777 == 0o600
