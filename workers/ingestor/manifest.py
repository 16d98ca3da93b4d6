"""data/ticks/manifest.json: the ingestor's proof of work, rewritten atomically at each flush.

    {"schema": "proofwatch.ingestor.manifest/1", "updated_at": iso, "root": "..",
     "price_type": "float64", "source": {"ws_url", "rest_url"},
     "totals": {"ticks", "candles", "files", "gaps", "malformed", "batches"},
     "batches": int, "malformed": int, "malformed_unattributed": int,
     "instruments": {INST: {
        "count", "first_ts", "last_ts" (ISO), "first_ts_ms", "last_ts_ms", "last_trade_id",
        "files": [{"path", "rows", "sha256", "bytes", "first_ts", "last_ts", "level"}],
        "gaps": [{"start_ms", "end_ms", "start", "end", "reason", "found_at", "recovered",
                  "candles": {"start_ms", "end_ms", "bars", "complete"}}],
        "gaps_total", "malformed", "duplicates", "reconnects", "recoveries", "recovered_trades",
        "blocked" (null, or the exchange's words refusing the instrument),
        "candles": {"count", "first_ts_ms", "last_ts_ms", "complete_through_ms", "files": [...],
                    "backfilled": [{"start_ms", "end_ms", "bars", "reason", "at"}],
                    "backfilled_total", "absent_bars"}}}}

File paths are relative to `<manifest dir>/<root>`, i.e. the data dir. Gap bounds are
inclusive: a trade that was not stored has start_ms <= ts <= end_ms of a recorded gap.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from workers.ingestor.atomic import write_atomic
from workers.ingestor.errors import StoreError
from workers.ingestor.messages import BAR_MS
from workers.ingestor.store import PartFile, iso_ms

log = logging.getLogger(__name__)

SCHEMA = "proofwatch.ingestor.manifest/1"
MAX_GAPS = 2000  # per instrument; older ones only count in gaps_total
MAX_BACKFILLS = 500


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


@dataclass
class CandleRecord:
    """What the manifest says about one instrument's 1-minute bars."""

    files: dict[str, PartFile] = field(default_factory=dict)
    complete_through_ms: int | None = None
    backfilled: list[dict[str, Any]] = field(default_factory=list)
    backfilled_total: int = 0
    absent_bars: int = 0

    def to_json(self) -> dict[str, Any]:
        files = sorted(self.files.values(), key=lambda p: p.path)
        return {
            "count": sum(p.rows for p in files),
            "first_ts_ms": min((p.first_ts for p in files), default=None),
            "last_ts_ms": max((p.last_ts for p in files), default=None),
            "complete_through_ms": self.complete_through_ms,
            "files": [p.to_json() for p in files],
            "backfilled": self.backfilled,
            "backfilled_total": self.backfilled_total,
            "absent_bars": self.absent_bars,
        }


@dataclass
class InstRecord:
    """What the manifest says about one instrument."""

    files: dict[str, PartFile] = field(default_factory=dict)
    last_trade_id: str = ""
    last_ts_ms: int | None = None
    gaps: list[dict[str, Any]] = field(default_factory=list)
    gaps_total: int = 0
    malformed: int = 0
    duplicates: int = 0
    reconnects: int = 0
    recoveries: int = 0
    recovered_trades: int = 0
    blocked: str | None = None  # the exchange's words when it refuses the instrument
    candles: CandleRecord = field(default_factory=CandleRecord)

    @property
    def count(self) -> int:
        return sum(p.rows for p in self.files.values())

    def add_gap(self, gap: dict[str, Any]) -> None:
        self.gaps.append(gap)
        self.gaps_total += 1
        del self.gaps[:-MAX_GAPS]

    def to_json(self) -> dict[str, Any]:
        files = sorted(self.files.values(), key=lambda p: p.path)
        first = min((p.first_ts for p in files), default=None)
        last = max((p.last_ts for p in files), default=None)
        return {
            "count": sum(p.rows for p in files),
            "first_ts": iso_ms(first) if first is not None else None,
            "last_ts": iso_ms(last) if last is not None else None,
            "first_ts_ms": first,
            "last_ts_ms": last,
            "last_trade_id": self.last_trade_id,
            "files": [p.to_json() for p in files],
            "gaps": self.gaps,
            "gaps_total": self.gaps_total,
            "malformed": self.malformed,
            "duplicates": self.duplicates,
            "reconnects": self.reconnects,
            "recoveries": self.recoveries,
            "recovered_trades": self.recovered_trades,
            "blocked": self.blocked,
            "candles": self.candles.to_json(),
        }


