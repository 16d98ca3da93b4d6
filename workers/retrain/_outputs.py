"""Writing the proofs: atomic files, JSON without NaN, walk_forward.csv."""

from __future__ import annotations

import csv
import io
import json
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from workers.atomic import write_atomic

CSV_COLUMNS = [
    "fold", "instrument", "train_start", "train_end", "test_start", "test_end", "train_rows",
    "train_accuracy", "test_bars", "labelled", "accuracy", "f1", "base_rate", "shuffled_accuracy",
    "trades", "win_rate", "sharpe", "sharpe_note", "max_drawdown", "profit_factor", "expectancy",
    "total_return", "exposure", "vol_min", "vol_max",
]


def iso(ms: int | None) -> str | None:
    """ISO 8601 UTC of a ms timestamp."""
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def clean(value: Any) -> Any:
    """A JSON-safe copy: numpy scalars to Python, NaN and infinities to None."""
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if isinstance(value, np.ndarray):
        return [clean(v) for v in value.tolist()]
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (float, np.floating)):
        f = float(value)
        return f if math.isfinite(f) else None
    return value


def write_json(path: Path, doc: dict[str, Any]) -> None:
    write_atomic(path, json.dumps(clean(doc), indent=1, allow_nan=False).encode())


def _row(fold: str, inst: str, f: dict[str, Any] | None, cls: dict[str, Any], shuffled: float | None,
         trading: dict[str, Any], vol: dict[str, Any] | None) -> dict[str, Any]:
    f = f or {}
    return {
        "fold": fold, "instrument": inst, "train_start": f.get("train_start"),
        "train_end": f.get("train_end"), "test_start": f.get("test_start"),
        "test_end": f.get("test_end"), "train_rows": f.get("train_rows"),
        "train_accuracy": f.get("train_accuracy"), "test_bars": trading.get("bars"),
        "labelled": cls.get("labelled"), "accuracy": cls.get("accuracy"), "f1": cls.get("f1"),
        "base_rate": cls.get("base_rate"), "shuffled_accuracy": shuffled,
        **{k: trading.get(k) for k in ("trades", "win_rate", "sharpe", "sharpe_note", "max_drawdown",
                                       "profit_factor", "expectancy", "total_return", "exposure")},
        "vol_min": (vol or {}).get("min"), "vol_max": (vol or {}).get("max"),
    }


def walk_forward_csv(m: dict[str, Any]) -> bytes:
    """One row per fold and instrument ("ALL" is the portfolio), then the whole period."""
    rows = []
    for f in m["folds"]:
        rows.append(_row(str(f["fold"]), "ALL", f, f["classification"], f["shuffled_accuracy"],
                         f["trading"], f["vol"]))
        for inst, per in f["per_instrument"].items():
            rows.append(_row(str(f["fold"]), inst, f, per["classification"], None, per["trading"], None))
    o = m["overall"]
    rows.append(_row("all", "ALL", None, o["classification"], o["classification"].get("shuffled_accuracy"),
                     o["trading"], o.get("vol")))
    for inst, per in m["per_instrument"].items():
        rows.append(_row("all", inst, None, per["classification"], None, per["trading"], None))
    out = io.StringIO()
    writer = csv.DictWriter(out, CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else _cell(v)) for k, v in clean(row).items()})
    return out.getvalue().encode()


def _cell(value: Any) -> Any:
    return f"{value:.6g}" if isinstance(value, float) else value
