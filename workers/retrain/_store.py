"""Read the ingestor's Parquet store: a consistent snapshot of confirmed 1m candles and ticks.

The ingestor (workers/ingestor) lists every part in `ticks/manifest.json`, its proof. That list
is the consistent snapshot, with one race: compaction writes a merged part, unlinks the parts it
replaces, and only then rewrites the manifest. So a date directory is read from the manifest's
list when every listed part is still there, and otherwise from the disk: every part on disk
except those another part on disk says it replaces (`proofwatch.replaces` in its Parquet
metadata) -- the same rule the ingestor's own crash recovery uses. A part that vanishes while
it is being read sends its directory back to the disk view. Candles are de-duplicated by
(inst, ts) anyway (a bar may be stored from both the WebSocket and REST; the REST row wins).
Only confirmed bars are ever stored by the ingestor. Ticks are reduced to 5-minute aggregates
part by part (_ticks.py).

Nothing here writes to the ingestor's directories: no manifest repair, no temp-file clean-up
(tick reductions are cached under the models directory).
"""

from __future__ import annotations

import json
import logging
import os
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from workers.ingestor.store import META_REPLACES, PART_RE
from workers.retrain._ticks import Reducer, combine
from workers.retrain.errors import DataError

log = logging.getLogger(__name__)

MANIFEST = Path("ticks") / "manifest.json"
CANDLES, TICKS = "candles_1m", "ticks"
CANDLE_COLUMNS = ["ts", "open", "high", "low", "close", "vol", "vol_currency_quote", "source"]
READ_ATTEMPTS = 3
DAY_MS = 86_400_000


@dataclass
class InstData:
    """What the store holds for one instrument (ts in ms since the epoch, UTC)."""

    candles: pd.DataFrame  # ts, open, high, low, close, vol, vol_quote; sorted, unique ts
    ticks: pd.DataFrame | None = None  # per 5-minute bar: ts, trades, buy_vol, sell_vol; None: no ticks
    tick_span: tuple[int, int] | None = None  # first and last stored trade
    tick_gaps: list[tuple[int, int]] = field(default_factory=list)  # inclusive, trades may be missing
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class Snapshot:
    """Every requested instrument's data, and how it was read."""

    instruments: dict[str, InstData]
    source: str  # "manifest" or "disk"
    manifest_updated_at: str | None


def load(data_dir: Path, instruments: tuple[str, ...], days: float,
         cache_dir: Path | None = None) -> Snapshot:
    """Read the last `days` of candles (and the ticks of the same dates, reduced to 5-minute
    aggregates, cached under `cache_dir`) for `instruments` (all in the store when empty)."""
    manifest = _read_manifest(data_dir)
    listed: dict[str, dict[str, list[str]]] = {CANDLES: {}, TICKS: {}}
    gaps: dict[str, list[tuple[int, int]]] = {}
    if manifest is not None:
        for inst, rec in (manifest.get("instruments") or {}).items():
            listed[TICKS][inst] = [str(p["path"]) for p in rec.get("files") or []]
            listed[CANDLES][inst] = [str(p["path"]) for p in (rec.get("candles") or {}).get("files") or []]
            gaps[inst] = [(int(g["start_ms"]), int(g["end_ms"])) for g in rec.get("gaps") or []]
    else:
        log.warning("%s not found: reading the parts on disk (no gap records: tick features are "
                    "trusted wherever ticks exist)", data_dir / MANIFEST)
        for dataset in (CANDLES, TICKS):
            for inst_dir in sorted((data_dir / dataset).glob("inst=*")):
                inst = inst_dir.name.removeprefix("inst=")
                listed[dataset][inst] = [_rel(data_dir, p) for p in sorted(inst_dir.glob("date=*/part-*.parquet"))]
    available = sorted(i for i, parts in listed[CANDLES].items() if parts)
    wanted = instruments or tuple(available)
    if not wanted:
        raise DataError(f"no 1-minute candles in {data_dir / CANDLES}: has the ingestor run "
                        f"(python -m workers.ingestor, with its data dir = {data_dir})?")
    missing = [i for i in wanted if i not in available]
    if missing:
        raise DataError(f"no 1-minute candles for {', '.join(missing)} in {data_dir / CANDLES} "
                        f"(the store has: {', '.join(available) or 'nothing'}); add them to the "
                        "ingestor's --instruments or drop them from --instruments")
    out: dict[str, InstData] = {}
    reducer = Reducer(data_dir, cache_dir)
    listed_ok = manifest is not None  # without a manifest every directory is read from the disk
    for inst in wanted:
        newest = max(_date_of(p) for p in listed[CANDLES][inst])
        first_day = _day_back(newest, days)

        def read_candles(rel: str) -> pa.Table:
            return pq.read_table(data_dir / rel, columns=CANDLE_COLUMNS)

        candles, cinfo = _read_dataset(data_dir, listed[CANDLES][inst], first_day, read_candles, listed_ok)
        cframe, dup_c = _candle_frame(candles)
        if cframe.empty:
            raise DataError(f"{inst}: the store lists candle parts but they hold no rows")
        cut = int(cframe["ts"].iloc[-1]) - int(days * DAY_MS)
        cframe = cframe[cframe["ts"] > cut].reset_index(drop=True)
        before = (reducer.hits, reducer.misses, reducer.duplicates)
        reduced, tinfo = _read_dataset(data_dir, listed[TICKS].get(inst, []), first_day, reducer, listed_ok)
        ticks, span = combine([reduced] if reduced is not None else [], cut)
        reducer.prune(inst)
        out[inst] = InstData(cframe, ticks, span, gaps.get(inst, []), {
            "candles_1m": len(cframe), "candle_duplicates": dup_c, "candle_parts": cinfo,
            "ticks": 0 if ticks is None else int(ticks["trades"].sum()),
            "tick_duplicates": reducer.duplicates - before[2], "tick_parts": tinfo,
            "tick_parts_cached": reducer.hits - before[0], "tick_parts_reduced": reducer.misses - before[1],
            "tick_gaps": len(gaps.get(inst, [])),
        })
    return Snapshot(out, "manifest" if manifest is not None else "disk",
                    None if manifest is None else manifest.get("updated_at"))


