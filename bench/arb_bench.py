"""Arb matcher quality and speed against the sandbox's planted truth.

    python -m bench.arb_bench [--seeds 7,8,9] [--rows 100000] [--out bench/results/arb_bench.json]

Quality, per seed: a sandbox on loopback; an emulator-shaped odds.json from the sportsbook
page truth with OCR-style name noise (look-alike characters, a dropped or doubled letter, case)
on a seeded third of the names; the real job (`workers.arb.run_job`) against the sandbox's
The Odds API v4 feed; found opportunities scored against /_sandbox/odds/truth (planted arbs =
positives, stale decoys and every other event = negatives). Targets: recall 1.0 (every
planted arb), precision 1.0 (no false positive).
Speed: `matching.match` on `--rows` OCR outcome rows (noisy names, 5 sports, events spread
over 200 days) against the matching API events; target < 2 s.
Prints a markdown table and writes the JSON results.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

from workers.arb import Settings, run_job
from workers.arb.matching import match
from workers.arb.names import Resolver, load_aliases
from workers.sandbox.odds_model import OddsModel
from workers.sandbox.server import running_sandbox
from workers.sdk import Run

REPO = Path(__file__).resolve().parents[1]
_LOOKALIKE = {"o": "0", "O": "0", "l": "1", "I": "l", "S": "5", "e": "c", "m": "rn", "B": "8"}


def noisy(name: str, rng: random.Random) -> str:
    """One OCR-style error: a look-alike character, a dropped or doubled letter."""
    if len(name) < 6:
        return name
    kind = rng.randrange(3)
    i = rng.randrange(1, len(name) - 1)
    if kind == 0:
        spots = [k for k, c in enumerate(name) if c in _LOOKALIKE]
        if spots:
            k = rng.choice(spots)
            return name[:k] + _LOOKALIKE[name[k]] + name[k + 1:]
    if kind == 1:
        return name[:i] + name[i + 1:]
    return name[:i] + name[i] + name[i:]


def odds_json(url: str, seed: int) -> dict[str, Any]:
    truth = httpx.get(url + "/_sandbox/sportsbook/truth").json()
    rng = random.Random(seed)
    cap = datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    shots, markets = [], []
    for k, sport in enumerate(truth["sports"], 1):
        shot = f"{k:02d}-{sport['key']}"
        shots.append({"shot": shot, "captured_at": cap})
        for ev in sport["events"]:
            when = datetime.fromisoformat(ev["commence_time"].replace("Z", "+00:00"))
            outs = []
            for o in ev["outcomes"]:
                shown = o["shown"] if o["shown"] == "Draw" or rng.random() > 1 / 3 else noisy(o["shown"], rng)
                outs.append({"name": shown, "decimal": o["decimal"], "odds": o["odds"], "flags": []})
            markets.append({"shot": shot, "section": f"{sport['title']} Moneyline", "market": "h2h",
                            "event": when.strftime("%a %H:%M").upper(), "flags": [], "outcomes": outs})
    return {"book": "sandbook", "generated_at": cap, "screenshots": shots, "markets": markets,
            "boosts": []}


def quality(seed: int) -> dict[str, Any]:
    with running_sandbox(seed=seed, rate=5.0, instruments=["BTC-USDT"], port=0, rest_per_min=0) as sb, \
            tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "odds.json"
        src.write_text(json.dumps(odds_json(sb.http_url, seed)))
        started = time.perf_counter()
        doc = run_job(Settings(odds_json=src, out=Path(tmp), api_url=sb.http_url, api_key="bench"),
                      Run(None))
        seconds = time.perf_counter() - started
        truth = httpx.get(sb.http_url + "/_sandbox/odds/truth").json()
    planted = {a["event_id"] for a in truth["arbs"]}
    found = {o["event_id"] for o in doc["opportunities"]}
    tp = len(found & planted)
    return {"seed": seed, "planted": len(planted), "found": len(found), "true_positives": tp,
            "false_positives": sorted(found - planted), "missed": sorted(planted - found),
            "decoys_found": sorted(found & {d["event_id"] for d in truth["decoys"]}),
            "precision": tp / len(found) if found else 1.0, "recall": tp / len(planted),
            "matched": doc["summary"]["matched"], "unmatched": doc["summary"]["unmatched"],
            "run_seconds": round(seconds, 3)}


def speed(rows: int, seed: int = 7) -> dict[str, Any]:
    rng = random.Random(seed)
    base = OddsModel(seed)
    api, ocr = [], []
    days = 200
    for day in range(days):
        for ev in base.events():
            api.append({"event_id": f"{ev.id}-{day}", "sport": ev.sport.key, "home": ev.home.canonical,
                        "away": ev.away.canonical,
                        "commence": pd.Timestamp(ev.commence_ms + day * 86_400_000, unit="ms", tz="UTC")})
    evs = base.events()
    mid = 0
    while len(ocr) < rows:
        day = rng.randrange(days)
        ev = evs[rng.randrange(len(evs))]
        when = pd.Timestamp(ev.commence_ms + day * 86_400_000, unit="ms", tz="UTC")
        names = [base.display_name(ev.home), base.display_name(ev.away)] + (["Draw"] if ev.sport.draw else [])
        for n in names:
            ocr.append({"market_id": mid, "sport": ev.sport.key, "commence": when,
                        "name": noisy(n, rng) if rng.random() < 0.3 and n != "Draw" else n})
        mid += 1
    api_df, ocr_df = pd.DataFrame(api), pd.DataFrame(ocr[:rows])
    resolver = Resolver(load_aliases())
    started = time.perf_counter()
    matched, unmatched = match(ocr_df, api_df, resolver)
    seconds = time.perf_counter() - started
    return {"rows": len(ocr_df), "markets": int(ocr_df["market_id"].nunique()),
            "api_events": len(api_df), "unique_names": int(ocr_df["name"].nunique()),
            "matched": len(matched), "unmatched": len(unmatched), "seconds": round(seconds, 3),
            "rows_per_second": round(len(ocr_df) / seconds), "target_seconds": 2.0}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.arb_bench")
    p.add_argument("--seeds", default="7,8,9")
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "arb_bench.json")
    a = p.parse_args(argv)
    q = [quality(int(s)) for s in a.seeds.split(",") if s]
    sp = speed(a.rows)
    result = {"quality": q, "speed": sp,
              "ok": all(r["recall"] == 1.0 and r["precision"] == 1.0 for r in q) and sp["seconds"] < 2.0}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=1))
    print("| seed | planted | found | precision | recall | matched | unmatched |")
    print("|---|---|---|---|---|---|---|")
    for r in q:
        print(f"| {r['seed']} | {r['planted']} | {r['found']} | {r['precision']:.2f} | "
              f"{r['recall']:.2f} | {r['matched']} | {r['unmatched']} |")
    print(f"\nmatching {sp['rows']} rows ({sp['markets']} markets, {sp['unique_names']} unique names, "
          f"{sp['api_events']} API events): {sp['seconds']} s ({sp['rows_per_second']} rows/s), "
          f"{sp['matched']} matched, {sp['unmatched']} unmatched")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
