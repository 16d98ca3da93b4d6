"""Inputs: the emulator's latest verified odds.json (found through proofwatch's history,
read-only with stdlib sqlite3) and odds-API events (The Odds API v4 over httpx).

History lookup: <state_dir>/history.db, table `runs` (job, state, run_dir, ended_at, proofs
JSON). The newest SUCCEEDED run of the emulator job whose proofs list odds.json with ok true
wins. state_dir is --state-dir, else derived from PROOFWATCH_RUN_DIR
(<state_dir>/runs/<job>/<run_id>).
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

from workers.arb.errors import ApiError, InputError

_LABEL = re.compile(r"^(MON|TUE|WED|THU|FRI|SAT|SUN)[A-Z]*\.?\s+(\d{1,2})[:.](\d{2})$")
_DAYS = ("MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN")


def state_dir_from_run_dir(run_dir: Path) -> Path:
    """<state_dir>/runs/<job>/<run_id> -> <state_dir>."""
    return run_dir.resolve().parent.parent.parent


def latest_odds_json(state_dir: Path, job: str = "emulator") -> Path:
    """The odds.json of the newest SUCCEEDED `job` run whose odds.json proof verified."""
    db = state_dir / "history.db"
    if not db.is_file():
        raise InputError(f"{db}: no proofwatch history here (use --state-dir or --odds-json)")
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            rows = con.execute(
                "SELECT run_dir, proofs FROM runs WHERE job = ? AND state = 'SUCCEEDED' "
                "ORDER BY ended_at DESC", (job,)).fetchall()
        finally:
            con.close()
    except sqlite3.Error as exc:
        raise InputError(f"{db}: cannot read the runs table: {exc}") from exc
    for run_dir, proofs in rows:
        try:
            items = json.loads(proofs or "[]")
        except ValueError:
            continue
        for p in items:
            if Path(str(p.get("path", ""))).name == "odds.json" and p.get("ok"):
                path = Path(str(p["path"]))
                path = path if path.is_absolute() else Path(run_dir) / path
                if path.is_file():
                    return path
    raise InputError(f"{db}: no SUCCEEDED {job!r} run with a verified odds.json proof")


def commence_from_label(label: str, captured: datetime) -> datetime | None:
    """'WED 04:30' -> the datetime with that weekday and time (UTC) nearest `captured`."""
    m = _LABEL.match(label.strip().upper())
    if not m:
        return None
    hh, mm = int(m.group(2)), int(m.group(3))
    if hh > 23 or mm > 59:
        return None
    base = captured.replace(hour=hh, minute=mm, second=0, microsecond=0)
    delta = (_DAYS.index(m.group(1)) - base.weekday() + 3) % 7 - 3
    return base + timedelta(days=delta)


@dataclass
class OcrBook:
    """The OCR'd book's rows: one per outcome; boosts; where it came from."""

    book: str
    path: Path
    rows: pd.DataFrame  # market_id, sport, section, label, commence, captured_at, name, decimal, ok
    boosts: list[dict[str, Any]] = field(default_factory=list)


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)


def read_ocr(path: Path, sport_keys: list[str], titles: dict[str, str]) -> OcrBook:
    """odds.json -> rows; sport from the shot name (a sport key) or the section's first word
    (a sport title such as NBA)."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read odds.json: {exc}") from exc
    captured = {s["shot"]: s["captured_at"] for s in doc.get("screenshots", [])}
    rows = []
    for mid, m in enumerate(doc.get("markets", [])):
        sport = _sport_of(m.get("shot", ""), m.get("section", ""), sport_keys, titles)
        cap = parse_iso(captured.get(m.get("shot"), doc["generated_at"]))
        when = commence_from_label(m.get("event", ""), cap)
        suspect = any(str(f).startswith("suspect") for f in m.get("flags", []))
        for o in m.get("outcomes", []):
            rows.append({"market_id": mid, "sport": sport or "", "section": m.get("section", ""),
                         "label": m.get("event", ""), "commence": when, "captured_at": cap,
                         "name": o.get("name") or "", "decimal": o.get("decimal"),
                         "ok": bool(o.get("decimal")) and not o.get("flags") and not suspect
                         and m.get("market") == "h2h"})
    cols = ["market_id", "sport", "section", "label", "commence", "captured_at", "name",
            "decimal", "ok"]
    frame = pd.DataFrame(rows, columns=cols)
    frame["commence"] = pd.to_datetime(frame["commence"], utc=True)
    frame["captured_at"] = pd.to_datetime(frame["captured_at"], utc=True)
    boosts = []
    for b in doc.get("boosts", []):
        cap = parse_iso(captured.get(b.get("shot"), doc["generated_at"]))
        boosts.append({**b, "sport": _sport_of(b.get("shot", ""), "", sport_keys, titles),
                       "captured_at": cap})
    return OcrBook(str(doc.get("book", "ocr")), path, frame, boosts)