@dataclass
class Manifest:
    """The in-memory manifest; `save` writes it atomically."""

    path: Path
    source: dict[str, str] = field(default_factory=dict)
    instruments: dict[str, InstRecord] = field(default_factory=dict)
    batches: int = 0
    malformed_unattributed: int = 0

    def inst(self, name: str) -> InstRecord:
        return self.instruments.setdefault(name, InstRecord())

    @property
    def malformed(self) -> int:
        return self.malformed_unattributed + sum(r.malformed for r in self.instruments.values())

    @property
    def ticks(self) -> int:
        return sum(r.count for r in self.instruments.values())

    def to_json(self) -> dict[str, Any]:
        insts = {name: rec.to_json() for name, rec in sorted(self.instruments.items())}
        return {
            "schema": SCHEMA,
            "updated_at": now_iso(),
            "root": "..",
            "price_type": "float64",
            "source": self.source,
            "totals": {
                "ticks": sum(d["count"] for d in insts.values()),
                "candles": sum(d["candles"]["count"] for d in insts.values()),
                "files": sum(len(d["files"]) + len(d["candles"]["files"]) for d in insts.values()),
                "gaps": sum(d["gaps_total"] for d in insts.values()),
                "malformed": self.malformed,
                "batches": self.batches,
            },
            "batches": self.batches,
            "malformed": self.malformed,
            "malformed_unattributed": self.malformed_unattributed,
            "instruments": insts,
        }

    def dumps(self) -> bytes:
        return json.dumps(self.to_json(), indent=1).encode()

    def save(self, data: bytes | None = None) -> None:
        """Atomically replace the manifest file (pass `dumps()` made on the loop thread)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path, self.dumps() if data is None else data)

    @classmethod
    def load(cls, path: Path) -> Manifest:
        """Read an existing manifest; a missing one is empty, a corrupt one is set aside."""
        try:
            doc = json.loads(path.read_bytes())
            return cls._from_json(path, doc)
        except FileNotFoundError:
            return cls(path)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            aside = path.with_name(f"{path.name}.corrupt-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}")
            try:
                path.rename(aside)
            except OSError as rename_exc:
                raise StoreError(path, f"corrupt manifest ({exc}) and cannot set it aside: "
                                       f"{rename_exc}") from exc
            log.error("%s is corrupt (%s): set aside as %s; rebuilding from the parts on disk "
                      "(gap history and counters restart from zero)", path, exc, aside.name)
            return cls(path)

    @classmethod
    def _from_json(cls, path: Path, doc: dict[str, Any]) -> Manifest:
        if doc.get("schema") != SCHEMA:
            raise ValueError(f"schema is {doc.get('schema')!r}, expected {SCHEMA!r}")
        m = cls(path, source=dict(doc.get("source") or {}), batches=int(doc.get("batches", 0)),
                malformed_unattributed=int(doc.get("malformed_unattributed", 0)))
        for name, d in doc["instruments"].items():
            c = d.get("candles") or {}
            m.instruments[name] = InstRecord(
                files={p["path"]: PartFile.from_json(p) for p in d.get("files", [])},
                last_trade_id=str(d.get("last_trade_id") or ""),
                last_ts_ms=d.get("last_ts_ms"),
                gaps=list(d.get("gaps", [])),
                gaps_total=int(d.get("gaps_total", 0)),
                malformed=int(d.get("malformed", 0)),
                duplicates=int(d.get("duplicates", 0)),
                reconnects=int(d.get("reconnects", 0)),
                recoveries=int(d.get("recoveries", 0)),
                recovered_trades=int(d.get("recovered_trades", 0)),
                blocked=d.get("blocked"),
                candles=CandleRecord(
                    files={p["path"]: PartFile.from_json(p) for p in c.get("files", [])},
                    complete_through_ms=c.get("complete_through_ms"),
                    backfilled=list(c.get("backfilled", [])),
                    backfilled_total=int(c.get("backfilled_total", 0)),
                    absent_bars=int(c.get("absent_bars", 0)),
                ),
            )
        return m


def gap_record(start_ms: int, end_ms: int, reason: str, *, recovered: int,
               start_trade_id: str) -> dict[str, Any]:
    """One manifest gap: trades in [start_ms, end_ms] may be missing."""
    return {
        "start_ms": start_ms, "end_ms": end_ms, "start": iso_ms(start_ms), "end": iso_ms(end_ms),
        "reason": reason, "found_at": now_iso(), "after_trade_id": start_trade_id,
        "recovered": recovered,
        "candles": {"start_ms": start_ms - start_ms % BAR_MS, "end_ms": end_ms - end_ms % BAR_MS,
                    "bars": 0, "complete": False},
    }
