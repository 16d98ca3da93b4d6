"""Host health inside the running daemon: the host section, and expected vs unexpected load."""

from __future__ import annotations

import subprocess
import sys

import psutil

from status.models import JobState
from status.store import read_status
from tests.supervisor.harness import job, reach, running

BURN = """
import time
from workers.sdk import Run
run = Run.from_env()
i = 0
while True:
    i += 1
    if i % 200000 == 0:
        run.beat({"spins": i})
"""

HEALTH = '\n[health]\ninterval = "200ms"\ncpu_busy_pct = 35\nfor_samples = 2\n'


async def test_expected_load_does_not_alert_but_an_unexpected_burner_is_named(tmp_path):
    name = psutil.Process().name()  # the interpreter's process name, e.g. "python3.11"
    emu = job(tmp_path, "emu", BURN, expected_load=[name])
    async with running(tmp_path, emu, HEALTH) as d:
        await reach(d, "emu", JobState.RUNNING)
        await d.wait_until(lambda: d.hostwatch.status is not None and d.hostwatch.status.sample.get("expected"), 10)
        # several samples with the expected burner: it is never blamed for the CPU
        emu_pid = d.jobs["emu"].run.pid
        seen = d.status.writes
        await d.wait_until(lambda: d.status.writes >= seen + 6, 10)
        expected = d.hostwatch.status.sample["expected"]
        assert expected[0]["job"] == "emu" and expected[0]["pid"] == emu_pid
        assert expected[0]["cpu_pct"] > 50
        if "host:cpu" in d.alerts.active:  # only other, unexpected load on this machine may fire
            blamed = d.alerts.active["host:cpu"].title.split("; expected:")[0]
            assert f"pid {emu_pid}" not in blamed

        rogue = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            named = f"pid {rogue.pid}"
            await d.wait_until(lambda: "host:cpu" in d.alerts.active
                               and named in " ".join(d.hostwatch.status.reasons), 15)
            [reason] = [r for r in d.hostwatch.status.reasons if named in r]
            assert reason.split("; expected:")[0].count(named) == 1  # blamed as unexpected
            rogue_info = [p for p in d.hostwatch.status.sample["top_cpu"] if p["pid"] == rogue.pid]
            assert rogue_info and rogue_info[0]["expected"] is False and rogue_info[0]["job"] is None
        finally:
            rogue.kill()
            rogue.wait()
        await d.status.write_now()
        doc = read_status(d.config.status_file)
        assert doc.host.score is not None and doc.host.label in {"HEALTHY", "DEGRADED", "WARNING", "CRITICAL"}


def test_a_runs_cpu_samples_stay_bounded_and_still_answer_cpu_over_the_stall_window(tmp_path):
    """Samples every 10 s for 2 hours: only those of the last stall window (and the newest
    one before it) are kept, and "CPU over the stall window" reads the same as from all."""
    from datetime import datetime, timedelta, timezone

    from supervisor import details
    from supervisor.runs import RunState

    t0 = datetime(2026, 11, 25, tzinfo=timezone.utc)
    stall_after, interval = timedelta(minutes=5), timedelta(seconds=10)
    run = RunState("j", "r", "service", tmp_path, t0)
    every = []
    for i in range(1, 721):
        ts, cpu = t0 + i * interval, i * 0.37 + (i % 7) * 0.01  # a steady burner, slightly noisy
        run.add_cpu_sample(ts, cpu, stall_after + 2 * interval)
        every.append((ts, cpu))
        assert len(run.cpu_samples) <= 33  # 5 min / 10 s + 2 + the one before the window
        full = RunState("j", "r", "service", tmp_path, t0)
        full.cpu_samples = every
        for since in (ts - stall_after, ts - stall_after - interval / 2, ts - interval):
            assert details.cpu_from_samples(run, since) == details.cpu_from_samples(full, since)
    assert run.cpu_samples[-1] == every[-1]
