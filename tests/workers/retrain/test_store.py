"""workers/retrain/_store.py: a consistent, read-only view of the ingestor's parts."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from workers.ingestor import compact
from workers.ingestor.manifest import Manifest
from workers.ingestor.store import CANDLE_SCHEMA, TICK_SCHEMA, TS_TYPE, PartStore
from workers.retrain._store import load
from workers.retrain.errors import DataError
from workers.retrain.synthetic import Market, candle_table, candles, tick_table, write_store

DAY = 86_400_000
T0 = 1_790_000_000_000 - 1_790_000_000_000 % DAY  # a UTC midnight


def _candles(inst: str, start: int, n: int, source: str = "rest", price: float = 100.0) -> pa.Table:
    ts = [start + 60_000 * i for i in range(n)]
    return pa.table({
        "ts": pa.array(ts, pa.int64()).cast(TS_TYPE), "inst": [inst] * n,
        "open": [price] * n, "high": [price + 1] * n, "low": [price - 1] * n, "close": [price] * n,
        "vol": [1.0] * n, "vol_currency": [1.0] * n, "vol_currency_quote": [price] * n, "source": [source] * n,
    }, schema=CANDLE_SCHEMA)


def _ticks(inst: str, start: int, ids: list[int]) -> pa.Table:
    n = len(ids)
    return pa.table({
        "ts": pa.array([start + 1000 * i for i in ids], pa.int64()).cast(TS_TYPE), "inst": [inst] * n,
        "trade_id": [str(i) for i in ids], "price": [100.0] * n, "size": [1.0] * n, "side": ["buy"] * n,
    }, schema=TICK_SCHEMA)


def _manifest(data: Path) -> Manifest:
    return Manifest(data / "ticks" / "manifest.json")


def test_duplicate_bars_from_ws_and_rest_are_read_once_preferring_rest(tmp_path: Path) -> None:
    store = PartStore(tmp_path, "candles_1m", CANDLE_SCHEMA)
    man = _manifest(tmp_path)
    parts = store.write("BTC-USDT", _candles("BTC-USDT", T0, 10, "ws", price=100.0))
    parts += store.write("BTC-USDT", _candles("BTC-USDT", T0 + 5 * 60_000, 10, "rest", price=101.0))
    man.inst("BTC-USDT").candles.files.update((p.path, p) for p in parts)
    man.save()
    snap = load(tmp_path, (), days=30)
    c = snap.instruments["BTC-USDT"].candles
    assert len(c) == 15 and c["ts"].is_unique and c["ts"].is_monotonic_increasing
    assert snap.instruments["BTC-USDT"].info["candle_duplicates"] == 5
    assert (c.loc[c["ts"] >= T0 + 5 * 60_000, "close"] == 101.0).all()  # the REST row won


def test_ticks_are_reduced_to_5_minute_aggregates_and_a_repeated_trade_id_counted_once(tmp_path: Path) -> None:
    cstore, tstore = PartStore(tmp_path, "candles_1m", CANDLE_SCHEMA), PartStore(tmp_path, "ticks", TICK_SCHEMA)
    man = _manifest(tmp_path)
    rec = man.inst("ETH-USDT")
    rec.candles.files.update((p.path, p) for p in cstore.write("ETH-USDT", _candles("ETH-USDT", T0, 20)))
    ids = [1, 2, 3, 3, 299, 300, 301, 600]  # one id twice in the same part; bars 0, 0, 0, 0, 0, 1, 1, 2
    rec.files.update((p.path, p) for p in tstore.write("ETH-USDT", _ticks("ETH-USDT", T0, ids)))
    rec.files.update((p.path, p) for p in tstore.write("ETH-USDT", _ticks("ETH-USDT", T0, [900, 901])))
    man.save()
    d = load(tmp_path, ("ETH-USDT",), days=30, cache_dir=tmp_path / "cache").instruments["ETH-USDT"]
    assert d.ticks is not None
    assert d.ticks["ts"].tolist() == [T0, T0 + 300_000, T0 + 600_000, T0 + 900_000]
    assert d.ticks["trades"].tolist() == [4, 2, 1, 2] and d.ticks["buy_vol"].tolist() == [4.0, 2.0, 1.0, 2.0]
    assert d.tick_span == (T0 + 1000, T0 + 901_000)
    assert d.info["ticks"] == 9 and d.info["tick_duplicates"] == 1
    assert d.info["tick_parts_reduced"] == 2 and d.info["tick_parts_cached"] == 0


def test_tick_reductions_are_cached_per_part_and_dropped_with_their_part(tmp_path: Path) -> None:
    write_store(tmp_path, Market(days=1.0, ticks=4000))
    cache = tmp_path / "models" / "cache"
    first = load(tmp_path, ("BTC-USDT",), days=30, cache_dir=cache).instruments["BTC-USDT"]
    again = load(tmp_path, ("BTC-USDT",), days=30, cache_dir=cache).instruments["BTC-USDT"]
    assert first.info["tick_parts_reduced"] > 0 and again.info["tick_parts_reduced"] == 0
    assert again.info["tick_parts_cached"] == first.info["tick_parts_reduced"]
    pd.testing.assert_frame_equal(first.ticks, again.ticks)
    cached = sorted(cache.rglob("part-*.parquet"))
    part = tmp_path / cached[0].relative_to(cache)
    part.unlink()  # as compaction does once the part is merged
    load(tmp_path, ("BTC-USDT",), days=30, cache_dir=cache)
    assert not cached[0].exists() and all(p.exists() for p in cached[1:])


def test_without_a_writable_cache_the_ticks_are_still_read(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write_store(tmp_path, Market(days=0.5, ticks=1000))
    (tmp_path / "blocked").write_text("a file where the cache directory would go")
    with caplog.at_level(logging.WARNING):
        d = load(tmp_path, ("BTC-USDT",), days=30, cache_dir=tmp_path / "blocked").instruments["BTC-USDT"]
    assert d.info["ticks"] == 500 and "cannot cache tick reductions" in caplog.text


def test_parts_compacted_after_the_manifest_was_written_are_read_from_the_merged_part(tmp_path: Path) -> None:
    """The ingestor merges parts and unlinks them before it rewrites the manifest: a reader
    holding the old list must find the rows in the merged part, each exactly once."""
    store = PartStore(tmp_path, "candles_1m", CANDLE_SCHEMA)
    man = _manifest(tmp_path)
    parts = [store.write("BTC-USDT", _candles("BTC-USDT", T0 + i * 600_000, 10))[0] for i in range(4)]
    man.inst("BTC-USDT").candles.files.update((p.path, p) for p in parts)
    man.save()  # lists the four level-0 parts
    merged = compact.merge(store, parts[:3])
    store.unlink([p.path for p in parts[:3]])  # ... and the ingestor has not rewritten the manifest yet
    d = load(tmp_path, (), days=30).instruments["BTC-USDT"]
    assert len(d.candles) == 40 and d.candles["ts"].is_unique
    assert d.info["candle_parts"]["dirs_from_disk"] == 1
    assert (tmp_path / merged.path).exists()


def test_a_merged_part_still_next_to_its_inputs_is_not_counted_twice(tmp_path: Path) -> None:
    store = PartStore(tmp_path, "candles_1m", CANDLE_SCHEMA)
    parts = [store.write("BTC-USDT", _candles("BTC-USDT", T0 + i * 600_000, 10))[0] for i in range(2)]
    compact.merge(store, parts)  # crash before the unlink; no manifest at all
    d = load(tmp_path, (), days=30).instruments["BTC-USDT"]
    assert len(d.candles) == 20 and d.info["candle_parts"]["parts"] == 1


def test_without_a_manifest_the_parts_on_disk_are_read(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    write_store(tmp_path, Market(days=0.5, ticks=1000), manifest=False)
    with caplog.at_level(logging.WARNING):
        snap = load(tmp_path, (), days=30)
    assert snap.source == "disk" and set(snap.instruments) == {"BTC-USDT", "ETH-USDT"}
    assert len(snap.instruments["BTC-USDT"].candles) == 720
    assert "manifest.json not found" in caplog.text


def test_days_limits_the_history_read(tmp_path: Path) -> None:
    write_store(tmp_path, Market(days=3.0))
    d = load(tmp_path, ("BTC-USDT",), days=1.0).instruments["BTC-USDT"]
    assert len(d.candles) == 1440


def test_an_instrument_the_store_lacks_is_named_with_what_it_has(tmp_path: Path) -> None:
    write_store(tmp_path, Market(days=0.2))
    with pytest.raises(DataError, match=r"no 1-minute candles for SOL-USDT .*\(the store has: BTC-USDT, ETH-USDT\)"):
        load(tmp_path, ("SOL-USDT",), days=30)


def test_an_empty_data_dir_says_the_ingestor_has_not_run(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="has the ingestor run"):
        load(tmp_path, (), days=30)


def test_a_corrupt_manifest_fails_the_read_and_is_left_alone(tmp_path: Path) -> None:
    write_store(tmp_path, Market(days=0.2))
    path = tmp_path / "ticks" / "manifest.json"
    path.write_text("{not json")
    with pytest.raises(DataError, match="cannot read the ingestor's manifest"):
        load(tmp_path, (), days=30)
    assert path.read_text() == "{not json"  # a reader never renames or repairs the writer's file
    assert sorted(p.name for p in path.parent.iterdir() if p.name.startswith("manifest")) == ["manifest.json"]


def test_tick_gaps_from_the_manifest_are_passed_on(tmp_path: Path) -> None:
    m = Market(days=0.2, ticks=500)
    write_store(tmp_path, m)
    path = tmp_path / "ticks" / "manifest.json"
    doc = json.loads(path.read_bytes())
    doc["instruments"]["BTC-USDT"]["gaps"] = [{"start_ms": 5, "end_ms": 9}]
    path.write_text(json.dumps(doc))
    assert load(tmp_path, ("BTC-USDT",), days=30).instruments["BTC-USDT"].tick_gaps == [(5, 9)]


def test_synthetic_tables_match_the_ingestor_schemas() -> None:
    c = candles(Market(days=0.1), 0)
    assert candle_table("BTC-USDT", c).schema == CANDLE_SCHEMA
    assert tick_table("BTC-USDT", c, 50, int(c["ts"][0]), 1).schema == TICK_SCHEMA