def _sport_of(shot: str, section: str, keys: list[str], titles: dict[str, str]) -> str | None:
    for k in keys:
        if k in shot:
            return k
    head = section.split()[0].upper() if section.split() else ""
    return titles.get(head)


@dataclass
class Quota:
    remaining: int | None = None
    used: int | None = None
    last: int | None = None


class OddsApi:
    """A The Odds API v4 client: /v4/sports/{sport}/odds, h2h only."""

    def __init__(self, base_url: str, key: str, *, regions: str = "us", odds_format: str = "decimal",
                 transport: httpx.BaseTransport | None = None, retries: int = 3) -> None:
        self.key = key
        self.regions = regions
        self.odds_format = odds_format
        self.retries = retries
        self.quota = Quota()
        self.requests = 0
        self._client = httpx.Client(base_url=base_url, timeout=20.0, transport=transport,
                                    headers={"Accept-Encoding": "gzip"})

    def close(self) -> None:
        self._client.close()

    def odds(self, sport: str) -> list[dict[str, Any]]:
        """The events with odds for one sport; ApiError with the API's own message."""
        params = {"apiKey": self.key, "regions": self.regions, "markets": "h2h",
                  "oddsFormat": self.odds_format, "dateFormat": "iso"}
        for attempt in range(self.retries + 1):
            try:
                resp = self._client.get(f"/v4/sports/{sport}/odds", params=params)
            except httpx.HTTPError as exc:
                raise ApiError(0, "UNREACHABLE", f"{type(exc).__name__}: {exc}") from exc
            self.requests += 1
            self._read_quota(resp)
            if resp.status_code == 200:
                body = resp.json()
                if not isinstance(body, list):
                    raise ApiError(200, "BAD_BODY", "expected a JSON array of events")
                return body
            err = _error_of(resp)
            if err.code == "EXCEEDED_FREQ_LIMIT" and attempt < self.retries:
                time.sleep(0.5 * 2 ** attempt)  # the API asks to back off for a moment
                continue
            raise err
        raise AssertionError("unreachable")

    def _read_quota(self, resp: httpx.Response) -> None:
        for name, attr in (("x-requests-remaining", "remaining"), ("x-requests-used", "used"),
                           ("x-requests-last", "last")):
            v = resp.headers.get(name)
            if v is not None:
                try:
                    setattr(self.quota, attr, int(float(v)))
                except ValueError:
                    pass


def _error_of(resp: httpx.Response) -> ApiError:
    try:
        body = resp.json()
        return ApiError(resp.status_code, str(body.get("error_code", "HTTP_ERROR")),
                        str(body.get("message", resp.text[:200])))
    except (ValueError, AttributeError):
        return ApiError(resp.status_code, "HTTP_ERROR", resp.text[:200])


def api_frames(events: list[dict[str, Any]], odds_format: str, now: datetime
               ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(events: event_id, sport, sport_title, home, away, commence;
        quotes: event_id, book, outcome, decimal, age_s) from v4 events, h2h only."""
    from workers.arb.convert import to_decimal
    evs, quotes = [], []
    for e in events:
        evs.append({"event_id": e["id"], "sport": e["sport_key"], "sport_title": e.get("sport_title", ""),
                    "home": e["home_team"], "away": e["away_team"],
                    "commence": parse_iso(e["commence_time"])})
        for b in e.get("bookmakers", []):
            for m in b.get("markets", []):
                if m.get("key") != "h2h":  # never *_lay, spreads or totals as h2h
                    continue
                stamp = parse_iso(m.get("last_update") or b["last_update"])
                age = (now - stamp).total_seconds()
                for o in m.get("outcomes", []):
                    try:
                        d = to_decimal(o["price"], odds_format)
                    except (ValueError, KeyError, TypeError):
                        continue
                    quotes.append({"event_id": e["id"], "book": b["key"], "outcome": o["name"],
                                   "decimal": d, "age_s": age})
    ev = pd.DataFrame(evs, columns=["event_id", "sport", "sport_title", "home", "away", "commence"])
    ev["commence"] = pd.to_datetime(ev["commence"], utc=True)
    q = pd.DataFrame(quotes, columns=["event_id", "book", "outcome", "decimal", "age_s"])
    return ev, q
