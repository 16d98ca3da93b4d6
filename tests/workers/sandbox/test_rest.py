"""workers/sandbox/blofin.py REST: BloFin shapes, errors and rate limits, against a real
server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.workers.sandbox.conftest import INSTS
from workers.sandbox.server import SandboxHandle, running_sandbox

INSTRUMENT_FIELDS = {
    "instId", "baseCurrency", "quoteCurrency", "contractValue", "listTime", "expireTime",
    "maxLeverage", "minSize", "lotSize", "tickSize", "instType", "contractType",
    "maxLimitSize", "maxMarketSize", "state", "settleCurrency",
}
TICKER_FIELDS = {
    "instId", "last", "lastSize", "askPrice", "askSize", "bidPrice", "bidSize", "high24h",
    "open24h", "low24h", "volCurrency24h", "vol24h", "ts",
}


@pytest.fixture(scope="module")
def client(sb: SandboxHandle) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sb.http_url, timeout=10) as c:
        yield c


def ok(resp: httpx.Response) -> list:  # type: ignore[type-arg]
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["code"] == "0" and body["msg"] == "success", body
    assert isinstance(body["data"], list)
    return body["data"]  # type: ignore[no-any-return]


def test_instruments_lists_every_documented_field(client: httpx.Client) -> None:
    data = ok(client.get("/api/v1/market/instruments"))
    assert [d["instId"] for d in data] == INSTS
    for d in data:
        assert set(d) == INSTRUMENT_FIELDS
        assert all(isinstance(v, str) for v in d.values())
        assert d["instType"] == "SWAP" and d["state"] == "live"
    btc = ok(client.get("/api/v1/market/instruments", params={"instId": "BTC-USDT"}))
    assert len(btc) == 1 and btc[0]["tickSize"] == "0.1" and btc[0]["contractValue"] == "0.001"


def test_trades_are_the_last_ones_newest_first(sb: SandboxHandle, client: httpx.Client) -> None:
    before = sb.now_ms()
    data = ok(client.get("/api/v1/market/trades", params={"instId": "ETH-USDT"}))
    after = sb.now_ms()
    assert len(data) == 100
    for d in data:
        assert set(d) == {"instId", "tradeId", "price", "size", "side", "ts"}
        assert all(isinstance(v, str) for v in d.values())
    ids = [int(d["tradeId"]) for d in data]
    assert ids == list(range(ids[0], ids[0] - 100, -1))
    assert int(data[0]["ts"]) <= after
    truth = sb.market.trades_upto("ETH-USDT", int(data[0]["ts"]), 100)
    newest_truth = sb.market.trades_upto("ETH-USDT", before, 1)[0]
    assert int(data[0]["tradeId"]) >= int(newest_truth.trade_id)
    assert [t.to_blofin() for t in truth if int(t.trade_id) <= ids[0]][:50] == data[:50]


@pytest.mark.parametrize(("limit", "count"), [("5", 5), ("100", 100), ("500", 100)])
def test_trades_limit_defaults_and_clamps(client: httpx.Client, limit: str, count: int) -> None:
    data = ok(client.get("/api/v1/market/trades", params={"instId": "BTC-USDT", "limit": limit}))
    assert len(data) == count


def test_candles_are_nine_strings_newest_first(sb: SandboxHandle, client: httpx.Client) -> None:
    before = sb.now_ms()
    data = ok(client.get("/api/v1/market/candles", params={"instId": "BTC-USDT"}))
    after = sb.now_ms()
    # 60 minutes of history + the forming bar (default limit 500), + one bar per minute boundary
    # passed since the module's sandbox started (a slow run of the tests before this one)
    first = sb.market.start_ms - sb.market.start_ms % 60_000
    assert len(data) in {(t - t % 60_000 - first) // 60_000 + 1 for t in (before, after)}
    assert len(data) >= 61
    ts = [int(row[0]) for row in data]
    assert ts == sorted(ts, reverse=True) and ts[0] % 60_000 == 0
    assert all(len(row) == 9 and all(isinstance(v, str) for v in row) for row in data)
    assert data[0][8] == "0" and {row[8] for row in data[1:]} == {"1"}
    truth = sb.market.candles("BTC-USDT", "1m", now_ms=sb.now_ms(), limit=10)
    assert [c.to_blofin() for c in truth[1:10]] == data[1:10]


def test_candles_page_with_after_and_before(client: httpx.Client) -> None:
    first = ok(client.get("/api/v1/market/candles",
                          params={"instId": "SHIB-USDT", "bar": "5m", "limit": "3"}))
    assert len(first) == 3
    older = ok(client.get("/api/v1/market/candles", params={
        "instId": "SHIB-USDT", "bar": "5m", "after": first[-1][0], "limit": "2"}))
    assert [int(r[0]) for r in older] == [int(first[-1][0]) - 300_000 * k for k in (1, 2)]
    newer = ok(client.get("/api/v1/market/candles", params={
        "instId": "SHIB-USDT", "bar": "5m", "before": first[1][0]}))
    assert [r[0] for r in newer] == [first[0][0]]


def test_tickers_have_every_documented_field(client: httpx.Client) -> None:
    data = ok(client.get("/api/v1/market/tickers"))
    assert [d["instId"] for d in data] == INSTS
    for d in data:
        assert set(d) == TICKER_FIELDS and all(isinstance(v, str) for v in d.values())
        assert float(d["low24h"]) <= float(d["last"]) <= float(d["high24h"])
        assert float(d["bidPrice"]) < float(d["askPrice"])


@pytest.mark.parametrize(
    ("path", "params", "code", "msg"),
    [
        ("trades", {"instId": "DOGE-USDT"}, "152014", "Instrument ID does not exist"),
        ("candles", {"instId": "NOPE-USDT"}, "152014", "Instrument ID does not exist"),
        ("instruments", {"instId": "NOPE-USDT"}, "152014", "Instrument ID does not exist"),
        ("trades", {}, "152002", "Parameter instId error."),
        ("trades", {"instId": "BTC-USDT", "limit": "abc"}, "152002", "Parameter limit error."),
        ("trades", {"instId": "BTC-USDT", "limit": "0"}, "152002", "Parameter limit error."),
        ("candles", {"instId": "BTC-USDT", "bar": "1h"}, "152002", "Parameter bar error."),
        ("candles", {"instId": "BTC-USDT", "after": "x"}, "152002", "Parameter after error."),
    ],
    ids=["unknown-inst-trades", "unknown-inst-candles", "unknown-inst-instruments",
         "missing-inst", "limit-not-int", "limit-zero", "bar-lowercase-h", "after-not-int"],
)
def test_errors_are_http_200_with_a_blofin_code(client: httpx.Client, path: str,
                                                params: dict[str, str], code: str,
                                                msg: str) -> None:
    resp = client.get(f"/api/v1/market/{path}", params=params)
    assert resp.status_code == 200
    assert resp.json() == {"code": code, "msg": msg}


def test_a_hammering_client_gets_429_and_a_polite_one_does_not() -> None:
    with running_sandbox(rest_per_min=20, history_minutes=5) as sb, \
            httpx.Client(base_url=sb.http_url) as c:
        codes = [c.get("/api/v1/market/trades", params={"instId": "BTC-USDT", "limit": 1})
                 .status_code for _ in range(25)]
        assert codes[:20] == [200] * 20
        assert codes[20:] == [429] * 5
        resp = c.get("/api/v1/market/instruments")
        assert resp.status_code == 429
        assert resp.json() == {"code": "429", "msg": "Too Many Requests"}
        assert c.get("/_sandbox/state").json()["counters"]["rate_limited"] == 6
