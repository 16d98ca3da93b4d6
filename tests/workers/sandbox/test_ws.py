"""workers/sandbox/_blofin_ws.py: the public WebSocket, with a real websockets client."""

from __future__ import annotations

import json

import anyio
import pytest
from websockets.exceptions import ConnectionClosedOK, InvalidStatus

from tests.workers.sandbox.conftest import (
    collect_trades,
    fast_clock,
    next_push,
    subscribe,
    ws_connect,
)
from workers.sandbox.server import SandboxHandle, running_sandbox


async def test_plain_text_ping_gets_plain_text_pong(sb: SandboxHandle) -> None:
    async with ws_connect(sb.ws_url) as ws:
        await ws.send("ping")
        with anyio.fail_after(5):
            assert await ws.recv() == "pong"


async def test_subscribe_acks_each_arg_then_pushes_trades_in_order(sb: SandboxHandle) -> None:
    async with ws_connect(sb.ws_url) as ws:
        subscribed_at = sb.now_ms()
        await subscribe(ws, ("trades", "BTC-USDT"), ("trades", "SHIB-USDT"))
        msg = await next_push(ws, "trades")
        assert set(msg) == {"arg", "data"} and msg["arg"]["channel"] == "trades"
        trades = await collect_trades(ws, 60)
    for t in trades:
        assert set(t) == {"instId", "tradeId", "price", "size", "side", "ts"}
        assert all(isinstance(v, str) for v in t.values())
        assert int(t["ts"]) >= subscribed_at - 50  # no history, only from now on
    btc = [t for t in trades if t["instId"] == "BTC-USDT"]
    ids = [int(t["tradeId"]) for t in btc]
    assert ids == list(range(ids[0], ids[0] + len(ids)))
    assert [int(t["ts"]) for t in btc] == sorted(int(t["ts"]) for t in btc)
    assert {t["instId"] for t in trades} == {"BTC-USDT", "SHIB-USDT"}


async def test_pushes_are_the_market_truth_and_served_records_them(sb: SandboxHandle) -> None:
    async with ws_connect(sb.ws_url) as ws:
        await subscribe(ws, ("trades", "ETH-USDT"))
        got = await collect_trades(ws, 150)
    first, last = int(got[0]["ts"]), int(got[-1]["ts"])
    ids = {t["tradeId"] for t in got}
    truth = [t.to_blofin() for t in sb.market.trades_between("ETH-USDT", first, last + 1)
             if got[0]["tradeId"] <= t.trade_id <= got[-1]["tradeId"]]
    assert truth == got  # an uninterrupted window: every trade, exactly once, in order
    served = sb.served("ETH-USDT")
    assert ids <= set(served)
    start = served.index(got[0]["tradeId"])
    assert served[start:start + len(got)] == [t["tradeId"] for t in got]


async def test_unsubscribe_stops_the_channel(sb: SandboxHandle) -> None:
    async with ws_connect(sb.ws_url) as ws:
        await subscribe(ws, ("trades", "BTC-USDT"))
        await next_push(ws, "trades")
        await ws.send(json.dumps({"op": "unsubscribe",
                                  "args": [{"channel": "trades", "instId": "BTC-USDT"}]}))
        with anyio.fail_after(5):
            while json.loads(await ws.recv()).get("event") != "unsubscribe":
                pass  # pushes queued before the ack may still arrive
        await subscribe(ws, ("trades", "ETH-USDT"))
        eth = 0
        with anyio.fail_after(5):
            while eth < 20:  # several pump rounds, none with BTC-USDT
                msg = await next_push(ws, "trades")
                assert msg["arg"]["instId"] == "ETH-USDT"
                eth += len(msg["data"])


@pytest.mark.parametrize(
    "request_text",
    [
        json.dumps({"op": "subscribe", "args": [{"channel": "books", "instId": "BTC-USDT"}]}),
        json.dumps({"op": "subscribe", "args": [{"channel": "trades", "instId": "DOGE-USDT"}]}),
        json.dumps({"op": "subscribe", "args": []}),
        json.dumps({"op": "login", "args": [{}]}),
        "{not json",
    ],
    ids=["unknown-channel", "unknown-inst", "no-args", "unknown-op", "not-json"],
)
async def test_a_bad_request_gets_60012_and_keeps_the_connection(sb: SandboxHandle,
                                                                 request_text: str) -> None:
    async with ws_connect(sb.ws_url) as ws:
        await ws.send(request_text)
        with anyio.fail_after(5):
            err = json.loads(await ws.recv())
            assert err["event"] == "error" and err["code"] == "60012"
            assert err["msg"].startswith("Invalid request: ")
            await ws.send("ping")
            assert await ws.recv() == "pong"


async def test_candle_channel_pushes_forming_bars_then_one_confirmed_bar() -> None:
    # A clock 30x faster than real time: a one-minute bar closes every 2 s.
    with running_sandbox(rate=5.0, history_minutes=2, clock=fast_clock(30.0),
                         candle_interval=0.1) as sb:
        async with ws_connect(sb.ws_url) as ws:
            await subscribe(ws, ("candle1m", "BTC-USDT"))
            forming: list[list[str]] = []
            with anyio.fail_after(10):
                while True:
                    msg = await next_push(ws, "candle1m")
                    assert msg["arg"] == {"channel": "candle1m", "instId": "BTC-USDT"}
                    (row,) = msg["data"]
                    assert len(row) == 9 and all(isinstance(v, str) for v in row)
                    if row[8] == "1":
                        break
                    forming.append(row)
        closed = row
        truth = sb.market.candles("BTC-USDT", "1m", now_ms=sb.now_ms(), after=int(closed[0]) + 1,
                                  limit=1)
        assert truth[0].to_blofin() == closed
        same_bar = [r for r in forming if r[0] == closed[0]]
        assert same_bar, "the closed bar was pushed while forming first"
        assert all(int(r[5]) <= int(closed[5]) for r in same_bar)


async def test_an_idle_connection_without_subscription_is_closed() -> None:
    with running_sandbox(idle_timeout=0.3, history_minutes=1) as sb:
        async with ws_connect(sb.ws_url) as ws:
            with anyio.fail_after(5), pytest.raises(ConnectionClosedOK):
                await ws.recv()
            assert ws.close_code == 1000


async def test_new_connections_over_the_limit_get_http_429() -> None:
    with running_sandbox(conn_per_sec=1.0, history_minutes=1) as sb:
        async with ws_connect(sb.ws_url):
            with pytest.raises(InvalidStatus) as info:
                async with ws_connect(sb.ws_url):
                    pass
    assert info.value.response.status_code == 429
    assert json.loads(info.value.response.body) == {"code": "429", "msg": "Too Many Requests"}
