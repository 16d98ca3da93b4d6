"""The `proofwatch` command line end to end: a real subprocess on temp configs."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from supervisor.starter import STARTER_CONFIG
from tests._procs import CRASH_AT_START, script

PROOFWATCH = [sys.executable, "-m", "supervisor.cli"]

HEADER = """\
[supervisor]
state_dir = "var"
rescan_every = "200ms"
status_min_interval = "50ms"
allow_root = true  # the suite may run as root (README "Security")
"""

# A service that says hello on stdout, starts a child in its process group, and beats forever.
SERVICE = """
import os, subprocess, sys, time
from workers.sdk import Run
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
with open(os.path.join(os.environ["PROOFWATCH_RUN_DIR"], "pids.txt"), "w") as f:
    f.write(f"{os.getpid()} {child.pid}")
print("hello from svc", os.environ["PROOFWATCH_RUN_ID"], flush=True)
run = Run.from_env()
i = 0
while True:
    i += 1
    run.beat({"ticks": i}, message=f"tick {i}", force=True)
    time.sleep(0.05)
"""


def pw(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `proofwatch ARGS` to completion and capture its output."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("PROOFWATCH_")}
    return subprocess.run([*PROOFWATCH, *args], cwd=cwd, env={**base, **(env or {})},
                          capture_output=True, text=True, timeout=60)


def no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr + result.stdout


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# --- check ---------------------------------------------------------------------------------

def test_check_names_file_line_and_key_of_a_bad_duration(tmp_path: Path) -> None:
    text = HEADER + '\n[jobs.x]\ncommand = ["true"]\nstall_after = "20 minutes"\n'
    write(tmp_path / "config.toml", text)
    line = text.splitlines().index('stall_after = "20 minutes"') + 1

    result = pw("check", "--config", "config.toml", cwd=tmp_path)

    assert result.returncode == 2
    # One line even when piped (regression: rich wrapped it at 80 columns).
    assert result.stderr.splitlines() == [
        f'config.toml:{line}: jobs.x.stall_after: "20 minutes" is not a duration (use e.g. "20m")'
    ]
    no_traceback(result)


def test_check_rejects_a_job_whose_executable_does_not_exist(tmp_path: Path) -> None:
    missing = tmp_path / "bin" / "no-such-program"
    write(tmp_path / "config.toml", HEADER + f'\n[jobs.ghost]\ncommand = ["{missing}", "--now"]\n')

    result = pw("check", "--config", "config.toml", cwd=tmp_path)

    assert result.returncode == 2
    errors = [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("error")]
    assert len(errors) == 1
    assert "jobs.ghost.command" in errors[0] and str(missing) in errors[0]
    no_traceback(result)


def test_check_accepts_a_good_config(tmp_path: Path) -> None:
    write(tmp_path / "config.toml", HEADER + f'\n[jobs.ok]\ncommand = ["{sys.executable}", "-c", "pass"]\n')

    result = pw("check", "--config", "config.toml", cwd=tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "config OK" in result.stdout


# --- status --schema, init, beat -----------------------------------------------------------

def test_status_schema_prints_the_json_schema_of_status_json(tmp_path: Path) -> None:
    result = pw("status", "--schema", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    schema = json.loads(result.stdout)
    assert {"jobs", "alerts"} <= set(schema["properties"])


def test_init_writes_a_config_that_check_accepts(tmp_path: Path) -> None:
    path = tmp_path / "starter.toml"

    result = pw("init", str(path), cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert path.read_text() == STARTER_CONFIG
    checked = pw("check", "--config", str(path), cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_init_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    path = write(tmp_path / "config.toml", "# mine\n")

    refused = pw("init", str(path), cwd=tmp_path)

    assert refused.returncode == 2
    assert "--force" in refused.stderr
    assert path.read_text() == "# mine\n"
    no_traceback(refused)
    forced = pw("init", str(path), "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert path.read_text() == STARTER_CONFIG


def test_beat_writes_the_heartbeat_and_merges_counters(tmp_path: Path) -> None:
    hb = tmp_path / "heartbeat.json"
    env = {"PROOFWATCH_HEARTBEAT": str(hb)}

    first = pw("beat", "--progress", "files=12", "--phase", "upload", "-m", "12 of 40", cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stderr
    assert json.loads(hb.read_text())["seq"] == 1
    second = pw("beat", "-p", "bytes=4096", cwd=tmp_path, env=env)

    assert second.returncode == 0, second.stderr
    beat = json.loads(hb.read_text())
    assert beat["seq"] == 2
    assert beat["progress"] == {"files": 12, "bytes": 4096}
    assert (beat["phase"], beat["message"]) == ("upload", "12 of 40")


def test_beat_outside_a_job_exits_2_naming_the_variable(tmp_path: Path) -> None:
    result = pw("beat", "-p", "files=1", cwd=tmp_path)

    assert result.returncode == 2
    assert "PROOFWATCH_HEARTBEAT" in result.stderr
    no_traceback(result)


# --- the daemon, end to end ----------------------------------------------------------------

def wait_for(what: str, predicate: Callable[[], Any], timeout: float = 15.0) -> Any:
    """Poll an external process's files until `predicate()` is truthy (20 ms steps, bounded).

    The daemon is another process, so there is no in-process event to await.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.02)


