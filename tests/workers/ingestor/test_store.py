"""store.py, compact.py, manifest.py: atomic parts, bounded file counts, crash reconciliation."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from workers.ingestor import compact
from workers.ingestor.config import Settings
from workers.ingestor.ingest import Columns
from workers.ingestor.config import REQUIRED_KEYS
from workers.ingestor.manifest import Manifest, gap_record
from workers.ingestor.resume import open_stores
from workers.ingestor.store import TICK_SCHEMA, PartFile, PartStore, level_of, utc_date
from workers.ingestor.writer import tick_table

DAY = 86_400_000
T0 = 1_795_000_000_000 - 1_795_000_000_000 % DAY + DAY - 1000  # 1 s before a UTC midnight
MID = T0 - DAY // 2  # midday of the day before


def cols(start: int, n: int, ts0: int = T0, step: int = 10) -> Columns:
    c = Columns()
    for i in range(start, start + n):
        c.ts.append(ts0 + (i - start) * step)
        c.trade_id.append(str(i))
        c.price.append(100.0 + i)
        c.size.append(1.0)
        c.side.append("buy" if i % 2 else "sell")
    return c


def ticks(tmp_path: Path) -> PartStore:
    return PartStore(tmp_path, "ticks", TICK_SCHEMA)


def visible(tmp_path: Path) -> list[Path]:
    return sorted(p for p in tmp_path.rglob("*") if p.is_file())


def test_write_splits_by_utc_date_atomically_with_the_exact_schema(tmp_path: Path) -> None:
    store = ticks(tmp_path)
    parts = store.write("BTC-USDT", tick_table("BTC-USDT", cols(0, 200)))  # spans midnight
    assert [p.date_dir for p in parts] == [f"ticks/inst=BTC-USDT/date={utc_date(T0)}",
                                           f"ticks/inst=BTC-USDT/date={utc_date(T0 + 1000)}"]
    assert sum(p.rows for p in parts) == 200
    for part in parts:
        f = tmp_path / part.path
        assert f.name.startswith("part-") and level_of(f.name) == 0
        assert hashlib.sha256(f.read_bytes()).hexdigest() == part.sha256
        assert pq.read_schema(f).remove_metadata() == TICK_SCHEMA
        assert store.describe(part.path) == part
        ts = pq.ParquetFile(f).read().column("ts").cast(pa.int64()).to_pylist()
        assert ts == sorted(ts) and (ts[0], ts[-1]) == (part.first_ts, part.last_ts)
    assert not [p for p in visible(tmp_path) if p.name.startswith(".")], "temp file left"


def test_scan_removes_temp_files_a_crash_left(tmp_path: Path) -> None:
    store = ticks(tmp_path)
    [part] = store.write("BTC-USDT", tick_table("BTC-USDT", cols(0, 10, ts0=T0 - DAY)))
    leftover = (tmp_path / part.path).parent / ".part-x.parquet.123.tmp"
    leftover.write_bytes(b"half a file")
    assert list(store.scan()) == [part.path]
    assert not leftover.exists()


def part(path: str, rows: int, level: int = 0, first: int = 0) -> PartFile:
    return PartFile(path, rows, "x", 1, first, first + 1, level)


@pytest.mark.parametrize("parts, closed, expected", [
    ([part(f"d/p{i}", 10) for i in range(7)], False, []),
    ([part(f"d/p{i}", 10, first=i) for i in range(8)], False, [[f"d/p{i}" for i in range(8)]]),
    ([part("d/big", 600), *[part(f"d/p{i}", 10, first=i) for i in range(3)]], True,
     [["d/p0", "d/p1", "d/p2"]]),
    ([part("d/a", 400, 1, 0), part("d/b", 400, 1, 1), part("d/c", 400, 1, 2)], True,
     [["d/a", "d/b"]]),
    ([part("d/a", 10, 1), *[part(f"d/p{i}", 10, first=i) for i in range(3)]], False, []),
], ids=["below-fanout", "fanout", "closed-skips-sealed", "closed-caps-rows", "levels-apart"])
def test_plan_merges_tiers_and_closed_days(parts: list[PartFile], closed: bool,
                                            expected: list[list[str]]) -> None:
    groups = compact.plan(parts, fanout=8, max_rows=1000, closed=closed)
    assert [[p.path for p in g] for g in groups] == expected


def test_a_day_of_small_flushes_stays_a_handful_of_files(tmp_path: Path) -> None:
    store = ticks(tmp_path)
    files: dict[str, PartFile] = {}
    day0 = T0 + 1000  # a whole UTC day, 150 flushes of 5 rows
    for i in range(150):
        for p in store.write("BTC-USDT", tick_table("BTC-USDT", cols(i * 5, 5, day0 + i * 560_000))):
            files[p.path] = p
        for group in compact.plan_all(files.values(), fanout=4, max_rows=500, today="0000-01-01"):
            merged = compact.merge(store, group)
            for old in group:
                del files[old.path]
            files[merged.path] = merged
            store.unlink([old.path for old in group])
        assert len(files) <= 3 * 4  # fanout - 1 per level, levels ~ log4(flushes)
    assert sorted(store.scan()) == sorted(files) and sum(p.rows for p in files.values()) == 750
    assert max(p.rows for p in files.values()) <= 500
    for group in compact.plan_all(files.values(), fanout=4, max_rows=500, today="9999-12-31"):
        merged = compact.merge(store, group)  # the day is over: collapse what is not sealed
        for old in group:
            del files[old.path]
        files[merged.path] = merged
        store.unlink([old.path for old in group])
    assert len(files) <= 3  # sealed parts (>= max_rows / 2) plus at most one
    ids = pa.concat_tables(store.read(p).replace_schema_metadata(None)
                           for p in files).column("trade_id").to_pylist()
    assert len(ids) == len(set(ids)) == 750


def test_closed_day_collapses_to_few_files(tmp_path: Path) -> None:
    store = ticks(tmp_path)
    files = [p for i in range(20) for p in store.write(
        "BTC-USDT", tick_table("BTC-USDT", cols(i * 10, 10, MID + i * 1000)))]
    groups = compact.plan_all(files, fanout=8, max_rows=1_000_000, today="9999-12-31")
    assert len(groups) == 1 and len(groups[0]) == 20
    merged = compact.merge(store, groups[0])
    assert merged.rows == 200 and merged.level == 1
    assert sorted(store.replaces(merged.path)) == sorted(p.path.rsplit("/", 1)[1] for p in files)


def settings(tmp_path: Path) -> Settings:
    return Settings(ws_url="ws://x", rest_url="http://x", instruments=("BTC-USDT",),
                    data_dir=tmp_path)


def test_recover_after_a_crash_between_compaction_and_manifest(tmp_path: Path) -> None:
    s = settings(tmp_path)
    store = ticks(tmp_path)
    parts = [p for i in range(3) for p in store.write(
        "BTC-USDT", tick_table("BTC-USDT", cols(i * 10, 10, MID + i * 1000)))]
    m = Manifest(s.manifest_path)
    m.inst("BTC-USDT").files = {p.path: p for p in parts}
    m.save()
    merged = compact.merge(store, parts)  # crash: the manifest still lists the old parts
    [orphan] = store.write("BTC-USDT", tick_table("BTC-USDT", cols(100, 5, MID + 9000)))
    stores = open_stores(s)
    files = stores.manifest.instruments["BTC-USDT"].files
    assert sorted(files) == sorted([merged.path, orphan.path])
    assert sorted(store.scan()) == sorted(files)
    assert stores.manifest.ticks == 35


def test_recover_after_a_crash_between_manifest_and_unlink(tmp_path: Path) -> None:
    s = settings(tmp_path)
    store = ticks(tmp_path)
    parts = [p for i in range(3) for p in store.write(
        "BTC-USDT", tick_table("BTC-USDT", cols(i * 10, 10, MID + i * 1000)))]
    merged = compact.merge(store, parts)
    m = Manifest(s.manifest_path)
    m.inst("BTC-USDT").files = {merged.path: merged}
    m.save()  # crash: the replaced parts were not unlinked yet
    stores = open_stores(s)
    assert list(stores.manifest.instruments["BTC-USDT"].files) == [merged.path]
    assert list(store.scan()) == [merged.path]


def test_manifest_round_trips_and_carries_the_required_keys(tmp_path: Path) -> None:
    m = Manifest(tmp_path / "ticks" / "manifest.json", source={"ws_url": "ws://x"})
    rec = m.inst("BTC-USDT")
    rec.files["ticks/inst=BTC-USDT/date=2026-01-01/part-a.parquet"] = part(
        "ticks/inst=BTC-USDT/date=2026-01-01/part-a.parquet", 5, first=T0)
    rec.add_gap(gap_record(T0, T0 + 90_000, "disconnect", recovered=3, start_trade_id="7"))
    rec.malformed = 2
    m.batches = 4
    m.save()
    doc = json.loads(m.path.read_text())
    assert set(REQUIRED_KEYS) <= set(doc)
    assert doc["totals"] == {"ticks": 5, "candles": 0, "files": 1, "gaps": 1, "malformed": 2,
                             "batches": 4}
    g = doc["instruments"]["BTC-USDT"]["gaps"][0]
    assert (g["start_ms"], g["end_ms"], g["reason"]) == (T0, T0 + 90_000, "disconnect")
    again = Manifest.load(m.path)
    assert again.to_json() | {"updated_at": 0} == doc | {"updated_at": 0}


def test_a_corrupt_manifest_is_set_aside_and_rebuilt_from_the_parts(tmp_path: Path) -> None:
    s = settings(tmp_path)
    store = ticks(tmp_path)
    store.write("BTC-USDT", tick_table("BTC-USDT", cols(0, 10, MID)))
    s.manifest_path.write_text('{"schema": "proofwatch.ingestor.manifest/1", "instr')
    stores = open_stores(s)
    assert stores.manifest.ticks == 10
    assert list(s.ticks_dir.glob("manifest.json.corrupt-*"))
    assert json.loads(s.manifest_path.read_text())["totals"]["ticks"] == 10
