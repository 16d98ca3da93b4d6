"""The Odds API v4 feed: v4 event shape, quota headers, the documented error bodies, planted
arbitrage with its truth (loopback only), the same events as the sportsbook page."""

from __future__ import annotations

import httpx
import pytest

from workers.sandbox._context import Context, Settings
from workers.sandbox.app import build_app
from workers.sandbox.odds import API_BOOKS, plant
from workers.sandbox.odds_model import OddsModel
from workers.sandbox.server import SandboxHandle


def get(sb: SandboxHandle, path: str, **params: str) -> httpx.Response:
    return httpx.get(sb.http_url + path, params=params)


def test_odds_are_v4_events_with_quota_headers(sb: SandboxHandle) -> None:
    r = get(sb, "/v4/sports/soccer_epl/odds", apiKey="feed-a", regions="us,uk", markets="h2h")
    assert r.status_code == 200
    assert r.headers["x-requests-last"] == "2" and r.headers["x-requests-used"] == "2"
    assert int(r.headers["x-requests-remaining"]) == 498
    events = r.json()
    assert len(events) == 8
    ev = events[0]
    assert set(ev) == {"id", "sport_key", "sport_title", "commence_time", "home_team", "away_team",
                       "bookmakers"}
    assert [b["key"] for b in ev["bookmakers"]] == list(API_BOOKS)  # never the OCR'd book
    outcomes = ev["bookmakers"][0]["markets"][0]["outcomes"]
    assert {o["name"] for o in outcomes} == {ev["home_team"], ev["away_team"], "Draw"}
    assert all(isinstance(o["price"], float) for o in outcomes)
    sportsbook = httpx.get(sb.http_url + "/_sandbox/sportsbook/truth?sport=soccer_epl").json()
    assert [e["id"] for e in sportsbook["sports"][0]["events"]] == [e["id"] for e in events]


def test_american_format_gives_integers_and_sports_is_free(sb: SandboxHandle) -> None:
    r = get(sb, "/v4/sports/basketball_nba/odds", apiKey="feed-b", regions="us",
            oddsFormat="american")
    prices = [o["price"] for e in r.json() for b in e["bookmakers"] for o in b["markets"][0]["outcomes"]]
    assert all(isinstance(p, int) and abs(p) >= 100 for p in prices)
    s = get(sb, "/v4/sports", apiKey="feed-b")
    assert s.headers["x-requests-last"] == "0" and s.headers["x-requests-used"] == "1"


@pytest.mark.parametrize(("params", "status", "code"), [
    ({"regions": "us"}, 401, "MISSING_KEY"),
    ({"apiKey": "invalid", "regions": "us"}, 401, "INVALID_KEY"),
    ({"apiKey": "feed-c"}, 422, "MISSING_REGION"),
], ids=["missing-key", "invalid-key", "missing-region"])
def test_documented_error_bodies(sb: SandboxHandle, params: dict[str, str], status: int,
                                 code: str) -> None:
    r = get(sb, "/v4/sports/soccer_epl/odds", **params)
    assert r.status_code == status
    body = r.json()
    assert body["error_code"] == code and body["message"] and body["details_url"].startswith("https://")


def test_exhausted_quota_and_rate_limit(sb: SandboxHandle) -> None:
    httpx.post(sb.http_url + "/_sandbox/odds/quota", json={"key": "feed-d", "remaining": 1})
    assert get(sb, "/v4/sports/soccer_epl/odds", apiKey="feed-d", regions="us").status_code == 200
    r = get(sb, "/v4/sports/soccer_epl/odds", apiKey="feed-d", regions="us")
    assert r.status_code == 401 and r.json()["error_code"] == "OUT_OF_USAGE_CREDITS"
    assert r.json()["message"].startswith("Usage quota has been reached")
    httpx.post(sb.http_url + "/_sandbox/odds/limit", json={"times": 1})
    r = get(sb, "/v4/sports/soccer_epl/odds", apiKey="feed-e", regions="us")
    assert r.status_code == 429 and r.json()["error_code"] == "EXCEEDED_FREQ_LIMIT"
    assert get(sb, "/v4/sports/soccer_epl/odds", apiKey="feed-e", regions="us").status_code == 200


def test_planted_arbs_are_served_and_listed_in_the_truth(sb: SandboxHandle) -> None:
    truth = httpx.get(sb.http_url + "/_sandbox/odds/truth").json()
    assert len(truth["arbs"]) == 6 and len(truth["decoys"]) == 2
    a = truth["arbs"][0]
    assert a["implied_sum"] < 0.965
    events = get(sb, f"/v4/sports/{a['sport_key']}/odds", apiKey="feed-f", regions="us").json()
    ev = next(e for e in events if e["id"] == a["event_id"])
    book = next(b for b in ev["bookmakers"] if b["key"] == a["book"])
    assert {"name": a["outcome"], "price": a["price"]} in book["markets"][0]["outcomes"]


def test_planting_is_deterministic_per_seed() -> None:
    assert plant(OddsModel(7)) == plant(OddsModel(7))
    assert plant(OddsModel(7))[0].keys() != plant(OddsModel(8))[0].keys()


async def test_odds_control_routes_are_loopback_only() -> None:
    ctx = Context.create(Settings(instruments=("BTC-USDT",), history_minutes=1))
    transport = httpx.ASGITransport(build_app(ctx), client=("203.0.113.9", 5555))
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as c:
        assert (await c.get("/_sandbox/odds/truth")).status_code == 403
        assert (await c.post("/_sandbox/odds/quota", json={"key": "k", "remaining": 9})).status_code == 403
        r = await c.get("/v4/sports/soccer_epl/odds", params={"apiKey": "k", "regions": "us"})
        assert r.status_code == 200
