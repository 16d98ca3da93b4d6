"""Parquet parts: `<root>/inst=<INST>/date=<YYYY-MM-DD>/part-*.parquet`, written atomically.

Prices are float64, parsed from BloFin's decimal strings. A float64 carries 15-17 significant
digits and BloFin quotes at most ~10, so `repr(price)` gives back the exchange's digits; float64
is what every downstream tool (pyarrow, pandas, numpy, scikit-learn) computes with, without
decimal's per-value cost. Timestamps are timestamp[ms, tz=UTC].

A flush writes one level-0 part per (instrument, UTC date) present in the batch. Compaction
(compact.py) merges parts of a date into higher levels, so a day stays a handful of files.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from workers.ingestor.atomic import fsync_dir, is_temp, write_atomic
from workers.ingestor.errors import StoreError

DAY_MS = 86_400_000
TS_TYPE = pa.timestamp("ms", tz="UTC")
TICK_SCHEMA = pa.schema([
    ("ts", TS_TYPE), ("inst", pa.string()), ("trade_id", pa.string()),
    ("price", pa.float64()), ("size", pa.float64()), ("side", pa.string()),
])
CANDLE_SCHEMA = pa.schema([
    ("ts", TS_TYPE), ("inst", pa.string()), ("open", pa.float64()), ("high", pa.float64()),
    ("low", pa.float64()), ("close", pa.float64()), ("vol", pa.float64()),
    ("vol_currency", pa.float64()), ("vol_currency_quote", pa.float64()),
    ("source", pa.string()),  # "ws" (confirmed push) or "rest" (backfilled / reconciled)
])
META_LEVEL = b"proofwatch.level"
META_REPLACES = b"proofwatch.replaces"
PART_RE = re.compile(r"^part-(\d{8}T\d{9}Z)-L(\d+)-([0-9a-f]{8})\.parquet$")
COMPRESSION = "zstd"


@dataclass(frozen=True)
class PartFile:
    """One visible part: `path` is relative to the data dir (e.g. "ticks/inst=X/date=D/part-...")."""

    path: str
    rows: int
    sha256: str
    bytes: int
    first_ts: int
    last_ts: int
    level: int

    @property
    def date_dir(self) -> str:
        return self.path.rsplit("/", 1)[0]

    def to_json(self) -> dict[str, object]:
        return {"path": self.path, "rows": self.rows, "sha256": self.sha256,
                "bytes": self.bytes, "first_ts": self.first_ts, "last_ts": self.last_ts,
                "level": self.level}

    @classmethod
    def from_json(cls, doc: dict[str, object]) -> PartFile:
        return cls(str(doc["path"]), int(doc["rows"]), str(doc["sha256"]),  # type: ignore[call-overload]
                   int(doc["bytes"]), int(doc["first_ts"]), int(doc["last_ts"]),  # type: ignore[call-overload]
                   int(doc.get("level", 0)))  # type: ignore[call-overload]


def utc_date(ts_ms: int) -> str:
    """YYYY-MM-DD of a ms timestamp, in UTC."""
    return datetime.fromtimestamp(ts_ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d")


def iso_ms(ts_ms: int) -> str:
    """ISO 8601 with milliseconds, UTC."""
    return datetime.fromtimestamp(ts_ms / 1000, tz=timezone.utc).isoformat(timespec="milliseconds")


def part_name(first_ts: int, level: int) -> str:
    stamp = datetime.fromtimestamp(first_ts / 1000, tz=timezone.utc).strftime("%Y%m%dT%H%M%S")
    return f"part-{stamp}{first_ts % 1000:03d}Z-L{level}-{secrets.token_hex(4)}.parquet"


def level_of(name: str) -> int | None:
    """The compaction level encoded in a part's name; None if it is not a part."""
    match = PART_RE.match(name)
    return int(match.group(2)) if match else None


