"""The retrain job under a real proofwatch daemon, configured by the exact config.toml block in
workers/retrain/README.md: SUCCEEDED only with every proof verified; a run a gate fails is
FAILED, with the verdict in the alert's stderr tail."""

from __future__ import annotations

import json
import re
from pathlib import Path

from status.models import JobState as S
from tests.supervisor.harness import reach, running
from workers.retrain.synthetic import Market, write_store

from .conftest import SIGNAL

PACKAGE = Path(__file__).resolve().parents[3] / "workers" / "retrain"
FAST = "--max-iter 30 --max-leaf-nodes 6 --min-samples-leaf 20"


def documented_block() -> str:
    """The ```toml block of the README's config.toml section."""
    readme = (PACKAGE / "README.md").read_text()
    return re.search(r"### config\.toml\n```toml\n(.*?)```", readme, re.DOTALL).group(1)  # type: ignore[union-attr]


def retrain_job(name: str, extra: str = "") -> str:
    """The documented block, renamed, started at boot, with a quick model and an absolute schema path."""
    block = documented_block()
    assert 'command = "python -m workers.retrain"\n' in block and 'schedule = "0 * * * *"\n' in block
    block = block.replace("jobs.retrain", f"jobs.{name}")
    block = block.replace('command = "python -m workers.retrain"\n',
                          f'command = "python -m workers.retrain {FAST}{extra}"\nstart = "boot"\n')
    return block.replace(
        'schema = "workers/retrain/metrics.schema.json"', f'schema = "{PACKAGE / "metrics.schema.json"}"')


async def test_retrain_under_the_supervisor_succeeds_with_every_proof_verified(tmp_path: Path) -> None:
    write_store(tmp_path / "data", SIGNAL)
    calm_then_wild = tmp_path / "calm"
    write_store(calm_then_wild, Market(days=3.0, calm_until=0.7, seed=4))
    bad = retrain_job("regime", f" --data-dir {calm_then_wild} --test-bars 24")
    async with running(tmp_path, retrain_job("retrain"), bad) as d:
        await reach(d, "retrain", S.SUCCEEDED, S.FAILED, S.CRASHED, timeout=90)
        await reach(d, "regime", S.SUCCEEDED, S.FAILED, S.CRASHED, timeout=90)
        good = d.jobs["retrain"].last_run
        assert d.jobs["retrain"].state == S.SUCCEEDED, good.error
        assert len(good.proofs) == 6 and all(p.ok for p in good.proofs), [p.detail for p in good.proofs]
        assert any(p.kind == "command" and p.detail.startswith("exited 0") for p in good.proofs)
        assert any("matches schema metrics.schema.json" in p.checks for p in good.proofs)
        assert good.progress["folds"] == 5 and good.progress["control_folds"] == 15
        metrics = json.loads((good.run_dir / "metrics.json").read_bytes())
        assert metrics["run_id"] == good.run_id and metrics["promoted"]
        registry = json.loads((tmp_path / "data" / "models" / "registry.json").read_bytes())
        assert registry["current"]["id"] == metrics["model"]["id"]
        failed = d.jobs["regime"].last_run
        assert d.jobs["regime"].state == S.FAILED and failed.error == "exited with code 1"
        assert "regime:failed" in d.alerts.active
        assert "retrain: FAILED: not converged: the test folds never saw calm markets" in \
            d.alerts.active["regime:failed"].detail