@dataclass
class RunningDaemon:
    """A `proofwatch run` subprocess on a temp config."""

    dir: Path
    proc: subprocess.Popen[bytes]

    @property
    def state_dir(self) -> Path:
        return self.dir / "var"

    def pw(self, *args: str) -> subprocess.CompletedProcess[str]:
        return pw(*args, "--config", "config.toml", cwd=self.dir)

    def status(self) -> dict[str, Any]:
        try:
            doc: dict[str, Any] = json.loads((self.state_dir / "status.json").read_text())
        except FileNotFoundError:
            return {}
        return doc

    def job(self, name: str) -> dict[str, Any]:
        job: dict[str, Any] = self.status().get("jobs", {}).get(name, {})
        return job

    def wait_state(self, name: str, state: str, *, other_than_run: str | None = None) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            self.assert_alive()
            job = self.job(name)
            if job.get("state") == state and (other_than_run is None or job.get("run_id") != other_than_run):
                return job
            return None

        job: dict[str, Any] = wait_for(f"{name} to be {state}", reached)
        return job

    def assert_alive(self) -> None:
        if self.proc.poll() is not None:
            raise AssertionError(f"the daemon exited with {self.proc.returncode}:\n{self.stderr()}")

    def stderr(self) -> str:
        return (self.dir / "daemon.err").read_text(errors="replace")


def start_daemon(directory: Path) -> RunningDaemon:
    """Write the e2e config, start `proofwatch run` and wait until it serves its socket."""
    directory.mkdir(parents=True, exist_ok=True)
    svc, crashy = script(directory, "svc", SERVICE), script(directory, "crashy", CRASH_AT_START)
    write(directory / "config.toml", HEADER + f"""
[jobs.svc]
kind = "service"
command = ["{sys.executable}", "{svc}"]
stop_grace = "5s"

[jobs.crashy]
kind = "task"
command = ["{sys.executable}", "{crashy}"]
""")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROOFWATCH_")}
    with (directory / "daemon.out").open("wb") as out, (directory / "daemon.err").open("wb") as err:
        proc = subprocess.Popen([*PROOFWATCH, "run", "--config", "config.toml"], cwd=directory, env=env,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=err)
    daemon = RunningDaemon(directory, proc)

    def ready() -> bool:
        daemon.assert_alive()
        return (daemon.state_dir / "status.json").exists() and (daemon.state_dir / "proofwatch.sock").exists()

    try:
        wait_for("status.json and the control socket", ready)
    except BaseException:
        stop_daemon(daemon)
        raise
    return daemon


def stop_daemon(daemon: RunningDaemon) -> int:
    """SIGTERM the daemon (if it still runs) and reap it; return its exit code."""
    if daemon.proc.poll() is None:
        daemon.proc.send_signal(signal.SIGTERM)
        try:
            return daemon.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            daemon.proc.kill()
    return daemon.proc.wait()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningDaemon]:
    """One daemon shared by the tests that leave it as they found it."""
    running = start_daemon(tmp_path_factory.mktemp("cli"))
    try:
        running.wait_state("svc", "RUNNING")
        running.wait_state("crashy", "CRASHED")
        yield running
    finally:
        stop_daemon(running)


