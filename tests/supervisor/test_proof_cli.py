"""`proofwatch proofs` and `proofwatch verify` on a real run's recorded artifacts."""

from __future__ import annotations

import subprocess
import sys

from status.models import JobState
from tests import _procs as P
from tests.supervisor.harness import job, reach, running


def cli(tmp_path, *args):
    return subprocess.run([sys.executable, "-m", "supervisor.cli", *args, "--config", str(tmp_path / "config.toml")],
                          capture_output=True, text=True, timeout=60)


async def test_proofs_lists_and_verify_catches_a_swapped_artifact(tmp_path):
    table = job(tmp_path, "honest", P.WRITES_PROOF) + '[[jobs.honest.proofs]]\npath = "out.json"\nkind = "json"\n'
    async with running(tmp_path, table) as d:
        await reach(d, "honest", JobState.SUCCEEDED)
        run = d.jobs["honest"].last_run
    shown = cli(tmp_path, "proofs", "honest")
    assert shown.returncode == 0, shown.stderr
    assert "SUCCEEDED" in shown.stdout and "out.json" in shown.stdout and run.proofs[0].sha256[:16] in shown.stdout

    ok = cli(tmp_path, "verify", "honest")
    assert ok.returncode == 0 and "unchanged" in ok.stdout

    (run.run_dir / "out.json").write_text('{"ok": false}')
    swapped = cli(tmp_path, "verify", "honest", "--run", run.run_id[-6:])
    assert swapped.returncode == 1
    assert "changed" in swapped.stdout and "sha256 was" in swapped.stdout

    (run.run_dir / "out.json").unlink()
    gone = cli(tmp_path, "verify", "honest")
    assert gone.returncode == 1 and "deleted" in gone.stdout


async def test_proofs_of_an_unproven_run_show_the_reason(tmp_path):
    table = job(tmp_path, "lazy", P.WRITES_PROOF, ', "--no-proof"') + '[[jobs.lazy.proofs]]\npath = "out.json"\n'
    async with running(tmp_path, table) as d:
        await reach(d, "lazy", JobState.FAILED)
    shown = cli(tmp_path, "proofs", "lazy")
    assert shown.returncode == 0
    assert "FAILED" in shown.stdout and "missing" in shown.stdout
    assert cli(tmp_path, "proofs", "nosuch").returncode == 1
