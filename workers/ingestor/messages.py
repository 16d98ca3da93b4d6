"""Parse and validate BloFin public messages (api-reference A.2, A.3, A.5).

Everything that comes off the wire passes through here. A record that does not parse is
reported as malformed (counted, skipped), never raised out of the stream loop. Validation is
strict: BloFin sends every value as a string, so a number where a string belongs (or a missing
field, an unknown side, a non-finite price) marks the record malformed rather than guessed at.
Prices and sizes are parsed from their decimal strings into float64 (see store.py for why).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from workers.ingestor.errors import MalformedMessage

PONG = "pong"
TRADES = "trades"
CANDLE_1M = "candle1m"
BAR_MS = 60_000
TS_MIN = 1_000_000_000_000  # 2001-09-09: anything earlier is not a BloFin time in ms
TS_MAX = 4_102_444_800_000  # 2100-01-01
SIDES = frozenset({"buy", "sell"})
_isfinite = math.isfinite
_INF = math.inf


class Trade(NamedTuple):
    """One trade, as stored: ts in ms since the epoch (UTC)."""

    trade_id: str
    inst: str
    price: float
    size: float
    side: str
    ts: int


class Candle(NamedTuple):
    """One 1-minute bar; ts is the bar's open time in ms. `confirm` is True once the bar closed."""

    inst: str
    ts: int
    open: float
    high: float
    low: float
    close: float
    vol: float
    vol_currency: float
    vol_currency_quote: float
    confirm: bool


@dataclass(slots=True)
class WsMessage:
    """One WebSocket message, classified.

    kind: "pong" | "ack" (subscribe/unsubscribe acknowledged) | "error" (an exchange error
    event: code, msg) | "trades" | "candles" | "other" (an event we do not use) |
    "malformed" (nothing usable; `problems` says why).
    """

    kind: str
    channel: str = ""
    inst: str = ""
    trades: list[Trade] = field(default_factory=list)
    candles: list[Candle] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # one entry per skipped record
    code: str = ""
    msg: str = ""


_ARG_RE = re.compile(r'"channel"\s*:\s*"([^"]{1,64})"\s*,\s*"instId"\s*:\s*"([^"]{1,64})"')


def _ts(value: Any) -> int:
    if type(value) is not str or not value.isdigit():
        raise ValueError(f"ts {value!r} is not a string of digits")
    ts = int(value)
    if not TS_MIN <= ts <= TS_MAX:
        raise ValueError(f"ts {value!r} is not a time in ms")
    return ts


def _decimal(value: Any, name: str) -> float:
    if type(value) is not str:
        raise ValueError(f"{name} {value!r} is not a decimal string")
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{name} {value!r} is not a decimal string") from None


def _pos(value: Any, name: str) -> float:
    number = _decimal(value, name)
    if not (_isfinite(number) and number > 0.0):
        raise ValueError(f"{name} {value!r} is not a positive finite number")
    return number


def _nonneg(value: Any, name: str) -> float:
    number = _decimal(value, name)
    if not (_isfinite(number) and number >= 0.0):
        raise ValueError(f"{name} {value!r} is not a non-negative finite number")
    return number


def parse_trade(obj: Any, inst: str | None = None) -> Trade:
    """Validate one trade object; `inst`, when given, is the instrument it must belong to."""
    try:  # the fast path: every field present, a string, and sane
        trade_id, inst_id, side = obj["tradeId"], obj["instId"], obj["side"]
        price_s, size_s, ts_s = obj["price"], obj["size"], obj["ts"]
        if (type(trade_id) is str and trade_id and type(inst_id) is str
                and (inst is None or inst_id == inst) and side in SIDES
                and type(price_s) is str and type(size_s) is str
                and type(ts_s) is str and ts_s.isdigit()):
            price, size, ts = float(price_s), float(size_s), int(ts_s)
            if 0.0 < price < _INF and 0.0 <= size < _INF and TS_MIN <= ts <= TS_MAX:
                return Trade(trade_id, inst_id, price, size, side, ts)
    except (KeyError, TypeError, ValueError):
        pass
    return _explain_trade(obj, inst)


def _explain_trade(obj: Any, inst: str | None) -> Trade:
    """The slow path: find what is wrong and say so (raises MalformedMessage)."""
    try:
        if not isinstance(obj, dict):
            raise ValueError(f"expected an object, got {type(obj).__name__}")
        trade_id = obj["tradeId"]
        if type(trade_id) is not str or not trade_id:
            raise ValueError(f"tradeId {trade_id!r} is not a non-empty string")
        inst_id = obj["instId"]
        if not isinstance(inst_id, str) or not inst_id:
            raise ValueError(f"instId {inst_id!r} is not a non-empty string")
        if inst is not None and inst_id != inst:
            raise ValueError(f"instId {inst_id!r} in a message for {inst!r}")
        side = obj["side"]
        if side not in SIDES:
            raise ValueError(f"side {side!r} is not buy/sell")
        return Trade(trade_id, inst_id, _pos(obj["price"], "price"),
                     _nonneg(obj["size"], "size"), side, _ts(obj["ts"]))
    except KeyError as exc:
        raise MalformedMessage(f"trade: missing field {exc.args[0]!r}", inst) from None
    except (ValueError, TypeError) as exc:
        raise MalformedMessage(f"trade: {exc}", inst) from None


