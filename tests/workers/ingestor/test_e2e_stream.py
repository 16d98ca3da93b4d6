"""The ingestor as a real subprocess against the sandbox: what it stores is what was served."""

from __future__ import annotations

import signal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from tests.workers.ingestor._harness import (
    ingestor,
    read_parts,
    stored,
    tick_ids,
    verify_manifest,
    wait_until,
)
from workers.sandbox.server import running_sandbox

INSTS = ["BTC-USDT", "ETH-USDT"]
BAR_MS = 60_000
TICK_SCHEMA = pa.schema([
    ("ts", pa.timestamp("ms", tz="UTC")), ("inst", pa.string()), ("trade_id", pa.string()),
    ("price", pa.float64()), ("size", pa.float64()), ("side", pa.string()),
])


def every_visible_part_is_complete(data: Path) -> int:
    """Open each part as a reader would: none may be half-written (temp files being written
    are dot-names that `part-*.parquet` globs never match)."""
    opened = 0
    for f in data.glob("*/inst=*/date=*/*"):
        if f.name.startswith("."):
            assert f.name.endswith(".tmp"), f"unexpected hidden file {f}"
            continue
        assert f.name.startswith("part-") and f.suffix == ".parquet", f"visible: {f}"
        try:
            pq.ParquetFile(f).read()
        except FileNotFoundError:
            continue  # merged away between the listing and the read
        opened += 1
    return opened


def test_uninterrupted_stream_stores_exactly_the_trades_served(tmp_path: Path) -> None:
    opened = 0

    def enough() -> bool:
        nonlocal opened
        opened += every_visible_part_is_complete(proc.data)
        return all(stored(proc.manifest(), i) >= 250 for i in INSTS)

    with running_sandbox(seed=7, rate=200.0, instruments=INSTS) as sb, \
            ingestor(tmp_path, sb, INSTS) as proc:
        wait_until("250 ticks of each instrument stored", enough, proc=proc)
        sb.faults.stall(4.0)  # freeze the feed (shorter than any keepalive) to compare totals
        served = {i: sb.served(i) for i in INSTS}
        wait_until("everything served is stored",
                   lambda: all(stored(proc.manifest(), i) == len(served[i]) for i in INSTS),
                   timeout=3.0, proc=proc)
        assert proc.stop(signal.SIGTERM) == 0, proc.log_tail()
        assert {i: sb.served(i) for i in INSTS} == served
    doc = verify_manifest(proc.data)
    for inst in INSTS:
        ids = tick_ids(proc.data, inst)
        assert len(ids) == len(set(ids)), f"{inst}: duplicates"
        assert set(ids) == set(served[inst]), inst
        rec = doc["instruments"][inst]
        assert rec["gaps"] == [] and rec["malformed"] == 0
        assert rec["last_trade_id"] == max(served[inst], key=int)
        truth = {t.trade_id: t for t in sb.market.trades_between(
            inst, rec["first_ts_ms"], rec["last_ts_ms"] + 1)}
        table = read_parts(proc.data, "ticks", inst)
        for row in table.slice(0, 50).to_pylist():
            t = truth[row["trade_id"]]
            assert (row["price"], row["size"], row["side"], row["inst"]) == (
                float(t.price), float(t.size), t.side, inst)
            assert int(row["ts"].timestamp() * 1000) == t.ts
    assert opened > 0
    for date_dir in proc.data.glob("*/inst=*/date=*"):
        assert len(list(date_dir.iterdir())) <= 2 * 8, f"{date_dir}: compaction fell behind"
    part = next(proc.data.glob("ticks/inst=BTC-USDT/date=*/part-*.parquet"))
    assert pq.read_schema(part).remove_metadata() == TICK_SCHEMA
    hb = proc.beat()
    assert hb.progress["ticks"] == sum(len(v) for v in served.values())
    assert hb.progress["batches"] >= 1 and hb.blocker is None
    assert "ticks/s" in hb.message and "last trade" in hb.message


def test_unknown_instrument_reports_the_exchange_words_as_blocker(tmp_path: Path) -> None:
    with running_sandbox(seed=3, rate=50.0, instruments=["BTC-USDT"]) as sb, \
            ingestor(tmp_path, sb, ["BTC-USDT", "NOPE-USDT"]) as proc:
        hb = wait_until("the exchange's 152014 in the heartbeat's blocker",
                        lambda: (b := proc.beat()) is not None and b.blocker
                        and "152014" in b.blocker and b, proc=proc)
        assert "Instrument ID does not exist" in hb.blocker and "NOPE-USDT" in hb.blocker
        wait_until("BTC-USDT still streams", lambda: stored(proc.manifest(), "BTC-USDT") > 20,
                   proc=proc)
        assert proc.stop() == 0
    doc = proc.manifest()
    assert stored(doc, "NOPE-USDT") == 0
    assert "152014" in doc["instruments"]["NOPE-USDT"]["blocked"]
    assert doc["instruments"]["BTC-USDT"]["blocked"] is None


def test_a_first_run_fetches_the_asked_history_of_1m_candles(tmp_path: Path) -> None:
    with running_sandbox(seed=3, rate=50.0, instruments=["BTC-USDT"], history_minutes=180) as sb, \
            ingestor(tmp_path, sb, ["BTC-USDT"], "--history-minutes", "120") as proc:
        now_bar = sb.now_ms() // BAR_MS * BAR_MS

        def history() -> int:
            bars = read_parts(proc.data, "candles_1m", "BTC-USDT")
            if not bars.num_rows:
                return 0
            return sum(1 for ts in bars.column("ts").to_pylist()
                       if int(ts.timestamp() * 1000) < now_bar - 60 * BAR_MS)

        wait_until("an hour and more of history stored", lambda: history() >= 55, proc=proc)
        assert proc.stop(signal.SIGTERM) == 0, proc.log_tail()
    bars = read_parts(proc.data, "candles_1m", "BTC-USDT").column("ts").to_pylist()
    oldest = min(int(ts.timestamp() * 1000) for ts in bars)
    assert now_bar - 122 * BAR_MS <= oldest <= now_bar - 110 * BAR_MS  # 120 bars back, not 180
    assert len(bars) == len(set(bars))
