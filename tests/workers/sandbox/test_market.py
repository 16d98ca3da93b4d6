"""workers/sandbox/market.py: a deterministic, realistic, fast market model."""

from __future__ import annotations

import math
import time
from decimal import Decimal

import pytest

from workers.sandbox.errors import BadParameter, UnknownInstrument
from workers.sandbox.market import Market, Trade

T0 = 1_716_999_960_000  # a whole minute (UTC)
INSTS = ["BTC-USDT", "ETH-USDT", "SHIB-USDT"]


@pytest.fixture(scope="module")
def market() -> Market:
    return Market(seed=7, instruments=INSTS, start_ms=T0, rate=50.0)


def test_same_seed_gives_the_same_trades(market: Market) -> None:
    other = Market(seed=7, instruments=["BTC-USDT"], start_ms=T0, rate=50.0)
    a = market.trades_between("BTC-USDT", T0, T0 + 180_000)
    assert a == other.trades_between("BTC-USDT", T0, T0 + 180_000)
    assert len(a) > 1000


def test_a_different_seed_gives_different_trades(market: Market) -> None:
    other = Market(seed=8, instruments=["BTC-USDT"], start_ms=T0, rate=50.0)
    a = market.trades_between("BTC-USDT", T0, T0 + 60_000)
    b = other.trades_between("BTC-USDT", T0, T0 + 60_000)
    assert [t.price for t in a[:50]] != [t.price for t in b[:50]]


def test_trades_do_not_depend_on_the_order_they_are_asked_for() -> None:
    late_first = Market(seed=7, instruments=["ETH-USDT"], start_ms=T0, rate=50.0)
    tail = late_first.trades_between("ETH-USDT", T0 + 600_000, T0 + 660_000)
    fresh = Market(seed=7, instruments=["ETH-USDT"], start_ms=T0, rate=50.0)
    fresh.trades_between("ETH-USDT", T0, T0 + 660_000)
    assert fresh.trades_between("ETH-USDT", T0 + 600_000, T0 + 660_000) == tail


@pytest.mark.parametrize("inst", INSTS)
def test_trade_ids_are_consecutive_and_ts_non_decreasing(market: Market, inst: str) -> None:
    trades = market.trades_between(inst, T0, T0 + 300_000)
    ids = [int(t.trade_id) for t in trades]
    assert ids == list(range(ids[0], ids[0] + len(ids)))
    assert all(len(t.trade_id) == 10 for t in trades)
    ts = [t.ts for t in trades]
    assert ts == sorted(ts)
    assert T0 <= ts[0] and ts[-1] < T0 + 300_000
    assert {t.side for t in trades} == {"buy", "sell"}
    assert all(int(t.size) >= 1 for t in trades)


def test_trades_between_is_half_open_and_splits_cleanly(market: Market) -> None:
    a, b, c = T0 + 10_000, T0 + 61_234, T0 + 125_000
    whole = market.trades_between("BTC-USDT", a, c)
    halves = market.trades_between("BTC-USDT", a, b) + market.trades_between("BTC-USDT", b, c)
    assert whole == halves
    assert all(a <= t.ts < c for t in whole)


def test_trades_upto_is_the_newest_first_tail(market: Market) -> None:
    now = T0 + 200_000
    truth = market.trades_between("SHIB-USDT", T0, now + 1)
    assert market.trades_upto("SHIB-USDT", now, 100) == truth[::-1][:100]
    assert market.trades_upto("SHIB-USDT", T0 - 1, 100) == []


@pytest.mark.parametrize(
    ("inst", "low", "high", "decimals"),
    [("BTC-USDT", 40_000, 90_000, 1), ("ETH-USDT", 2_000, 4_500, 2),
     ("SHIB-USDT", 0.00001, 0.00004, 8)],
)
def test_price_levels_and_ticks_look_real(market: Market, inst: str, low: float, high: float,
                                          decimals: int) -> None:
    trades = market.trades_between(inst, T0, T0 + 120_000)
    for t in trades[:500]:
        assert low < float(t.price) < high
        assert len(t.price.split(".")[1]) == decimals


def test_to_blofin_is_all_strings() -> None:
    t = Trade("1000000001", "BTC-USDT", "64210.5", "12", "sell", 1717000000123)
    assert t.to_blofin() == {"instId": "BTC-USDT", "tradeId": "1000000001", "price": "64210.5",
                             "size": "12", "side": "sell", "ts": "1717000000123"}