def run_pids(run_dir: Path) -> list[int]:
    """The pids the SERVICE script wrote: its own and its child's."""
    path = run_dir / "pids.txt"
    text: str = wait_for(str(path), lambda: path.exists() and path.read_text())
    return [int(pid) for pid in text.split()]


def gone(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


@pytest.mark.slow
def test_status_shows_a_heartbeating_service_as_running(daemon: RunningDaemon) -> None:
    result = daemon.pw("status")

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("proofwatch ") and f"pid {daemon.proc.pid}" in lines[0]
    assert lines[1].split()[:2] == ["JOB", "STATE"]
    svc = next(line for line in lines if line.startswith("svc "))
    assert svc.split()[1] == "RUNNING"
    assert "ticks=" in svc


@pytest.mark.slow
def test_status_json_prints_status_json(daemon: RunningDaemon) -> None:
    result = daemon.pw("status", "--json")

    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["supervisor"]["pid"] == daemon.proc.pid
    assert doc["jobs"]["svc"]["state"] == "RUNNING"
    assert doc["jobs"]["svc"]["progress"]["ticks"] >= 1


@pytest.mark.slow
def test_stop_start_and_restart_change_the_state_in_status_json(daemon: RunningDaemon) -> None:
    first = daemon.job("svc")["run_id"]

    stopped = daemon.pw("stop", "svc")
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout.strip() == f"stopping svc (run {first})"
    assert daemon.wait_state("svc", "STOPPED")["run_id"] == first

    started = daemon.pw("start", "svc")
    assert started.returncode == 0, started.stderr
    assert started.stdout.strip() == "svc started"
    second = daemon.wait_state("svc", "RUNNING", other_than_run=first)["run_id"]

    restarted = daemon.pw("restart", "svc")
    assert restarted.returncode == 0, restarted.stderr
    assert restarted.stdout.strip() == "restarting svc"
    third = daemon.wait_state("svc", "RUNNING", other_than_run=second)["run_id"]
    assert len({first, second, third}) == 3


@pytest.mark.slow
def test_start_of_an_unknown_job_exits_1(daemon: RunningDaemon) -> None:
    result = daemon.pw("start", "nosuchjob")

    assert result.returncode == 1
    assert "unknown job 'nosuchjob'" in result.stderr
    no_traceback(result)


@pytest.mark.slow
def test_logs_shows_the_newest_run_after_restarts_within_one_second(daemon: RunningDaemon) -> None:
    # Regression: run ids sorted only to the second, so `logs` could pick the older of two
    # runs that started within the same second.
    run_id = daemon.job("svc")["run_id"]
    for _ in range(2):
        assert daemon.pw("restart", "svc").returncode == 0
        run_id = daemon.wait_state("svc", "RUNNING", other_than_run=run_id)["run_id"]

    result = daemon.pw("logs", "svc")

    assert result.returncode == 0, result.stderr
    assert f"hello from svc {run_id}" in result.stdout.splitlines()


@pytest.mark.slow
def test_logs_stderr_shows_the_crash_output(daemon: RunningDaemon) -> None:
    result = daemon.pw("logs", "crashy", "--stderr", "-n", "1")

    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1:] == ["fatal: FEED_TOKEN is not set"]


@pytest.mark.slow
def test_history_lists_runs(daemon: RunningDaemon) -> None:
    result = daemon.pw("history")

    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()[1:]]
    crashy = daemon.job("crashy")
    assert ["crashy", crashy["run_id"][-6:], "CRASHED"] in [row[2:5] for row in rows]
    assert "svc" in [row[2] for row in rows]


@pytest.mark.slow
def test_alerts_lists_a_crash_and_ack_resolves_it(daemon: RunningDaemon) -> None:
    listed = daemon.pw("alerts")
    assert listed.returncode == 0, listed.stderr
    assert "CRITICAL crashy:crashed" in listed.stdout
    assert "fatal: FEED_TOKEN is not set" in listed.stdout

    acked = daemon.pw("alerts", "ack", "crashy:crashed")

    assert acked.returncode == 0, acked.stderr
    assert acked.stdout.strip() == "alert crashy:crashed resolved"  # a crash cannot clear by itself
    wait_for("the alert to leave status.json",
             lambda: all(a["key"] != "crashy:crashed" for a in daemon.status()["alerts"]))
    assert "crashy:crashed" not in daemon.pw("alerts").stdout
    again = daemon.pw("alerts", "ack", "crashy:crashed")
    assert again.returncode == 1
    assert "no active alert" in again.stderr


