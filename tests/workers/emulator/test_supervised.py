"""The emulator job under a real proofwatch daemon: the browser backend on the sandbox
sportsbook and the adb backend (stand-in adb) both end SUCCEEDED with every proof verified;
a device that is not there ends BLOCKED-then-FAILED with adb's own words in the alert."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from status.models import JobState as S
from tests.supervisor.harness import reach, running
from tests.workers.emulator.conftest import needs_chromium, needs_tesseract, standin_adb
from workers.sandbox.server import SandboxHandle

pytestmark = [pytest.mark.slow, needs_chromium, needs_tesseract]
SCHEMA = Path(__file__).resolve().parents[3] / "workers" / "emulator" / "odds.schema.json"


def browser_job(name: str, sandbox: str) -> str:
    """The [jobs.emulator] table for config.toml (here on two pages to stay fast)."""
    return f"""
[jobs.{name}]
kind = "task"
command = ["{sys.executable}", "-m", "workers.emulator", "--backend", "browser",
           "--url", "{sandbox}/sportsbook/basketball_nba", "--url", "{sandbox}/sportsbook/soccer_epl"]
expected_load = ["qemu-system-*"]
startup_grace = "30s"
stall_after = "2m"
[[jobs.{name}.proofs]]
path = "screens/*.png"
kind = "png"
min_count = 2
min_bytes = 20000
min_width = 800
min_height = 600
[[jobs.{name}.proofs]]
path = "extractions/*.json"
kind = "json"
min_count = 2
required_keys = ["book", "captured_at", "source", "markets", "ocr"]
[[jobs.{name}.proofs]]
path = "odds.json"
kind = "json"
required_keys = ["book", "generated_at", "markets.0.outcomes.0.odds", "summary.markets"]
schema = "{SCHEMA}"
"""


def adb_job(name: str, bin_dir: Path, env: dict[str, str], extra: str = "") -> str:
    env_toml = ", ".join(f'{k} = "{v}"' for k, v in env.items())
    return f"""
[jobs.{name}]
kind = "task"
command = ["{sys.executable}", "-m", "workers.emulator", "--backend", "adb", "--adb", "{bin_dir / 'adb'}",
           "--shots", "1", "--settle", "0"{extra}]
env = {{ {env_toml} }}
expected_load = ["qemu-system-*"]
[[jobs.{name}.proofs]]
path = "boot.log"
kind = "log"
contains = ["sys\\\\.boot_completed=1"]
[[jobs.{name}.proofs]]
path = "adb_devices.txt"
kind = "text"
contains = ["^List of devices attached", "\\\\tdevice|\\\\sdevice\\\\s"]
[[jobs.{name}.proofs]]
path = "install.log"
kind = "text"
[[jobs.{name}.proofs]]
path = "screens/*.png"
kind = "png"
min_bytes = 20000
[[jobs.{name}.proofs]]
path = "odds.json"
kind = "json"
required_keys = ["markets.0"]
schema = "{SCHEMA}"
"""


async def test_emulator_jobs_under_the_supervisor_succeed_with_every_proof_verified(
        tmp_path: Path, sandbox: SandboxHandle, screens: dict[str, Path]) -> None:
    bin_dir = standin_adb(tmp_path / "bin").parent
    env = {"STANDIN_ADB_LOG": str(tmp_path / "calls.log"), "STANDIN_ADB_SCREENS": str(screens["soccer_epl"])}
    async with running(tmp_path, browser_job("emulator", sandbox.http_url), adb_job("phone", bin_dir, env)) as d:
        await reach(d, "emulator", S.SUCCEEDED, S.FAILED, S.CRASHED, timeout=90)
        await reach(d, "phone", S.SUCCEEDED, S.FAILED, S.CRASHED, timeout=90)
        for name, proofs in (("emulator", 2 + 2 + 1), ("phone", 5)):  # one row per matched file
            run = d.jobs[name].last_run
            assert d.jobs[name].state == S.SUCCEEDED, (name, run.error, [p.detail for p in run.proofs])
            assert len(run.proofs) == proofs and all(p.ok for p in run.proofs), [p.detail for p in run.proofs]
        run = d.jobs["emulator"].last_run
        assert run.progress["captures"] == 2 and run.progress["ocr_done"] == 2
        assert run.progress["markets"] == 16
        doc = json.loads((run.run_dir / "odds.json").read_text())
        assert doc["run_id"] == run.run_id and doc["summary"]["markets"] == 16


async def test_no_device_under_the_supervisor_is_blocked_with_adbs_words(tmp_path: Path) -> None:
    port = "5" + str(os.getpid() % 9000 + 1000)  # our own adb server, not the machine's
    table = adb_job("phone", Path("/usr/bin"), {"ANDROID_ADB_SERVER_PORT": port})
    if not (Path("/usr/bin") / "adb").exists():
        pytest.skip("no adb")
    try:
        async with running(tmp_path, table) as d:
            await reach(d, "phone", S.FAILED, S.SUCCEEDED, S.CRASHED, timeout=60)
            detail = " ".join(a.detail for a in d.alerts.active.values() if a.job == "phone")
            assert "no devices/emulators found" in detail, detail
    finally:
        import subprocess
        subprocess.run(["adb", "kill-server"], env={**os.environ, "ANDROID_ADB_SERVER_PORT": port},
                       capture_output=True, timeout=30)
