"""Restarts of the ingestor process: resume from disk, never store a trade twice."""

from __future__ import annotations

import signal
from collections import Counter
from pathlib import Path

from tests.workers.ingestor._harness import (
    Ingestor,
    in_gaps,
    stored,
    tick_ids,
    verify_manifest,
    wait_until,
)
from workers.sandbox.server import running_sandbox

INSTS = ["BTC-USDT", "ETH-USDT"]


def _total(proc: Ingestor) -> int:
    return sum(stored(proc.manifest(), i) for i in INSTS)


def test_restarts_after_sigterm_and_sigkill_resume_without_duplicates(tmp_path: Path) -> None:
    with running_sandbox(seed=21, rate=200.0, instruments=INSTS) as sb:
        first = Ingestor(tmp_path, sb, INSTS, name="first")
        try:
            wait_until("first run stores", lambda: _total(first) >= 300, proc=first)
        finally:
            assert first.stop(signal.SIGTERM) == 0, first.log_tail()
        n1 = _total(first)
        second = Ingestor(tmp_path, sb, INSTS, name="second")
        try:
            wait_until("second run stores more", lambda: _total(second) >= n1 + 300,
                       proc=second)
        finally:
            second.kill()  # SIGKILL: the pending batch is lost, maybe a part not in the manifest
        third = Ingestor(tmp_path, sb, INSTS, name="third")
        try:
            n2 = _total(third)
            wait_until("third run stores more", lambda: all(
                (m := third.manifest()) and m["instruments"][i]["recoveries"] >= 1
                for i in INSTS) and _total(third) >= n2 + 300, proc=third)
        finally:
            assert third.stop(signal.SIGTERM) == 0, third.log_tail()
        assert "resuming after trade" in third.log.read_text()
    doc = verify_manifest(tmp_path / "data")
    for inst in INSTS:
        ids = tick_ids(tmp_path / "data", inst)
        dups = [i for i, n in Counter(ids).items() if n > 1]
        assert not dups, f"{inst}: {len(dups)} trade ids stored twice, e.g. {dups[:3]}"
        rec = doc["instruments"][inst]
        assert rec["count"] == len(ids)
        truth = sb.market.trades_between(inst, rec["first_ts_ms"], rec["last_ts_ms"] + 1)
        have = set(ids)
        lost = [t for t in truth if t.trade_id not in have and not in_gaps(t.ts, rec["gaps"])]
        assert not lost, f"{inst}: {len(lost)} trades neither stored nor in a recorded gap"
        for gap in rec["gaps"]:
            assert "restart" in gap["reason"], gap