def _read_manifest(data_dir: Path) -> dict[str, Any] | None:
    path = data_dir / MANIFEST
    try:
        doc = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read the ingestor's manifest ({exc}); the ingestor "
                        "rebuilds it from the parts at its next start") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("instruments"), dict):
        raise DataError(f"{path}: not an ingestor manifest (no 'instruments' object)")
    return doc


def _rel(data_dir: Path, path: Path) -> str:
    return path.relative_to(data_dir).as_posix()


def _date_of(rel: str) -> str:
    return rel.rsplit("date=", 1)[1].split("/", 1)[0]


def _day_back(newest: str, days: float) -> str:
    day = datetime.strptime(newest, "%Y-%m-%d").replace(tzinfo=timezone.utc).timestamp() * 1000
    back = int(day) - int(np.ceil(days)) * DAY_MS
    return datetime.fromtimestamp(back / 1000, tz=timezone.utc).strftime("%Y-%m-%d")


def _read_dataset(data_dir: Path, parts: list[str], first_day: str, read: Callable[[str], pa.Table],
                  listed_ok: bool) -> tuple[pa.Table | None, dict[str, int]]:
    """`read` of every listed part dated >= first_day, one date directory at a time (from the
    list while it is intact and `listed_ok`, else from the disk view), concatenated."""
    by_dir: dict[str, list[str]] = defaultdict(list)
    for rel in parts:
        if _date_of(rel) >= first_day:
            by_dir[rel.rsplit("/", 1)[0]].append(rel)
    tables: list[pa.Table] = []
    info = {"parts": 0, "dirs": len(by_dir), "dirs_from_disk": 0}
    for rel_dir, rels in sorted(by_dir.items()):
        for attempt in range(READ_ATTEMPTS):
            if attempt or not listed_ok or not all((data_dir / r).is_file() for r in rels):
                rels = _disk_view(data_dir, rel_dir)
                info["dirs_from_disk"] += attempt == 0
            try:
                got = [read(r) for r in rels]
            except FileNotFoundError:
                continue  # compacted under us: the disk view has the merged part
            except (OSError, pa.ArrowException) as exc:
                raise DataError(f"{data_dir / rel_dir}: cannot read a Parquet part: {exc}") from exc
            tables.extend(t.replace_schema_metadata(None) for t in got)
            info["parts"] += len(rels)
            break
        else:
            raise DataError(f"{data_dir / rel_dir}: parts kept vanishing while being read "
                            f"({READ_ATTEMPTS} attempts); is something deleting the store?")
    if not tables:
        return None, info
    return pa.concat_tables(tables), info


def _disk_view(data_dir: Path, rel_dir: str) -> list[str]:
    """The parts of one date directory that hold data exactly once (compaction's rule)."""
    directory = data_dir / rel_dir
    try:
        names = sorted(e.name for e in os.scandir(directory) if PART_RE.match(e.name))
    except FileNotFoundError:
        return []
    replaced: set[str] = set()
    for name in names:
        if "-L0-" in name:
            continue
        try:
            meta = pq.read_schema(directory / name).metadata or {}
        except FileNotFoundError:
            continue
        except (OSError, pa.ArrowException) as exc:
            raise DataError(f"{directory / name}: cannot read the Parquet footer: {exc}") from exc
        if raw := meta.get(META_REPLACES):
            replaced.update(json.loads(raw))
    return [f"{rel_dir}/{n}" for n in names if n not in replaced]


def _candle_frame(table: pa.Table | None) -> tuple[pd.DataFrame, int]:
    """Sorted 1m candles with one row per ts (a REST row wins over a WebSocket one)."""
    cols = ["ts", "open", "high", "low", "close", "vol", "vol_quote"]
    if table is None or table.num_rows == 0:
        return pd.DataFrame({c: pd.Series(dtype="int64" if c == "ts" else "float64") for c in cols}), 0
    frame = pd.DataFrame({
        "ts": table.column("ts").cast(pa.int64()).to_numpy(),
        "open": table.column("open").to_numpy(), "high": table.column("high").to_numpy(),
        "low": table.column("low").to_numpy(), "close": table.column("close").to_numpy(),
        "vol": table.column("vol").to_numpy(),
        "vol_quote": table.column("vol_currency_quote").to_numpy(),
        "rest": pc.equal(table.column("source"), "rest").to_numpy(zero_copy_only=False),
    })
    frame = frame.sort_values(["ts", "rest"], kind="stable")
    before = len(frame)
    frame = frame.drop_duplicates("ts", keep="last")
    return frame[cols].reset_index(drop=True), before - len(frame)
