"""The Odds API v4 (feed module): the odds model's events with four API bookmakers' h2h prices
(draftkings, fanduel, betmgm, pinnacle; never `sandbook`, whose prices reach the arb matcher
only through the emulator's OCR), plus arbitrage opportunities planted deterministically per
seed among many non-arb events, and stale decoys that look like arbitrage but must be dropped.

GET /v4/sports                      free; quota headers
GET /v4/sports/{sport}/odds?apiKey=&regions=&markets=h2h&oddsFormat=decimal|american&dateFormat=iso|unix
    costs markets x regions credits; x-requests-remaining / -used / -last headers
    401 MISSING_KEY | INVALID_KEY (key "invalid") | OUT_OF_USAGE_CREDITS, 422 MISSING_REGION,
    404 UNKNOWN_SPORT, 429 EXCEEDED_FREQ_LIMIT (POST /_sandbox/odds/limit {"times": n})
GET /_sandbox/odds/truth            (loopback only) the planted arbitrage and the decoys:
    every event where the best fresh prices of all five books (sandbook included) sum below 1
POST /_sandbox/odds/quota {"key", "remaining"}   (loopback only) set a key's credits

Planting: for PLANTED events (seeded choice), one API book's price on one outcome is raised so
the best prices across all five books sum to a seeded 0.93..0.96 (an arb of 4..7 %). A DECOY
event gets the same treatment on one book whose last_update is hours old. Every other price is
the model's, each book's last_update is 10..240 s before the request.
"""

from __future__ import annotations

import math
import threading
from datetime import datetime, timezone
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from workers.sandbox._context import Context, Feed
from workers.sandbox._control import _loopback
from workers.sandbox.odds_model import BOOKMAKERS, OCR_BOOK, Event, OddsModel, _rng

DAY_MS = 86_400_000
API_BOOKS = tuple(k for k, _ in BOOKMAKERS if k != OCR_BOOK)
PLANTED = 6
DECOYS = 2
STALE_MS = 3 * 3_600_000
DEFAULT_CREDITS = 500
DETAILS = "https://the-odds-api.com/liveapi/guides/v4/api-error-codes.html#"


def feed(ctx: Context) -> Feed:
    """The Odds API v4 routes and their ground truth."""
    now = ctx.now_ms()
    api = OddsApi(OddsModel(ctx.settings.seed, now - now % DAY_MS), ctx)
    return Feed("odds", [
        Route("/v4/sports", api.sports),
        Route("/v4/sports/{sport}/odds", api.odds),
        Route("/_sandbox/odds/truth", _loopback(api.truth)),
        Route("/_sandbox/odds/quota", _loopback(api.set_quota), methods=["POST"]),
        Route("/_sandbox/odds/limit", _loopback(api.set_limit), methods=["POST"]),
    ])