def parse_candle(row: Any, inst: str) -> Candle:
    """Validate one 9-field candle row `[ts, o, h, l, c, vol, volCcy, volCcyQuote, confirm]`."""
    try:
        if not isinstance(row, list) or len(row) != 9:
            raise ValueError(f"expected a list of 9 fields, got {str(row)[:80]}")
        ts = _ts(row[0])
        if ts % BAR_MS:
            raise ValueError(f"ts {row[0]!r} is not on a minute boundary")
        o, h, lo, c = (_pos(row[i], name) for i, name in ((1, "open"), (2, "high"),
                                                          (3, "low"), (4, "close")))
        if not lo <= min(o, c) <= max(o, c) <= h:
            raise ValueError(f"inconsistent bar o={o} h={h} l={lo} c={c}")
        confirm = row[8]
        if confirm not in ("0", "1"):
            raise ValueError(f"confirm {confirm!r} is not '0'/'1'")
        return Candle(inst, ts, o, h, lo, c, _nonneg(row[5], "vol"),
                      _nonneg(row[6], "volCurrency"), _nonneg(row[7], "volCurrencyQuote"),
                      confirm == "1")
    except (ValueError, TypeError) as exc:
        raise MalformedMessage(f"candle: {exc}", inst) from None


def _arg(doc: dict[str, Any]) -> tuple[str, str]:
    arg = doc.get("arg")
    if not isinstance(arg, dict):
        return "", ""
    channel, inst = arg.get("channel"), arg.get("instId")
    return (channel if isinstance(channel, str) else "", inst if isinstance(inst, str) else "")


def parse_ws(raw: str | bytes) -> WsMessage:
    """Classify one WebSocket message; never raises."""
    if raw == PONG or raw == b"pong":
        return WsMessage("pong")
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
        head = _ARG_RE.search(text[:300])  # best effort: whose push was spoilt
        channel, inst = head.groups() if head else ("", "")
        return WsMessage("malformed", channel, inst, problems=[f"not JSON: {exc}"])
    if not isinstance(doc, dict):
        return WsMessage("malformed", problems=[f"not a JSON object: {str(doc)[:80]}"])
    channel, inst = _arg(doc)
    event = doc.get("event")
    if event is not None:
        if event == "error":
            return WsMessage("error", channel, inst, code=str(doc.get("code", "")),
                             msg=str(doc.get("msg", "")))
        if event in ("subscribe", "unsubscribe"):
            return WsMessage("ack", channel, inst, msg=str(event))
        return WsMessage("other", channel, inst, msg=str(event))
    data = doc.get("data")
    if not channel or not inst:
        return WsMessage("malformed", channel, inst,
                         problems=[f"push without arg.channel/arg.instId: {str(raw)[:80]!r}"])
    if not isinstance(data, list):
        return WsMessage("malformed", channel, inst, problems=[f"{channel} {inst}: data is not a list"])
    if channel == TRADES:
        return _trades(inst, data)
    if channel == CANDLE_1M:
        return _candles(inst, data)
    return WsMessage("other", channel, inst)


def _trades(inst: str, data: list[Any]) -> WsMessage:
    msg = WsMessage("trades", TRADES, inst)
    trades, problems = msg.trades, msg.problems
    for obj in data:
        try:
            trades.append(parse_trade(obj, inst))
        except MalformedMessage as exc:
            problems.append(str(exc))
    if not trades and problems:
        msg.kind = "malformed"
    return msg


def _candles(inst: str, data: list[Any]) -> WsMessage:
    msg = WsMessage("candles", CANDLE_1M, inst)
    for row in data:
        try:
            msg.candles.append(parse_candle(row, inst))
        except MalformedMessage as exc:
            msg.problems.append(str(exc))
    if not msg.candles and msg.problems:
        msg.kind = "malformed"
    return msg


def parse_envelope(body: Any, where: str) -> tuple[str, str, Any]:
    """Split a REST body into (code, msg, data); code is always compared as a string."""
    if not isinstance(body, dict):
        raise MalformedMessage(f"{where}: body is not a JSON object: {str(body)[:120]}")
    code = body.get("code")
    msg = body.get("msg") or body.get("error_message") or ""
    return ("" if code is None else str(code)), str(msg), body.get("data")