@pytest.mark.slow
def test_control_socket_and_state_dir_are_owner_only(daemon: RunningDaemon) -> None:
    sock = daemon.state_dir / "proofwatch.sock"

    assert stat.S_ISSOCK(sock.stat().st_mode)
    assert stat.S_IMODE(sock.stat().st_mode) == 0o600
    assert stat.S_IMODE(daemon.state_dir.stat().st_mode) == 0o700


@pytest.mark.slow
def test_sigterm_stops_the_jobs_and_exits_143(tmp_path: Path) -> None:
    daemon = start_daemon(tmp_path)
    try:
        svc = daemon.wait_state("svc", "RUNNING")
        pids = run_pids(daemon.state_dir / "runs" / "svc" / svc["run_id"])
        assert pids[0] == svc["pid"]
        daemon.wait_state("crashy", "CRASHED")
    finally:
        code = stop_daemon(daemon)

    assert code == 143, daemon.stderr()
    assert "Traceback" not in daemon.stderr()
    assert all(gone(pid) for pid in pids)
    assert daemon.job("svc")["state"] == "STOPPED"
    assert not (daemon.state_dir / "proofwatch.sock").exists()
    result = daemon.pw("status")
    assert result.returncode == 0, result.stderr
    assert "daemon NOT running" in result.stdout.splitlines()[0]


# --- control over the API on the Unix socket -------------------------------------------------

@pytest.mark.slow
def test_reload_silence_and_unsilence_go_through_the_daemons_api(daemon: RunningDaemon) -> None:
    reloaded = daemon.pw("reload")
    assert reloaded.returncode == 0, reloaded.stderr
    assert reloaded.stdout.strip() == "config reloaded: no job changed"

    muted = daemon.pw("silence", "svc", "2h", "-r", "maintenance")
    assert muted.returncode == 0, muted.stderr
    assert muted.stdout.startswith("notifications for svc muted until ")
    wait_for("the silence in status.json",
             lambda: [s["target"] for s in daemon.status()["notify"]["silences"]] == ["svc"])

    lifted = daemon.pw("unsilence", "svc")
    assert lifted.returncode == 0, lifted.stderr
    assert lifted.stdout.strip() == "notifications for svc resumed"
    again = daemon.pw("unsilence", "svc")
    assert again.returncode == 1 and "no active silence for 'svc'" in again.stderr
    nobody = daemon.pw("silence", "nosuch", "1h")
    assert nobody.returncode == 1 and "'nosuch' is neither a job" in nobody.stderr
    no_traceback(nobody)


def test_control_commands_without_a_daemon_say_it_is_not_running(tmp_path: Path) -> None:
    write(tmp_path / "config.toml", HEADER + '\n[jobs.x]\ncommand = ["true"]\n')

    result = pw("stop", "x", "--config", "config.toml", cwd=tmp_path)

    assert result.returncode == 1
    assert result.stderr.strip() == (f"error: the daemon is not running (no one listens on "
                                     f"{tmp_path / 'var' / 'proofwatch.sock'})")


def test_run_refuses_an_api_address_already_in_use(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        write(tmp_path / "config.toml", HEADER + f'\n[api]\nlisten = "127.0.0.1:{port}"\n'
                                                 '\n[jobs.x]\ncommand = ["true"]\n')

        result = pw("run", "--config", "config.toml", cwd=tmp_path)

    assert result.returncode == 1
    assert f"error: api.listen 127.0.0.1:{port}: cannot listen there (address already in use)" in result.stderr
    no_traceback(result)
    assert not (tmp_path / "var" / "proofwatch.sock").exists()


def test_run_refuses_an_api_token_from_an_unset_variable(tmp_path: Path) -> None:
    write(tmp_path / "config.toml", HEADER + '\n[api]\nlisten = "127.0.0.1:0"\n'
                                             'token = "${PW_TEST_UNSET_TOKEN}"\n\n[jobs.x]\ncommand = ["true"]\n')

    result = pw("run", "--config", "config.toml", cwd=tmp_path)

    assert result.returncode == 1
    assert "api.token: ${PW_TEST_UNSET_TOKEN} is not set in the daemon's environment" in result.stderr
    no_traceback(result)
