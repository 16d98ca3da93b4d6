"""Start-up: lock the data dir, reconcile the manifest with the disk, restore de-dup state.

A restart must not store a trade twice: the last `dedup_window` trade ids per instrument are
read back from the newest parts (what is on disk is the truth; parts a crash wrote before the
manifest caught up are adopted), the newest stored trade becomes the watermark, and a
"restart" gap is opened from it, to be closed by REST like any other interruption.
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from workers.ingestor.compact import recover
from workers.ingestor.config import Settings
from workers.ingestor.errors import ConfigError
from workers.ingestor.gaps import PendingGap
from workers.ingestor.ingest import Ingest
from workers.ingestor.manifest import Manifest
from workers.ingestor.store import CANDLE_SCHEMA, TICK_SCHEMA, PartFile, PartStore, inst_of

log = logging.getLogger(__name__)

LOCK_NAME = ".ingestor.lock"


def lock_data_dir(ticks_dir: Path) -> int:
    """Hold an exclusive lock on the ticks dir: two ingestors would write duplicates."""
    path = ticks_dir / LOCK_NAME
    try:
        ticks_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise ConfigError(f"--data-dir: cannot write {path}: {exc.strerror or exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise ConfigError(f"{ticks_dir}: another ingestor (pid {holder}) is writing here; "
                          "stop it or use another --data-dir") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


@dataclass
class Stores:
    """The two datasets and the manifest that lists them."""

    manifest: Manifest
    ticks: PartStore
    candles: PartStore


def _regroup(parts: dict[str, PartFile]) -> dict[str, dict[str, PartFile]]:
    out: dict[str, dict[str, PartFile]] = defaultdict(dict)
    for rel, part in parts.items():
        out[inst_of(rel)][rel] = part
    return out


def open_stores(settings: Settings) -> Stores:
    """Load the manifest and make it agree with the parts on disk."""
    manifest = Manifest.load(settings.manifest_path)
    manifest.source = {"ws_url": settings.ws_url, "rest_url": settings.rest_url}
    ticks = PartStore(settings.data_dir, "ticks", TICK_SCHEMA)
    candles = PartStore(settings.data_dir, "candles_1m", CANDLE_SCHEMA)
    listed = {rel: p for r in manifest.instruments.values() for rel, p in r.files.items()}
    tick_parts, adopted, dropped = recover(ticks, listed)
    listed_c = {rel: p for r in manifest.instruments.values() for rel, p in r.candles.files.items()}
    candle_parts, adopted_c, dropped_c = recover(candles, listed_c)
    by_inst, by_inst_c = _regroup(tick_parts), _regroup(candle_parts)
    for inst in set(by_inst) | set(by_inst_c) | set(manifest.instruments):
        rec = manifest.inst(inst)
        rec.files = by_inst.get(inst, {})
        rec.candles.files = by_inst_c.get(inst, {})
    if adopted or dropped or adopted_c or dropped_c:
        manifest.save()
    return Stores(manifest, ticks, candles)


def _newest(store: PartStore, parts: dict[str, PartFile], columns: list[str],
            limit: int) -> tuple[pa.Table | None, bool]:
    """The newest `limit` rows (by ts) of an instrument's parts, and whether older ones exist."""
    tables, rows = [], 0
    ordered = sorted(parts.values(), key=lambda p: p.last_ts, reverse=True)
    for i, part in enumerate(ordered):
        tables.append(store.read(part.path, columns))
        rows += part.rows
        if rows >= limit and all(p.last_ts <= part.first_ts for p in ordered[i + 1:]):
            break
    if not tables:
        return None, False
    table = pa.concat_tables(tables).sort_by("ts")
    truncated = table.num_rows > limit or rows < sum(p.rows for p in parts.values())
    return table.slice(max(0, table.num_rows - limit)), truncated


def restore_books(ingest: Ingest, stores: Stores) -> None:
    """Reload each instrument's de-dup window, bar window and watermark from its parts."""
    for inst, book in ingest.books.items():
        rec = stores.manifest.instruments.get(inst)
        if rec is None:
            continue
        table, truncated = _newest(stores.ticks, rec.files, ["ts", "trade_id"], book.window.size)
        if table is not None and table.num_rows:
            ts = table.column("ts").cast(pa.int64()).to_pylist()
            ids = table.column("trade_id").to_pylist()
            book.window.restore(zip(ts, ids), ts[-1], ids[-1], floor_ts=ts[0] if truncated else -1)
            rec.last_trade_id, rec.last_ts_ms = book.window.last_id, book.window.last_ts
            book.gap = PendingGap(book.window.last_ts, book.window.last_id, "restart")
            log.info("%s: resuming after trade %s at %d (%d ids restored)", inst,
                     book.window.last_id, book.window.last_ts, len(book.window))
        bars, _ = _newest(stores.candles, rec.candles.files, ["ts"], book.bars.size)
        if bars is not None and bars.num_rows:
            for bar in bars.column("ts").cast(pa.int64()).to_pylist():
                book.bars.add(bar)
        through = rec.candles.complete_through_ms
        if through is None and bars is not None and bars.num_rows:
            through = pc.max(bars.column("ts").cast(pa.int64())).as_py()
        book.tracker.complete_through = through