class PartStore:
    """The parts of one dataset (ticks or candles_1m) under `data_dir/name`."""

    def __init__(self, data_dir: Path, name: str, schema: pa.Schema) -> None:
        self.data_dir = data_dir
        self.name = name
        self.root = data_dir / name
        self.schema = schema

    def abspath(self, rel: str) -> Path:
        return self.data_dir / rel

    def date_dir(self, inst: str, date: str) -> str:
        return f"{self.name}/inst={inst}/date={date}"

    def write(self, inst: str, table: pa.Table) -> list[PartFile]:
        """Write `table` (one instrument) as level-0 parts, one per UTC date; sorted by ts."""
        if table.num_rows == 0:
            return []
        ts = table.column("ts").cast(pa.int64())
        lo, hi = pc.min(ts).as_py(), pc.max(ts).as_py()
        if lo // DAY_MS == hi // DAY_MS:
            return [self.write_part(self.date_dir(inst, utc_date(lo)), table, level=0)]
        days = pc.divide(ts, pa.scalar(DAY_MS, pa.int64()))
        parts = []
        for day in pc.unique(days).to_pylist():
            chunk = table.filter(pc.equal(days, day))
            parts.append(self.write_part(self.date_dir(inst, utc_date(day * DAY_MS)), chunk, level=0))
        return parts

    def write_part(self, rel_dir: str, table: pa.Table, *, level: int,
                   replaces: list[str] | None = None) -> PartFile:
        """Sort by ts, serialise, write atomically; return its description (sha256 of the bytes)."""
        table = table.sort_by("ts")
        meta = {META_LEVEL: str(level).encode()}
        if replaces:
            meta[META_REPLACES] = json.dumps(replaces).encode()
        table = table.cast(self.schema).replace_schema_metadata(meta)
        ts = table.column("ts").cast(pa.int64())
        first, last = pc.min(ts).as_py(), pc.max(ts).as_py()
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression=COMPRESSION)
        buf = sink.getvalue()
        directory = self.data_dir / rel_dir
        directory.mkdir(parents=True, exist_ok=True)
        name = part_name(first, level)
        write_atomic(directory / name, buf)
        return PartFile(f"{rel_dir}/{name}", table.num_rows, hashlib.sha256(buf).hexdigest(),
                        buf.size, first, last, level)

    def read(self, rel: str, columns: list[str] | None = None) -> pa.Table:
        """One part's rows (no hive-partition columns are added from the path)."""
        try:
            return pq.ParquetFile(self.abspath(rel)).read(columns=columns)
        except (OSError, pa.ArrowException) as exc:
            raise StoreError(self.abspath(rel), f"cannot read Parquet part: {exc}") from exc

    def describe(self, rel: str) -> PartFile:
        """Describe an existing part from its bytes (to adopt a part the manifest missed)."""
        path = self.abspath(rel)
        data = path.read_bytes()
        table = self.read(rel, ["ts"])
        ts = table.column("ts").cast(pa.int64())
        if table.num_rows == 0:
            raise StoreError(path, "part has no rows")
        return PartFile(rel, table.num_rows, hashlib.sha256(data).hexdigest(), len(data),
                        pc.min(ts).as_py(), pc.max(ts).as_py(), level_of(path.name) or 0)

    def replaces(self, rel: str) -> list[str]:
        """The part names a compacted part replaced (from its Parquet metadata)."""
        try:
            meta = pq.read_schema(self.abspath(rel)).metadata or {}
        except (OSError, pa.ArrowException) as exc:
            raise StoreError(self.abspath(rel), f"cannot read Parquet footer: {exc}") from exc
        raw = meta.get(META_REPLACES)
        return list(json.loads(raw)) if raw else []

    def scan(self) -> Iterator[str]:
        """Every visible part (relative paths); removes temp files a crash left behind."""
        if not self.root.is_dir():
            return
        for inst_dir in sorted(self.root.glob("inst=*")):
            for date_dir in sorted(inst_dir.glob("date=*")):
                for entry in sorted(os.scandir(date_dir), key=lambda e: e.name):
                    if is_temp(entry.name):
                        os.unlink(entry.path)
                    elif PART_RE.match(entry.name):
                        yield f"{self.name}/{inst_dir.name}/{date_dir.name}/{entry.name}"

    def unlink(self, rels: list[str]) -> None:
        """Remove parts (already dropped from the manifest); missing ones are fine."""
        dirs = set()
        for rel in rels:
            path = self.abspath(rel)
            try:
                path.unlink()
            except FileNotFoundError:
                continue
            dirs.add(path.parent)
        for directory in dirs:
            fsync_dir(directory)


def inst_of(rel: str) -> str:
    """The instrument of a part path ("ticks/inst=BTC-USDT/date=.../part-...")."""
    return rel.split("/")[1].removeprefix("inst=")
