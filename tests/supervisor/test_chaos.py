"""kill -9 the daemon 50 times at random moments while jobs beat, crash, stall and status.json
is written. After every kill: status.json parses and validates, and no job has two live
processes. At the end: every process ever seen has exactly one run in the history (none lost,
none twice), no run is left open, and every alert the history holds was delivered."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from status.history import History
from status.models import StatusDocument
from supervisor.config import load_config
from tests import _procs as P
from tests._procs import script
from tests.supervisor.harness import HEADER
from tests.supervisor.test_cli import PROOFWATCH, wait_for

KILLS = int(os.environ.get("PROOFWATCH_CHAOS_KILLS", "50"))
SEED = int(os.environ.get("PROOFWATCH_CHAOS_SEED", "11"))

# Beats with progress for a random 0.2-1 s, then exits 1: a flapping service.
FLAPS = """
import random, sys, time
from workers.sdk import Run
run = Run.from_env()
end = time.monotonic() + random.uniform(0.2, 1.0)
i = 0
while time.monotonic() < end:
    i += 1
    run.beat({"i": i}, force=True)
    time.sleep(0.05)
sys.exit(1)
"""

JOBS = {"steady0": P.BEATS_FOREVER, "steady1": P.BEATS_FOREVER, "steady2": P.BEATS_FOREVER,
        "flappy0": FLAPS, "flappy1": FLAPS, "stuck": P.BEATS_NO_PROGRESS}


def config(tmp_path: Path) -> Path:
    tables = []
    for name, body in JOBS.items():
        path = script(tmp_path, name, body)
        tables.append(f'[jobs.{name}]\nkind = "service"\ncommand = ["{sys.executable}", "{path}"]\n'
                      'stop_grace = "2s"\nbackoff_initial = "200ms"\nbackoff_max = "1s"\n'
                      'max_restarts = 10000\nstall_after = "1s"\n')
    cfg = tmp_path / "config.toml"
    cfg.write_text(HEADER + '\n[alerts]\ngroup_wait = "0s"\n[[alerts.sinks]]\nkind = "file"\n'
                   'path = "notified.jsonl"\n' + "".join(tables))
    return cfg


def job_processes(tmp_path: Path) -> dict[str, list[tuple[int, float, str]]]:
    """Live (pid, create time, run id) of each job's worker, from the process table."""
    scripts = {str(tmp_path / f"{name}.py"): name for name in JOBS}
    out: dict[str, list[tuple[int, float, str]]] = {name: [] for name in JOBS}
    for p in psutil.process_iter(["cmdline", "status", "create_time"]):
        cmd = p.info["cmdline"] or []
        if len(cmd) >= 2 and cmd[1] in scripts and p.info["status"] != psutil.STATUS_ZOMBIE:
            try:
                run_id = p.environ()["PROOFWATCH_RUN_ID"]
            except (psutil.Error, KeyError):
                continue  # gone meanwhile
            out[scripts[cmd[1]]].append((p.pid, p.info["create_time"], run_id))
    return out


def pidfiles_of(runs_dir: Path, pid: int) -> list[str]:
    """Run dirs whose pid file names `pid` (for a failure's message)."""
    return [f"{p.parent}: {p.read_text().strip()}" for p in runs_dir.glob("*/*/pid")
            if p.read_text().split()[0] == str(pid)]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_fifty_kill_9s_lose_no_run_duplicate_none_and_deliver_every_alert(tmp_path):
    cfg = config(tmp_path)
    conf = load_config(cfg)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROOFWATCH_")}
    rng = random.Random(SEED)
    seen: set[tuple[int, float, str]] = set()

    def start() -> subprocess.Popen[bytes]:
        with open(tmp_path / "daemon.log", "ab") as log:
            return subprocess.Popen([*PROOFWATCH, "run", "--config", str(cfg)], cwd=tmp_path, env=env,
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)

    def status() -> dict | None:
        try:
            return json.loads(conf.status_file.read_text())
        except (OSError, ValueError):
            return None

    parsed = 0
    for _ in range(KILLS):
        daemon = start()
        time.sleep(rng.uniform(0.1, 1.2))  # chaos: a random moment, not a synchronisation
        daemon.send_signal(signal.SIGKILL)
        daemon.wait()
        if parsed or conf.status_file.exists():  # once written, it is always there, whole and valid
            StatusDocument.model_validate_json(conf.status_file.read_bytes())
            parsed += 1
        procs = job_processes(tmp_path)
        assert all(len(found) <= 1 for found in procs.values()), f"a job runs twice: {procs}"
        seen.update(p for found in procs.values() for p in found)
    assert parsed >= KILLS // 2

    final = start()
    try:
        def settled() -> bool:
            doc = status()
            if doc is None or doc["supervisor"]["pid"] != final.pid:
                return False
            jobs = doc["jobs"]
            return (all(jobs[n]["state"] == "RUNNING" for n in ("steady0", "steady1", "steady2"))
                    and jobs["stuck"]["state"] == "STALLED" and doc["notify"]["outbox_depth"] == 0)
        wait_for("the last daemon to settle with an empty outbox", settled, timeout=60)
        procs = job_processes(tmp_path)
        assert all(len(found) <= 1 for found in procs.values()), f"a job runs twice: {procs}"
        seen.update(p for found in procs.values() for p in found)
    finally:
        final.send_signal(signal.SIGTERM)
        final.wait(timeout=60)

    history = History(conf.history_db, create=False)
    try:
        runs = history.runs(limit=100_000)
        alerts = history.alerts(limit=100_000)
    finally:
        history.close()
    assert not [r.run_id for r in runs if r.ended_at is None], "runs left open after a clean stop"
    by_id = {r.run_id: r for r in runs}
    for pid, created, run_id in seen:  # every process seen is one run: none lost, none twice
        row = by_id.get(run_id)
        assert row is not None, f"run {run_id} (pid {pid}) is not in the history; pid files: {pidfiles_of(conf.runs_dir, pid)}"
        if row.pid is not None:  # unknown only for a run that died before its pid file
            assert row.pid == pid and row.pid_created is not None and abs(row.pid_created - created) < 0.5, row
        assert len([r for r in runs if r.pid == pid and r.pid_created == row.pid_created]) <= 1
    delivered = set()
    for line in (tmp_path / "notified.jsonl").read_text().splitlines():
        delivered.update(item["key"] for item in json.loads(line)["alerts"])
    missing = {a.key for a in alerts} - delivered
    assert not missing, f"alerts raised but never delivered: {missing}"
    assert "stuck:stalled" in delivered and any(key.startswith("flappy0:") for key in delivered), delivered
