"""Soak: 200 jobs crashing, stalling, exiting and succeeding at random under one daemon. Each
run writes down what it did (truth.jsonl in its run dir, before doing it); the history's event
log must show every exit and every stall exactly once, and nothing else: no missed crash, no
false or double stall, no run missing.

`make test` runs it for PROOFWATCH_SOAK_SECONDS (default 60); `make soak` runs 10 minutes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from status.history import History
from supervisor.config import load_config
from tests.supervisor.harness import HEADER
from tests.supervisor.test_cli import PROOFWATCH, wait_for

SECONDS = float(os.environ.get("PROOFWATCH_SOAK_SECONDS", "60"))
SERVICES, TASKS = 180, 20
STALL_AFTER, PAUSE, BEAT = 2.0, 3.5, 0.25

# stdlib only (like any job may be): heartbeats written by hand, per the documented protocol
WORKER = r"""
import json, os, random, sys, time
from datetime import datetime, timezone
env = os.environ
rng = random.Random(env["PROOFWATCH_RUN_ID"])
pause, beat_every, stall_after = float(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
truth = open(os.path.join(env["PROOFWATCH_RUN_DIR"], "truth.jsonl"), "a", buffering=1)
tmp = os.path.join(env.get("PROOFWATCH_SCRATCH") or env["PROOFWATCH_RUN_DIR"], f"soak-{os.getpid()}.tmp")
seq = n = 0
progress_at = datetime.now(timezone.utc).isoformat()
last_beat = None  # time.monotonic() of the previous beat

def beat(progress):
    global seq, n, progress_at, last_beat
    seq += 1
    now = datetime.now(timezone.utc).isoformat()
    mono = time.monotonic()
    if progress:
        n, progress_at = n + 1, now
    with open(tmp, "w") as f:
        json.dump({"seq": seq, "ts": now, "progress": {"n": n}, "progress_at": progress_at}, f)
    os.replace(tmp, env["PROOFWATCH_HEARTBEAT"])
    landed = time.monotonic()
    if progress and last_beat is not None and landed - last_beat >= stall_after * 0.9:
        # no beat landed for ~stall_after: starved of CPU (200 jobs starting on 2 cores), or
        # its write stuck in disk I/O (the daemon's alert then says "disk-sleep"): a real stall
        truth.write(json.dumps({"ev": "starved", "gap": round(landed - last_beat, 2)}) + "\n")
    last_beat = mono

def work(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        beat(True)
        time.sleep(beat_every)

beat(True)
for _ in range(rng.choice([0, 0, 0, 1, 1, 2])):
    work(rng.uniform(1, 8))
    truth.write('{"ev": "stall_begin"}\n')
    end = time.monotonic() + pause
    while time.monotonic() < end:  # alive and beating, but no progress
        beat(False)
        time.sleep(beat_every)
    truth.write('{"ev": "stall_end"}\n')
work(rng.uniform(2, 25))
code = rng.choice([0, 0, 3])
truth.write(json.dumps({"ev": "exit", "code": code}) + "\n")
sys.exit(code)
"""

FINAL = {"SUCCEEDED", "FAILED", "CRASHED", "STOPPED"}


def config(tmp_path: Path) -> Path:
    worker = tmp_path / "worker.py"
    worker.write_text(WORKER)
    command = f'command = ["{sys.executable}", "{worker}", "{PAUSE}", "{BEAT}", "{STALL_AFTER}"]\n'
    common = (f'stall_after = "{STALL_AFTER}s"\nstop_grace = "3s"\nbackoff_initial = "500ms"\n'
              'backoff_max = "2s"\nmax_restarts = 1000000\nstable_after = "1s"\n')
    tables = [f'[jobs.s{i:03d}]\nkind = "service"\n{command}{common}' for i in range(SERVICES)]
    tables += [f'[jobs.t{i:02d}]\nkind = "task"\nschedule = "* * * * *"\n{command}{common}'
               for i in range(TASKS)]
    cfg = tmp_path / "config.toml"
    cfg.write_text(HEADER.replace('rescan_every = "200ms"', 'rescan_every = "2s"') + "".join(tables))
    return cfg


def truths(runs_dir: Path) -> dict[str, list[dict]]:
    out = {}
    for path in runs_dir.glob("*/*/truth.jsonl"):
        out[path.parent.name] = [json.loads(line) for line in path.read_text().splitlines() if line]
    return out


@pytest.mark.slow
@pytest.mark.timeout(int(SECONDS) + 300)
def test_200_jobs_every_crash_and_stall_detected_exactly_once(tmp_path):
    cfg = config(tmp_path)
    conf = load_config(cfg)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROOFWATCH_")}
    with open(tmp_path / "daemon.log", "ab") as log:
        daemon = subprocess.Popen([*PROOFWATCH, "run", "--config", str(cfg)], cwd=tmp_path, env=env,
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)
    try:
        def services_up() -> bool:
            try:
                jobs = json.loads(conf.status_file.read_text())["jobs"]
            except (OSError, ValueError, KeyError):
                return False
            return sum(1 for name, js in jobs.items() if name.startswith("s") and js["run_id"]) == SERVICES
        wait_for("every service to start", services_up, timeout=60)
        time.sleep(SECONDS)  # the soak itself: runs crash, stall and exit on their own meanwhile
        assert daemon.poll() is None, "the daemon died during the soak"
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=120)

    history = History(conf.history_db, create=False)
    try:
        runs = {r.run_id: r for r in history.runs(limit=1_000_000)}
        events = history.events(limit=10_000_000)
    finally:
        history.close()
    stalled = Counter(e.run_id for e in events if e.kind == "transition" and e.to_state == "STALLED")
    ended = Counter(e.run_id for e in events if e.kind == "transition" and e.to_state in FINAL)
    told = truths(conf.runs_dir)
    problems: list[str] = []
    counts = Counter()
    for run_id, lines in told.items():
        row = runs.get(run_id)
        if row is None:
            problems.append(f"{run_id}: not in the history")
            continue
        begins = sum(1 for x in lines if x["ev"] == "stall_begin")
        ends = sum(1 for x in lines if x["ev"] == "stall_end")
        exits = [x["code"] for x in lines if x["ev"] == "exit"]
        starved = sum(1 for x in lines if x["ev"] == "starved")  # may each be seen as a stall
        counts["starved"] += starved
        if ended[run_id] != 1:
            problems.append(f"{run_id}: {ended[run_id]} final transitions")
        if exits and row.state == "STOPPED":  # its own exit raced the final SIGTERM: stopped, fine
            exits = []
        if exits:  # it ended on its own: the exit and every stall, exactly once
            code = exits[0]
            counts[f"exit {code}"] += 1
            want = ({0: "SUCCEEDED", 3: "FAILED"}[code] if row.job.startswith("t") else "FAILED")
            if row.state != want or f"code {code}" not in (row.error or f"code {code}"):
                problems.append(f"{run_id}: exit {code} recorded as {row.state} ({row.error})")
            if not ends <= stalled[run_id] <= ends + starved:
                problems.append(f"{run_id}: {ends} stalls (+{starved} starved), {stalled[run_id]} detected")
        else:  # stopped at the end, maybe mid-stall (detected or not yet)
            counts["stopped"] += 1
            if row.state != "STOPPED" or not ends <= stalled[run_id] <= begins + starved:
                problems.append(f"{run_id}: {row.state}, {ends}-{begins} stalls, {stalled[run_id]} detected")
        counts["stalls"] += ends
    assert not problems, f"{len(problems)} of {len(told)} runs disagree: {problems[:20]}"
    assert len(told) >= SERVICES and counts["exit 3"] > 0 and counts["stalls"] > 0, counts
    print(f"soak {SECONDS:g}s: {len(told)} runs, {dict(counts)}")
