"""workers/sandbox/faults.py: every fault switch, from Python and over HTTP."""

from __future__ import annotations

import json

import anyio
import httpx
import pytest
from websockets.exceptions import ConnectionClosedError

from tests.workers.sandbox.conftest import collect_trades, next_push, subscribe, ws_connect
from workers.sandbox._context import Context, Settings
from workers.sandbox.app import build_app
from workers.sandbox.errors import BadParameter
from workers.sandbox.faults import Faults
from workers.sandbox.server import SandboxHandle, running_sandbox


async def test_drop_closes_every_connection_without_a_close_frame(sb: SandboxHandle) -> None:
    async with ws_connect(sb.ws_url) as a, ws_connect(sb.ws_url) as b:
        await subscribe(a, ("trades", "BTC-USDT"))
        await next_push(a, "trades")
        sb.faults.drop()
        for ws in (a, b):
            with anyio.fail_after(5), pytest.raises(ConnectionClosedError):
                while True:
                    await ws.recv()
            assert ws.close_code == 1006  # abnormal closure: no close frame
    async with ws_connect(sb.ws_url) as ws:  # the server itself is fine
        await ws.send("ping")
        assert await ws.recv() == "pong"


async def test_stall_pushes_nothing_answers_no_ping_and_loses_what_was_due(
        sb: SandboxHandle) -> None:
    async with ws_connect(sb.ws_url) as ws:
        await subscribe(ws, ("trades", "BTC-USDT"))
        before = await collect_trades(ws, 5)
        sb.faults.stall(1.0)
        stall_start = sb.now_ms()
        await ws.send("ping")
        pong_waiter = await ws.ping()  # a protocol-level ping goes unanswered too
        with anyio.move_on_after(0.6) as quiet:
            while True:  # pushes already in flight before the stall may still drain
                msg = await ws.recv()
                assert msg != "pong"
                # generated before stall() returned: due no later than the millisecond read after it
                assert min(int(t["ts"]) for t in json.loads(msg)["data"]) <= stall_start
        assert quiet.cancelled_caught and not pong_waiter.done()
        after: list[dict[str, str]] = []
        pongs = 0
        with anyio.fail_after(5):  # after the stall: the late pong, then trades again
            while pongs == 0 or len(after) < 5:
                msg = await ws.recv()
                if msg == "pong":
                    pongs += 1
                else:
                    after.extend(json.loads(msg)["data"])
            await pong_waiter
        stall_end = sb.now_ms()
    assert int(after[0]["tradeId"]) > int(before[-1]["tradeId"]) + 1  # a real gap
    lost = sb.market.trades_between("BTC-USDT", stall_start + 100, stall_start + 900)
    assert lost and int(after[0]["ts"]) <= stall_end
    assert not set(sb.served("BTC-USDT")) & {t.trade_id for t in lost}


async def test_malformed_spoils_the_next_pushes_in_three_ways(sb: SandboxHandle) -> None:
    async with ws_connect(sb.ws_url) as ws:
        await subscribe(ws, ("trades", "ETH-USDT"))
        await next_push(ws, "trades")
        sb.faults.malformed(3)
        raw: list[str] = []
        with anyio.fail_after(5):
            while not raw:  # valid pushes already in flight come first
                text = await ws.recv()
                try:
                    json.loads(text)
                except ValueError:
                    raw.append(text)  # 1: truncated JSON
            while len(raw) < 4:
                raw.append(await ws.recv())
    wrong = json.loads(raw[1])["data"][0]  # 2: numbers instead of strings
    assert isinstance(wrong["price"], float) and isinstance(wrong["ts"], int)
    missing = json.loads(raw[2])["data"][0]  # 3: no tradeId, no price
    assert "tradeId" not in missing and "price" not in missing and "ts" in missing
    good = json.loads(raw[3])["data"][0]
    assert all(isinstance(v, str) for v in good.values())
    served = set(sb.served("ETH-USDT"))
    assert str(wrong["tradeId"]) not in served and good["tradeId"] in served


def test_error_and_rate_limit_switches_hit_the_next_rest_calls(sb: SandboxHandle) -> None:
    sb.faults.error("/api/v1/market/candles", "500", "Internal Server Error", times=2)
    sb.faults.rate_limit(1)
    with httpx.Client(base_url=sb.http_url) as c:
        params = {"instId": "BTC-USDT"}
        r = c.get("/api/v1/market/candles", params=params)
        assert r.status_code == 429 and r.json() == {"code": "429", "msg": "Too Many Requests"}
        for _ in range(2):
            r = c.get("/api/v1/market/candles", params=params)
            assert r.status_code == 200
            assert r.json() == {"code": "500", "msg": "Internal Server Error"}
        assert c.get("/api/v1/market/trades", params=params).json()["code"] == "0"
        assert c.get("/api/v1/market/candles", params=params).json()["code"] == "0"


