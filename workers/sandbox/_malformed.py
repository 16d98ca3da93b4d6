"""Corrupting a WS push on purpose (faults.malformed): three kinds, in turn."""

from __future__ import annotations

import json
from typing import Any

KINDS = ("invalid_json", "wrong_types", "missing_fields")


def malform(text: str, ordinal: int) -> str:
    """The push `text` spoilt in the way picked by `ordinal` (1, 2, 3, 4, ... cycle KINDS)."""
    kind = KINDS[(ordinal - 1) % len(KINDS)]
    if kind == "invalid_json":
        return text[: max(1, len(text) // 2)]
    msg: dict[str, Any] = json.loads(text)
    data = msg.get("data") or []
    if kind == "wrong_types":
        msg["data"] = [_numbers(item) for item in data]
    else:
        msg["data"] = [_missing(item) for item in data]
    return json.dumps(msg, separators=(",", ":"))


def _numbers(item: Any) -> Any:
    """Trade fields / candle columns sent as JSON numbers instead of strings."""
    if isinstance(item, dict):
        out = dict(item)
        for key in ("tradeId", "ts", "size"):
            if key in out:
                out[key] = int(out[key])
        if "price" in out:
            out["price"] = float(out["price"])
        return out
    if isinstance(item, list):
        return [float(v) for v in item]
    return item


def _missing(item: Any) -> Any:
    """A trade without tradeId and price; a candle row cut to 5 columns."""
    if isinstance(item, dict):
        return {k: v for k, v in item.items() if k not in ("tradeId", "price")}
    if isinstance(item, list):
        return item[:5]
    return item
