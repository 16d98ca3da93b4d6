"""End to end under a real daemon: the emulator job SUCCEEDS with a verified odds.json -> the arb
job starts by itself (after = ["emulator"]), finds it through the history, and its proofs
verify. The emulator here is a stand-in that writes a perfect OCR of the sandbox pages (the
real one needs Chromium + Tesseract and is covered in tests/workers/emulator)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from status.models import JobState as S
from tests.supervisor.harness import reach, running
from tests.workers.arb.conftest import odds_json_from_truth, write_odds_json
from workers.sandbox.server import SandboxHandle

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[3]

STANDIN_EMULATOR = """
import os, shutil, sys
from pathlib import Path
from workers.sdk import Run
run = Run.from_env()
run.beat({"captures": 1}, phase="capture")
shutil.copy(sys.argv[1], Path(os.environ["PROOFWATCH_RUN_DIR"]) / "odds.json")
run.beat({"ocr_done": 1}, phase="ocr", force=True)
"""


def tables(tmp_path: Path, sandbox_url: str, src: Path) -> str:
    emu = tmp_path / "standin_emulator.py"
    emu.write_text(STANDIN_EMULATOR)
    return f"""
[jobs.emulator]
kind = "task"
command = ["{sys.executable}", "{emu}", "{src}"]
env = {{ PYTHONPATH = "{ROOT}" }}
[[jobs.emulator.proofs]]
path = "odds.json"
kind = "json"
required_keys = ["book", "generated_at", "markets.0.outcomes.0.odds", "summary.markets"]
schema = "{ROOT / 'workers/emulator/odds.schema.json'}"

[jobs.arb]
kind = "task"
command = ["{sys.executable}", "-m", "workers.arb", "--api-url", "{sandbox_url}"]
start = "manual"
after = ["emulator"]
startup_grace = "30s"
env = {{ ODDS_API_KEY = "test-key", PYTHONPATH = "{ROOT}" }}
[[jobs.arb.proofs]]
path = "arbs.json"
kind = "json"
required_keys = ["opportunities", "opportunities.0.legs.0.stake", "summary.matched"]
schema = "{ROOT / 'workers/arb/arbs.schema.json'}"
[[jobs.arb.proofs]]
path = "matches.csv"
kind = "text"
contains = "market_id,event_id"
"""


async def test_arb_starts_after_the_emulator_and_its_proofs_verify(
        tmp_path: Path, sandbox: SandboxHandle) -> None:
    src = write_odds_json(tmp_path / "ocr.json", odds_json_from_truth(sandbox.http_url))
    async with running(tmp_path, tables(tmp_path, sandbox.http_url, src)) as d:
        await reach(d, "emulator", S.SUCCEEDED, S.FAILED, S.CRASHED, timeout=30)
        await reach(d, "arb", S.SUCCEEDED, S.FAILED, S.CRASHED, S.BLOCKED, timeout=60)
        run = d.jobs["arb"].last_run
        assert d.jobs["arb"].state == S.SUCCEEDED, (run.error, [p.detail for p in run.proofs])
        assert len(run.proofs) == 2 and all(p.ok for p in run.proofs), [p.detail for p in run.proofs]
        doc = json.loads((run.run_dir / "arbs.json").read_text())
        emu = d.jobs["emulator"].last_run
        assert doc["inputs"]["odds_json"] == str(emu.run_dir / "odds.json")
        assert doc["summary"]["opportunities"] == 6 and doc["run_id"] == run.run_id
        assert run.progress["written"] == 3


async def test_a_missing_api_key_blocks_with_the_apis_own_message(
        tmp_path: Path, sandbox: SandboxHandle) -> None:
    src = write_odds_json(tmp_path / "ocr.json", odds_json_from_truth(sandbox.http_url))
    table = f"""
[jobs.arb]
kind = "task"
command = ["{sys.executable}", "-m", "workers.arb", "--api-url", "{sandbox.http_url}",
           "--odds-json", "{src}", "--api-key-env", "NO_SUCH_KEY_VAR"]
env = {{ PYTHONPATH = "{ROOT}" }}
[[jobs.arb.proofs]]
path = "arbs.json"
kind = "json"
required_keys = ["opportunities"]
"""
    async with running(tmp_path, table) as d:
        await reach(d, "arb", S.FAILED, S.SUCCEEDED, S.CRASHED, timeout=30)
        assert d.jobs["arb"].state == S.FAILED
        detail = " ".join(a.detail for a in d.alerts.active.values() if a.job == "arb")
        assert "MISSING_KEY" in detail and "API key is missing" in detail, detail