def test_bursts_reach_hundreds_of_trades_a_second(market: Market) -> None:
    trades = market.trades_between("BTC-USDT", T0, T0 + 1_800_000)
    per_second: dict[int, int] = {}
    for t in trades:
        per_second[t.ts // 1000] = per_second.get(t.ts // 1000, 0) + 1
    mean = len(trades) / 1800
    assert 25 < mean < 100  # rate 50/s, give or take the activity regimes
    assert max(per_second.values()) >= 200


def test_volatility_clusters(market: Market) -> None:
    rows = market.candles("BTC-USDT", "1m", now_ms=T0 + 3 * 86_400_000, limit=1440)
    closes = [float(c.close) for c in reversed(rows)]
    r = [abs(math.log(b / a)) for a, b in zip(closes, closes[1:])]
    mean = sum(r) / len(r)
    cov = sum((x - mean) * (y - mean) for x, y in zip(r, r[1:])) / len(r)
    var = sum((x - mean) ** 2 for x in r) / len(r)
    assert cov / var > 0.1  # |returns| are autocorrelated: calm and wild spells


def _truth_candle(trades: list[Trade], contract_value: str, tick: str) -> list[str]:
    prices = [Decimal(t.price) for t in trades]
    vol = sum(int(t.size) for t in trades)
    quote = sum(Decimal(t.price) * int(t.size) for t in trades) * Decimal(contract_value)
    hi = max(prices)
    lo = min(prices)
    return [trades[0].price, str(next(t.price for t in trades if Decimal(t.price) == hi)),
            str(next(t.price for t in trades if Decimal(t.price) == lo)), trades[-1].price,
            str(vol), str((vol * Decimal(contract_value)).normalize()),
            str(quote.normalize() if quote != quote.to_integral() else quote.to_integral())]


@pytest.mark.parametrize("bar,bar_ms", [("1m", 60_000), ("5m", 300_000), ("1H", 3_600_000)])
@pytest.mark.parametrize("inst", INSTS)
def test_candles_are_the_ohlc_of_their_trades(market: Market, inst: str, bar: str,
                                              bar_ms: int) -> None:
    now = T0 + 2 * 3_600_000 + 30_000
    spec = market.spec(inst)
    rows = market.candles(inst, bar, now_ms=now, limit=2 if bar == "1H" else 3)
    assert rows and not rows[0].confirm and all(c.confirm for c in rows[1:])
    for c in rows:
        trades = market.trades_between(inst, c.ts, min(c.ts + bar_ms, now + 1))
        row = c.to_blofin()
        assert row[0] == str(c.ts) and c.ts % bar_ms == 0
        want = _truth_candle(trades, spec.contract_value, spec.tick)
        assert row[1:5] == want[:4]
        assert row[5] == want[4]
        assert Decimal(row[6]) == Decimal(want[5])
        assert Decimal(row[7]) == Decimal(want[6])
        assert row[8] == ("1" if c.confirm else "0")


def test_candle_paging_with_after_and_before(market: Market) -> None:
    now = T0 + 3_600_000 + 5_000
    page = market.candles("ETH-USDT", "1m", now_ms=now, limit=10)
    assert [c.ts for c in page] == [now - 5_000 - 60_000 * k for k in range(10)]
    older = market.candles("ETH-USDT", "1m", now_ms=now, after=page[-1].ts, limit=5)
    assert [c.ts for c in older] == [page[-1].ts - 60_000 * k for k in range(1, 6)]
    newer = market.candles("ETH-USDT", "1m", now_ms=now, before=page[3].ts)
    assert [c.ts for c in newer] == [c.ts for c in page[:3]]
    both = market.candles("ETH-USDT", "1m", now_ms=now, after=page[0].ts, before=page[4].ts)
    assert [c.ts for c in both] == [c.ts for c in page[1:4]]
    first = market.candles("ETH-USDT", "1m", now_ms=now, limit=1440)
    assert first[-1].ts == T0  # history starts at the market start


def test_unknown_instrument_and_bad_bar_are_named(market: Market) -> None:
    with pytest.raises(UnknownInstrument, match="DOGE-USDT"):
        market.trades_between("DOGE-USDT", T0, T0 + 1)
    with pytest.raises(BadParameter, match="bar") as info:
        market.candles("BTC-USDT", "2m", now_ms=T0)
    assert info.value.param == "bar"
    with pytest.raises(BadParameter, match="rate"):
        Market(7, ["BTC-USDT"], T0, 0.0)


def test_generates_at_least_200k_trades_a_second() -> None:
    best = 0.0
    for attempt in range(3):  # CPU time, so that other processes' load does not count
        m = Market(seed=attempt, instruments=["BTC-USDT"], start_ms=T0, rate=5_000.0)
        t = time.process_time()
        n = len(m.trades_between("BTC-USDT", T0, T0 + 60_000))
        best = max(best, n / (time.process_time() - t))
        if best >= 200_000:
            break
    assert best >= 200_000, f"{best:,.0f} trades/s"
