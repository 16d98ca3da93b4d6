"""A sandbox per module and an emulator-shaped odds.json built from the sportsbook truth."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from workers.sandbox.server import SandboxHandle, running_sandbox


@pytest.fixture(scope="module")
def sandbox() -> Iterator[SandboxHandle]:
    with running_sandbox(seed=7, rate=5.0, instruments=["BTC-USDT"], port=0,
                         rest_per_min=0) as handle:
        yield handle


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def odds_json_from_truth(url: str, captured_at: str | None = None) -> dict[str, Any]:
    """What a perfect OCR of every sportsbook page gives: the emulator's odds.json shape."""
    truth = httpx.get(url + "/_sandbox/sportsbook/truth").json()
    cap = captured_at or now_iso()
    shots, markets, boosts = [], [], []
    for k, sport in enumerate(truth["sports"], 1):
        shot = f"{k:02d}-{sport['key']}"
        shots.append({"shot": shot, "png": f"screens/{shot}.png", "extraction": "x",
                      "captured_at": cap, "markets": len(sport["events"])})
        for ev in sport["events"]:
            when = datetime.fromisoformat(ev["commence_time"].replace("Z", "+00:00"))
            markets.append({"shot": shot, "section": f"{sport['title']} Moneyline", "market": "h2h",
                            "event": when.strftime("%a %H:%M").upper(), "complete": True,
                            "overround": None, "flags": [], "outcomes": [
                                {"name": o["shown"], "raw_name": o["shown"], "name_conf": 95,
                                 "odds": o["odds"], "format": sport["format"],
                                 "decimal": o["decimal"], "raw": o["odds"], "conf": 95, "flags": []}
                                for o in ev["outcomes"]]})
        for b in sport["boosts"]:
            boosts.append({"shot": shot, "selection": b["shown"], "flags": [],
                           "was": {"odds": b["was"]}, "now": {"odds": b["now"], "decimal": _dec(b["now"])}})
    return {"schema": "proofwatch.emulator.odds/1", "book": "sandbook", "run_id": None,
            "backend": "browser", "engine": "test", "generated_at": cap, "screenshots": shots,
            "markets": markets, "boosts": boosts,
            "summary": {"screenshots": len(shots), "markets": len(markets), "outcomes": 0,
                        "odds_read": 0, "flagged": 0}}


def _dec(text: str) -> float:
    if "/" in text:
        n, d = text.split("/")
        return 1 + int(n) / int(d)
    if text.startswith(("+", "-")):
        a = int(text)
        return 1 + a / 100 if a > 0 else 1 + 100 / -a
    return float(text)


def write_odds_json(path: Path, doc: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path
