"""Faults against the real ingestor process: drops, stalls, 429s, malformed pushes.

The sandbox clock runs 60x faster here, so a 1-minute bar closes every second of wall time and
a 2.5 s stall loses minutes of trades (far beyond the 100 trades REST can give back).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.workers.ingestor._harness import (
    BAR_MS,
    accelerated,
    in_gaps,
    ingestor,
    read_parts,
    stored,
    tick_ids,
    verify_manifest,
    wait_until,
)
from workers.sandbox.server import running_sandbox

INSTS = ["BTC-USDT", "ETH-USDT"]
FAST = ("--ping-interval", "1", "--pong-timeout", "1")


def _inst(proc: Any, inst: str) -> dict[str, Any]:
    m = proc.manifest()
    return m["instruments"].get(inst, {}) if m else {}


def _trades_hit(proc: Any) -> set[str]:
    text = proc.log.read_text(errors="replace")
    return {i for i in INSTS if f"malformed trades push for {i} skipped" in text}


def _reconnects(proc: Any) -> int:
    return min(_inst(proc, i).get("reconnects", 0) for i in INSTS)


def _bars(data: Path, inst: str) -> set[int]:
    table = read_parts(data, "candles_1m", inst)
    return {int(ts.timestamp() * 1000) for ts in table.column("ts").to_pylist()}


def test_disconnects_and_stalls_lose_no_trade_without_a_recorded_gap(tmp_path: Path) -> None:
    with running_sandbox(seed=11, rate=5.0, instruments=INSTS, clock=accelerated(60)) as sb, \
            ingestor(tmp_path, sb, INSTS, *FAST) as proc:
        wait_until("trades stored", lambda: all(stored(proc.manifest(), i) > 200 for i in INSTS),
                   proc=proc)
        sb.faults.drop()
        wait_until("a reconnect", lambda: _reconnects(proc) >= 1, proc=proc)
        sb.faults.rate_limit(2)  # the recovery's REST calls get 429 first
        sb.faults.drop()
        wait_until("a second reconnect", lambda: _reconnects(proc) >= 2, proc=proc)
        sb.faults.stall(2.5)
        wait_until("the stall detected and reconnected", lambda: _reconnects(proc) >= 3,
                   proc=proc)
        wait_until("a gap recorded for the stall",
                   lambda: all(_inst(proc, i)["gaps"] for i in INSTS), proc=proc)
        wait_until("bars of the gap backfilled", lambda: all(
            g["candles"]["complete"] for i in INSTS for g in _inst(proc, i)["gaps"]),
            timeout=20.0, proc=proc)
        after = {i: stored(proc.manifest(), i) for i in INSTS}
        wait_until("streaming again", lambda: all(
            stored(proc.manifest(), i) > after[i] + 100 for i in INSTS), proc=proc)
        assert proc.stop() == 0, proc.log_tail()
        state = sb.state()
    log = proc.log.read_text()
    assert "stream stall" in log, proc.log_tail()
    assert state["counters"]["rate_limited"] >= 2
    doc = verify_manifest(proc.data)
    for inst in INSTS:
        rec = doc["instruments"][inst]
        ids = set(tick_ids(proc.data, inst))
        assert len(ids) == rec["count"], f"{inst}: duplicates stored"
        truth = sb.market.trades_between(inst, rec["first_ts_ms"], rec["last_ts_ms"] + 1)
        lost = [t for t in truth if t.trade_id not in ids and not in_gaps(t.ts, rec["gaps"])]
        assert not lost, f"{inst}: {len(lost)} trades neither stored nor in a recorded gap"
        missing = [t for t in truth if t.trade_id not in ids]
        assert missing, f"{inst}: the stall should have cost trades REST cannot give back"
        assert rec["recoveries"] >= 1  # interruptions during a pending recovery merge into it
        bars = _bars(proc.data, inst)
        for gap in rec["gaps"]:
            c = gap["candles"]
            want = set(range(c["start_ms"], c["end_ms"] + 1, BAR_MS))
            assert want <= bars, f"{inst}: bars {sorted(want - bars)} of gap {gap} missing"
        through = rec["candles"]["complete_through_ms"]
        first = min(bars)
        assert set(range(first, through + 1, BAR_MS)) <= bars, f"{inst}: holes in bars"


def test_malformed_pushes_are_skipped_counted_and_their_trades_recovered(tmp_path: Path) -> None:
    with running_sandbox(seed=5, rate=100.0, instruments=INSTS) as sb, \
            ingestor(tmp_path, sb, INSTS) as proc:
        wait_until("trades stored", lambda: all(stored(proc.manifest(), i) > 50 for i in INSTS),
                   proc=proc)
        sb.faults.malformed(6)
        wait_until("malformed pushes counted", lambda: (proc.manifest() or {}).get("malformed", 0) >= 6,
                   proc=proc)
        sent = sb.state()["counters"]["malformed_sent"]
        # only a malformed *trades* push may have carried trades, so only those ask REST
        # (a malformed candle push is counted and skipped; the next candle push supersedes it)
        wait_until("a REST recovery for each instrument whose trades push was hit", lambda: all(
            _inst(proc, i)["recoveries"] >= 1 for i in _trades_hit(proc)), proc=proc)
        n = {i: stored(proc.manifest(), i) for i in INSTS}
        wait_until("still streaming", lambda: all(
            stored(proc.manifest(), i) > n[i] + 50 for i in INSTS), proc=proc)
        assert proc.stop() == 0, proc.log_tail()
        hb = proc.beat()
    doc = verify_manifest(proc.data)
    assert sent == 6 and doc["malformed"] == 6 == doc["totals"]["malformed"]
    assert "6 malformed" in hb.message
    for inst in INSTS:
        rec = doc["instruments"][inst]
        ids = set(tick_ids(proc.data, inst))
        truth = sb.market.trades_between(inst, rec["first_ts_ms"], rec["last_ts_ms"] + 1)
        lost = [t for t in truth if t.trade_id not in ids and not in_gaps(t.ts, rec["gaps"])]
        assert not lost, f"{inst}: {len(lost)} trades lost without a recorded gap"