class OddsApi:
    def __init__(self, model: OddsModel, ctx: Context) -> None:
        self.model = model
        self.ctx = ctx
        self._lock = threading.Lock()
        self._used: dict[str, int] = {}
        self._remaining: dict[str, int] = {}
        self._limit_times = 0
        self.planted, self.decoys = plant(model)

    # -- prices ---------------------------------------------------------------------------
    def book_prices(self, ev: Event) -> dict[str, dict[str, float]]:
        """Decimal prices per API book (planted overrides applied)."""
        out = {b: {o.name: o.price.decimal for o in ev.prices[b]} for b in API_BOOKS}
        for table in (self.planted, self.decoys):
            if ev.id in table:
                p = table[ev.id]
                out[p["book"]][p["outcome"]] = p["price"]
        return out

    def last_update_ms(self, ev: Event, book: str, now_ms: int) -> int:
        if ev.id in self.decoys and self.decoys[ev.id]["book"] == book:
            return now_ms - STALE_MS
        return now_ms - _rng(self.model.seed, "age", ev.id, book).randrange(10_000, 240_000)

    def event_json(self, ev: Event, odds_format: str, now_ms: int, unix: bool) -> dict[str, Any]:
        prices = self.book_prices(ev)
        books = []
        for key, title in BOOKMAKERS:
            if key == OCR_BOOK:
                continue
            stamp = _stamp(self.last_update_ms(ev, key, now_ms), unix)
            outcomes = [{"name": n, "price": _american(d) if odds_format == "american" else d}
                        for n, d in prices[key].items()]
            books.append({"key": key, "title": title, "last_update": stamp, "markets": [
                {"key": "h2h", "last_update": stamp, "outcomes": outcomes}]})
        return {"id": ev.id, "sport_key": ev.sport.key, "sport_title": ev.sport.title,
                "commence_time": _stamp(ev.commence_ms, unix), "home_team": ev.home.canonical,
                "away_team": ev.away.canonical, "bookmakers": books}

    # -- routes ---------------------------------------------------------------------------
    async def sports(self, request: Request) -> Response:
        key = request.query_params.get("apiKey") or request.query_params.get("api_key")
        denied = self._check_key(key)
        if denied is not None:
            return denied
        body = [{"key": s.key, "group": s.title, "title": s.title, "description": s.title,
                 "active": True, "has_outrights": False} for s in self.model.sports()]
        return JSONResponse(body, headers=self._headers(str(key), 0))

    async def odds(self, request: Request) -> Response:
        q = request.query_params
        key = q.get("apiKey") or q.get("api_key")
        denied = self._check_key(key)
        if denied is not None:
            return denied
        assert key is not None
        sport = request.path_params["sport"]
        if sport not in {s.key for s in self.model.sports()}:
            return _error(404, "UNKNOWN_SPORT", f"Unknown sport: {sport}")
        regions = [r for r in q.get("regions", "").split(",") if r]
        if not regions and not q.get("bookmakers"):
            return _error(422, "MISSING_REGION", "Missing regions or bookmakers key")
        markets = [m for m in q.get("markets", "h2h").split(",") if m]
        if any(m != "h2h" for m in markets):
            return _error(422, "INVALID_MARKET", f"Invalid markets: {','.join(markets)}")
        fmt = q.get("oddsFormat", "decimal")
        if fmt not in ("decimal", "american"):
            return _error(422, "INVALID_ODDS_FORMAT", f"Invalid oddsFormat: {fmt}")
        cost = len(markets) * max(1, len(regions))
        with self._lock:
            if self._limit_times > 0:
                self._limit_times -= 1
                return _error(429, "EXCEEDED_FREQ_LIMIT",
                              "Requests are being sent too frequently. Please wait a moment.")
            if self._remaining.get(key, DEFAULT_CREDITS) < cost:
                return _error(401, "OUT_OF_USAGE_CREDITS", "Usage quota has been reached. "
                              "See usage plans at https://the-odds-api.com")
            self._remaining[key] = self._remaining.get(key, DEFAULT_CREDITS) - cost
            self._used[key] = self._used.get(key, 0) + cost
        now = self.ctx.now_ms()
        unix = q.get("dateFormat", "iso") == "unix"
        body = [self.event_json(ev, fmt, now, unix) for ev in self.model.events(sport)]
        return JSONResponse(body, headers=self._headers(key, cost))

    async def truth(self, _request: Request) -> Response:
        return JSONResponse(self.truth_data())

    async def set_quota(self, request: Request) -> Response:
        body = await request.json()
        with self._lock:
            self._remaining[str(body["key"])] = int(body["remaining"])
        return JSONResponse({"ok": True})

    async def set_limit(self, request: Request) -> Response:
        body = await request.json()
        with self._lock:
            self._limit_times = int(body.get("times", 1))
        return JSONResponse({"ok": True})

    def truth_data(self) -> dict[str, Any]:
        """Planted arbs (fresh prices, all five books) and stale decoys, by event id."""
        def entry(ev: Event, p: dict[str, Any]) -> dict[str, Any]:
            return {"event_id": ev.id, "sport_key": ev.sport.key, "home_team": ev.home.canonical,
                    "away_team": ev.away.canonical, "commence_time": ev.commence_time,
                    "book": p["book"], "outcome": p["outcome"], "price": p["price"],
                    "implied_sum": p["implied_sum"]}
        evs = {e.id: e for e in self.model.events()}
        return {"seed": self.model.seed, "anchor_ms": self.model.anchor_ms,
                "api_books": list(API_BOOKS), "ocr_book": OCR_BOOK,
                "arbs": [entry(evs[k], p) for k, p in self.planted.items()],
                "decoys": [entry(evs[k], p) for k, p in self.decoys.items()]}

    # -- quota ----------------------------------------------------------------------------
    def _check_key(self, key: str | None) -> Response | None:
        if not key:
            return _error(401, "MISSING_KEY", "API key is missing. Get an API key at "
                          "https://the-odds-api.com")
        if key == "invalid":
            return _error(401, "INVALID_KEY", "API key is not valid or not subscribed. "
                          "Get an API key at https://the-odds-api.com")
        return None

    def _headers(self, key: str, cost: int) -> dict[str, str]:
        with self._lock:
            return {"x-requests-remaining": str(self._remaining.get(key, DEFAULT_CREDITS)),
                    "x-requests-used": str(self._used.get(key, 0)), "x-requests-last": str(cost)}


def best_prices(ev: Event) -> dict[str, float]:
    """Best decimal price per outcome over all five books (model prices)."""
    best: dict[str, float] = {}
    for book, _ in BOOKMAKERS:
        for o in ev.prices[book]:
            best[o.name] = max(best.get(o.name, 0.0), o.price.decimal)
    return best


def plant(model: OddsModel) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Choose planted and decoy events (seeded) and the raised price that makes each an arb.

    The planted sum stays <= 0.96, so American rounding (< 0.5 %) cannot undo it."""
    events = [e for e in model.events() if _implied(best_prices(e)) >= 1.0]
    rng = _rng(model.seed, "plant")
    chosen = rng.sample(events, PLANTED + DECOYS)
    tables: list[dict[str, dict[str, Any]]] = [{}, {}]
    for i, ev in enumerate(chosen):
        best = best_prices(ev)
        outcome = rng.choice(list(best))
        book = rng.choice(API_BOOKS)
        target = rng.uniform(0.93, 0.96)
        rest = sum(1 / d for n, d in best.items() if n != outcome)
        need = 1 / max(target - rest, 0.02)
        price = _exact(need)
        implied = rest + 1 / price
        tables[0 if i < PLANTED else 1][ev.id] = {
            "book": book, "outcome": outcome, "price": price,
            "implied_sum": round(implied, 6)}
    return tables[0], tables[1]


def _exact(d: float) -> float:
    """d rounded up to 2 dp (an american request rounds it again, by < 0.5 %)."""
    return math.ceil(d * 100 - 1e-9) / 100


def _american(d: float) -> int:
    return round((d - 1) * 100) if d >= 2 else -round(100 / (d - 1))


def _implied(best: dict[str, float]) -> float:
    return sum(1 / d for d in best.values())


def _stamp(ms: int, unix: bool) -> Any:
    if unix:
        return ms // 1000
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"message": message, "error_code": code,
                         "details_url": DETAILS + code.lower().replace("_", "-")},
                        status_code=status)