async def test_faults_over_http(sb: SandboxHandle) -> None:
    async with httpx.AsyncClient(base_url=sb.http_url) as c:
        r = await c.post("/_sandbox/faults", json=[
            {"fault": "error", "path": "/api/v1/market/trades", "code": "152014",
             "msg": "Instrument ID does not exist"},
            {"fault": "rate_limit", "times": 1},
            {"fault": "malformed", "n": 1},
        ])
        assert r.status_code == 200 and r.json()["faults"]["rate_limit"] == 1
        assert (await c.get("/api/v1/market/trades",
                            params={"instId": "BTC-USDT"})).status_code == 429
        assert (await c.get("/api/v1/market/trades", params={"instId": "BTC-USDT"})).json() == {
            "code": "152014", "msg": "Instrument ID does not exist"}
        async with ws_connect(sb.ws_url) as ws:
            await subscribe(ws, ("trades", "BTC-USDT"))
            with anyio.fail_after(5):
                with pytest.raises(ValueError):
                    json.loads(await ws.recv())
            r = await c.post("/_sandbox/faults", json={"fault": "drop"})
            assert r.status_code == 200
            with anyio.fail_after(5), pytest.raises(ConnectionClosedError):
                while True:
                    await ws.recv()
        r = await c.post("/_sandbox/faults", json={"fault": "stall", "seconds": 0.2})
        assert r.json()["faults"]["stalled_for"] > 0
        state = (await c.get("/_sandbox/state")).json()
        assert state["counters"]["fault_drops"] >= 1
        assert state["counters"]["malformed_sent"] >= 1
        served = (await c.get("/_sandbox/served", params={"instId": "BTC-USDT"})).json()
        assert served["count"] == len(served["tradeIds"]) == len(sb.served("BTC-USDT"))


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"fault": "explode"}, "'explode' is not one of"),
        ({"fault": "stall"}, "seconds"),
        ({"fault": "stall", "seconds": "soon"}, "stall"),
        ({"fault": "error", "path": "api/v1/market/trades", "code": "1"}, "must start with /"),
        ("not json", "not JSON"),
    ],
    ids=["unknown-fault", "stall-without-seconds", "stall-bad-seconds", "relative-path",
         "not-json"],
)
def test_a_bad_fault_request_is_refused_with_a_reason(sb: SandboxHandle, body: object,
                                                      needle: str) -> None:
    content = body if isinstance(body, str) else json.dumps(body)
    r = httpx.post(f"{sb.http_url}/_sandbox/faults", content=content)
    assert r.status_code == 400
    assert needle in r.json()["error"]


async def test_control_routes_refuse_non_loopback_clients() -> None:
    ctx = Context.create(Settings(instruments=("BTC-USDT",), history_minutes=1))
    transport = httpx.ASGITransport(build_app(ctx), client=("203.0.113.9", 5555))
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as c:
        for path in ("/_sandbox/state", "/_sandbox/served?instId=BTC-USDT"):
            r = await c.get(path)
            assert r.status_code == 403 and "loopback-only" in r.json()["error"]
        assert (await c.post("/_sandbox/faults", json={"fault": "drop"})).status_code == 403
        assert (await c.get("/api/v1/market/instruments")).json()["code"] == "0"


def test_fault_arguments_are_checked() -> None:
    f = Faults()
    with pytest.raises(BadParameter, match="seconds"):
        f.stall(-1)
    with pytest.raises(BadParameter, match="times"):
        f.error("/x", "1", "m", times=0)
    f.rate_limit(1)
    f.malformed(2)
    f.clear()
    assert not f.take_rate_limit() and f.take_malformed() is None


async def test_chaos_drops_connections_now_and_then() -> None:
    with running_sandbox(chaos=1.0, history_minutes=1) as sb:
        async with ws_connect(sb.ws_url) as ws:
            await subscribe(ws, ("trades", "BTC-USDT"))
            with anyio.fail_after(5), pytest.raises(ConnectionClosedError):
                while True:
                    await ws.recv()
        assert sb.state()["counters"]["chaos_drops"] >= 1
