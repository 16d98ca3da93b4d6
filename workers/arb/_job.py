"""One arb run: inputs -> fetch -> match -> arbitrage + boosts -> arbs.json, matches.csv,
unmatched.csv (all in `out`, the run dir). Heartbeats per stage."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

from workers.atomic import write_atomic
from workers.arb.arbitrage import Quote, best_quotes, boost_ev, find_arb
from workers.arb.matching import match
from workers.arb.names import DRAW, Resolver, load_aliases
from workers.arb.sources import OcrBook, OddsApi, api_frames, read_ocr
from workers.sdk import Run

SCHEMA = "proofwatch.arb.arbs/1"
SPORTS = ("basketball_nba", "icehockey_nhl", "americanfootball_nfl", "soccer_epl",
          "mma_mixed_martial_arts")


@dataclass(frozen=True)
class Settings:
    odds_json: Path
    out: Path
    api_url: str = "http://127.0.0.1:8790"
    api_key: str = ""
    sports: tuple[str, ...] = SPORTS
    regions: str = "us"
    odds_format: str = "decimal"
    bankroll: float = 1000.0
    unit: float = 1.0
    margin: float = 0.005  # arb only when sum(1/d) < 1 - margin
    max_odds_age_s: float = 600.0
    window_min: float = 90.0
    name_threshold: float = 85.0


def run_job(s: Settings, run: Run, *, api: OddsApi | None = None,
            now: datetime | None = None) -> dict[str, Any]:
    """Do one run and write its outputs; returns the arbs.json document."""
    s.out.mkdir(parents=True, exist_ok=True)
    client = api or OddsApi(s.api_url, s.api_key, regions=s.regions, odds_format=s.odds_format)
    events: list[dict[str, Any]] = []
    try:
        for k, sport in enumerate(s.sports, 1):
            run.beat({"sports_fetched": k - 1}, phase="fetch", message=f"odds API: {sport}")
            events += client.odds(sport)
            run.beat({"sports_fetched": k, "api_events": len(events)}, phase="fetch",
                     message=f"odds API: {len(events)} events, quota remaining "
                             f"{client.quota.remaining}")
    finally:
        if api is None:
            client.close()
    now = now or datetime.now(timezone.utc)
    ev, quotes = api_frames(events, s.odds_format, now)
    titles = {t.upper(): k for k, t in zip(ev["sport"], ev["sport_title"])}
    ocr = read_ocr(s.odds_json, list(s.sports), titles)
    run.beat({"ocr_rows": len(ocr.rows)}, phase="match",
             message=f"matching {ocr.rows['market_id'].nunique()} OCR markets to {len(ev)} events")
    resolver = Resolver(load_aliases(), threshold=s.name_threshold)
    for sp, h, a in zip(ev["sport"], ev["home"], ev["away"]):
        resolver.add(sp, h)
        resolver.add(sp, a)
    matches, unmatched = match(ocr.rows, ev, resolver, pd.Timedelta(minutes=s.window_min))
    run.beat({"matched": len(matches), "unmatched": len(unmatched)}, phase="match",
             message=f"{len(matches)} matched, {len(unmatched)} unmatched")
    ocr_quotes = _ocr_quotes(ocr, matches, resolver, now)
    opportunities = _arbs(s, ev, quotes, ocr_quotes, matches, run)
    boosts = _boosts(s, ocr, ev, quotes, resolver)
    doc = {
        "schema": SCHEMA, "run_id": run.run_id or None,
        "generated_at": now.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "inputs": {"odds_json": str(ocr.path), "ocr_book": ocr.book,
                   "ocr_captured_at": _iso(ocr.rows["captured_at"].max()) if len(ocr.rows) else None,
                   "api": {"url": s.api_url, "sports": list(s.sports), "regions": s.regions,
                           "odds_format": s.odds_format, "requests": client.requests,
                           "quota": asdict(client.quota), "events": len(ev)}},
        "settings": {k: v for k, v in asdict(s).items() if k not in ("odds_json", "out", "api_key")
                     } | {"sports": list(s.sports)},
        "opportunities": opportunities, "boosts": boosts,
        "summary": {"events": len(ev), "ocr_markets": int(ocr.rows["market_id"].nunique()),
                    "matched": len(matches), "unmatched": len(unmatched),
                    "opportunities": len(opportunities),
                    "positive_ev_boosts": sum(1 for b in boosts if b.get("positive_ev"))}}
    run.beat({"written": 0}, phase="write", message="writing arbs.json, matches.csv, unmatched.csv")
    _write_csv(s.out / "matches.csv", matches)
    _write_csv(s.out / "unmatched.csv", unmatched)
    _write_json(s.out / "arbs.json", doc)
    run.beat({"written": 3}, phase="done", message=f"{len(opportunities)} arbitrage opportunities, "
             f"{len(matches)} markets matched, {len(unmatched)} unmatched", force=True)
    return doc


def _ocr_quotes(ocr: OcrBook, matches: pd.DataFrame, resolver: Resolver,
                now: datetime) -> dict[str, list[tuple[Quote, float]]]:
    """Matched, readable OCR prices by event id (quote, match score)."""
    out: dict[str, list[tuple[Quote, float]]] = {}
    rows = ocr.rows[ocr.rows["ok"]].merge(matches[["market_id", "event_id", "score"]], on="market_id")
    for r in rows.itertuples(index=False):
        canonical = resolver.resolve(r.sport, r.name).canonical
        if canonical is None:
            continue
        age = (now - r.captured_at.to_pydatetime()).total_seconds()
        out.setdefault(r.event_id, []).append(
            (Quote(ocr.book, canonical, float(r.decimal), age), float(r.score)))
    return out


def _arbs(s: Settings, ev: pd.DataFrame, quotes: pd.DataFrame,
          ocr_quotes: dict[str, list[tuple[Quote, float]]], matches: pd.DataFrame,
          run: Run) -> list[dict[str, Any]]:
    by_event = {k: g for k, g in quotes.groupby("event_id", sort=False)}
    out = []
    for k, e in enumerate(ev.itertuples(index=False), 1):
        g = by_event.get(e.event_id)
        qs = [] if g is None else [Quote(b, o, float(d), float(a)) for b, o, d, a in
                                   zip(g["book"], g["outcome"], g["decimal"], g["age_s"])]
        ocr = ocr_quotes.get(e.event_id, [])
        qs += [q for q, _ in ocr]
        names = set(q.outcome for q in qs)
        outcomes = (e.home, e.away) + ((DRAW,) if DRAW in names else ())
        best = best_quotes(qs, outcomes, s.max_odds_age_s)
        arb = best and find_arb(best, bankroll=s.bankroll, unit=s.unit, margin=s.margin)
        if k % 10 == 0:
            run.beat({"events_checked": k}, phase="arbitrage")
        if not arb:
            continue
        ages = [leg.age_s for leg in arb.legs]
        out.append({
            "event_id": e.event_id, "sport": e.sport,
            "event": f"{e.away} @ {e.home}" if DRAW not in outcomes else f"{e.home} v {e.away}",
            "home": e.home, "away": e.away, "commence_time": _iso(e.commence),
            "market": "h2h", "ways": len(outcomes),
            "legs": [{"book": leg.book, "outcome": leg.outcome, "odds": round(leg.odds, 4),
                      "stake": leg.stake, "returns": leg.returns, "age_s": round(leg.age_s, 1)}
                     for leg in arb.legs],
            "implied_sum": arb.implied_sum, "total_stake": arb.total_stake,
            "guaranteed_profit": arb.profit, "profit_pct": arb.profit_pct,
            "profit_pct_before_rounding": arb.ideal_profit_pct,
            "data_age_s": {"max": round(max(ages), 1), "min": round(min(ages), 1)},
            "uses_ocr_book": any(q.book == leg.book for q, _ in ocr for leg in arb.legs),
            "match_score": max((sc for _, sc in ocr), default=None)})
    run.beat({"events_checked": len(ev)}, phase="arbitrage", message=f"{len(out)} arbs")
    return out


def _boosts(s: Settings, ocr: OcrBook, ev: pd.DataFrame, quotes: pd.DataFrame,
            resolver: Resolver) -> list[dict[str, Any]]:
    """Each readable boost card against the no-vig fair price of the sharpest fresh book
    (pinnacle if present, else the first fresh API book with the full market)."""
    out = []
    for b in ocr.boosts:
        item: dict[str, Any] = {"selection": b.get("selection"), "sport": b.get("sport"),
                                "was": (b.get("was") or {}).get("decimal"),
                                "now": (b.get("now") or {}).get("decimal")}
        if b.get("flags") or not item["now"] or not b.get("sport") or not b.get("selection"):
            out.append(item | {"status": "unreadable", "flags": b.get("flags", [])})
            continue
        r = resolver.resolve(b["sport"], b["selection"])
        cand = ev[(ev["sport"] == b["sport"]) & ((ev["home"] == r.canonical) | (ev["away"] == r.canonical))]
        if r.canonical is None or len(cand) != 1:
            out.append(item | {"status": "unmatched", "reason": r.reason or f"{len(cand)} events"})
            continue
        e = cand.iloc[0]
        q = quotes[(quotes["event_id"] == e["event_id"]) & (quotes["age_s"] <= s.max_odds_age_s)]
        fair = None
        for book in ["pinnacle", *sorted(set(q["book"]) - {"pinnacle"})]:
            bq = q[q["book"] == book]
            if len(bq) >= 2 and r.canonical in set(bq["outcome"]):
                fair = bq
                break
        if fair is None:
            out.append(item | {"status": "no fair price", "event_id": e["event_id"]})
            continue
        names = list(fair["outcome"])
        p, ev_ = boost_ev(float(item["now"]), list(fair["decimal"]), names.index(r.canonical))
        out.append(item | {"status": "evaluated", "event_id": e["event_id"], "outcome": r.canonical,
                           "fair_book": str(fair["book"].iloc[0]), "fair_prob": round(p, 4),
                           "fair_price": round(1 / p, 4), "ev_pct": round(100 * ev_, 2),
                           "positive_ev": ev_ > 0})
    return out


def _iso(ts: Any) -> str:
    return pd.Timestamp(ts).strftime("%Y-%m-%dT%H:%M:%SZ")


def _write_csv(path: Path, frame: pd.DataFrame) -> None:
    write_atomic(path, frame.to_csv(index=False).encode())


def _write_json(path: Path, doc: dict[str, Any]) -> None:
    write_atomic(path, json.dumps(doc, indent=1, default=str).encode())
