"""messages.py: every BloFin message is classified; bad records are reported, never raised."""

from __future__ import annotations

import json
from typing import Any

import pytest

from workers.ingestor.errors import MalformedMessage
from workers.ingestor.messages import Candle, Trade, parse_candle, parse_trade, parse_ws

GOOD = {"tradeId": "3263934921", "instId": "BTC-USDT", "price": "64210.5", "size": "12",
        "side": "sell", "ts": "1717000000123"}
ROW = ["1717000200000", "64200.0", "64230.5", "64190.0", "64212.5", "1840", "1.84", "118150.2", "1"]


def test_parse_trade_reads_the_documented_string_fields() -> None:
    assert parse_trade(GOOD, "BTC-USDT") == Trade("3263934921", "BTC-USDT", 64210.5, 12.0,
                                                  "sell", 1717000000123)


@pytest.mark.parametrize("change, why", [
    ({"tradeId": None}, "tradeId"),
    ({"tradeId": 3263934921}, "tradeId"),  # numbers where BloFin sends strings
    ({"price": 64210.5}, "price"),
    ({"price": "abc"}, "price"),
    ({"price": "nan"}, "price"),
    ({"price": "-1"}, "price"),
    ({"size": "inf"}, "size"),
    ({"side": "long"}, "side"),
    ({"ts": "17170000001x"}, "ts"),
    ({"ts": "123"}, "ts"),
    ({"ts": 1717000000123}, "ts"),
    ({"instId": "ETH-USDT"}, "instId"),
], ids=lambda v: str(v) if isinstance(v, str) else None)
def test_parse_trade_rejects_malformed_fields(change: dict[str, Any], why: str) -> None:
    bad = {**GOOD, **change}
    with pytest.raises(MalformedMessage, match=why):
        parse_trade(bad, "BTC-USDT")


def test_parse_trade_names_a_missing_field() -> None:
    with pytest.raises(MalformedMessage, match="missing field 'price'"):
        parse_trade({k: v for k, v in GOOD.items() if k != "price"}, "BTC-USDT")


def test_parse_candle_reads_nine_strings_and_confirm() -> None:
    c = parse_candle(ROW, "BTC-USDT")
    assert c == Candle("BTC-USDT", 1717000200000, 64200.0, 64230.5, 64190.0, 64212.5, 1840.0,
                       1.84, 118150.2, True)
    assert parse_candle([*ROW[:8], "0"], "BTC-USDT").confirm is False


@pytest.mark.parametrize("row, why", [
    (ROW[:5], "9 fields"),
    ([*ROW[:8], "2"], "confirm"),
    (["1717000200001", *ROW[1:]], "minute"),
    ([ROW[0], "64200.0", "64100.0", "64190.0", "64212.5", *ROW[5:]], "inconsistent"),
    ([float(v) for v in ROW], "ts"),
], ids=["short", "confirm", "unaligned", "high-below-open", "numbers"])
def test_parse_candle_rejects_malformed_rows(row: list[Any], why: str) -> None:
    with pytest.raises(MalformedMessage, match=why):
        parse_candle(row, "BTC-USDT")


def test_parse_ws_classifies_control_messages() -> None:
    assert parse_ws("pong").kind == "pong"
    ack = parse_ws('{"event":"subscribe","arg":{"channel":"trades","instId":"BTC-USDT"}}')
    assert (ack.kind, ack.channel, ack.inst, ack.msg) == ("ack", "trades", "BTC-USDT", "subscribe")
    err = parse_ws('{"event":"error","code":"60012","msg":"Invalid request: x"}')
    assert (err.kind, err.code, err.msg) == ("error", "60012", "Invalid request: x")


def test_parse_ws_keeps_good_trades_of_a_push_and_reports_the_bad_one() -> None:
    push = {"arg": {"channel": "trades", "instId": "BTC-USDT"},
            "data": [GOOD, {**GOOD, "tradeId": "7", "side": "?"}]}
    msg = parse_ws(json.dumps(push))
    assert msg.kind == "trades" and [t.trade_id for t in msg.trades] == ["3263934921"]
    assert len(msg.problems) == 1 and "side" in msg.problems[0]


def test_parse_ws_attributes_truncated_json_to_its_instrument() -> None:
    text = json.dumps({"arg": {"channel": "trades", "instId": "ETH-USDT"}, "data": [GOOD]},
                      separators=(",", ":"))
    msg = parse_ws(text[: len(text) // 2])
    assert (msg.kind, msg.channel, msg.inst) == ("malformed", "trades", "ETH-USDT")
    assert msg.problems[0].startswith("not JSON")


@pytest.mark.parametrize("raw", ["[1,2]", "null", '{"data":[]}', '{"arg":{"channel":"trades",'
                                 '"instId":"BTC-USDT"},"data":{}}', b"\xff\xfe"],
                         ids=["list", "null", "no-arg", "data-not-list", "bad-utf8"])
def test_parse_ws_never_raises_on_garbage(raw: str | bytes) -> None:
    assert parse_ws(raw).kind == "malformed"


def test_parse_ws_reads_candle_pushes() -> None:
    msg = parse_ws(json.dumps({"arg": {"channel": "candle1m", "instId": "BTC-USDT"}, "data": [ROW]}))
    assert msg.kind == "candles" and msg.candles[0].ts == 1717000200000


def test_package_exports_a_sorted_public_api() -> None:
    import workers.ingestor as pkg

    assert pkg.__all__ == sorted(pkg.__all__)
    assert all(hasattr(pkg, name) for name in pkg.__all__)
