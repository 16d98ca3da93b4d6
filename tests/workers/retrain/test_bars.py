"""workers/retrain/_bars.py: a strict 5-minute grid; missing bars explicit; ticks only where covered."""

from __future__ import annotations

import numpy as np
import pandas as pd

from workers.retrain._bars import five_minute_bars
from workers.retrain._store import InstData
from workers.retrain._ticks import combine, reduce

M = 60_000
B = 300_000
T0 = 1_790_000_000_000 - 1_790_000_000_000 % B


def _candles(minutes: list[int]) -> pd.DataFrame:
    ts = np.array([T0 + m * M for m in minutes], dtype=np.int64)
    close = 100.0 + np.arange(len(ts), dtype=float)
    return pd.DataFrame({"ts": ts, "open": close - 0.5, "high": close + 1, "low": close - 1, "close": close,
                         "vol": np.ones(len(ts)), "vol_quote": close})


def test_bars_aggregate_minutes_and_keep_missing_slots_on_the_grid() -> None:
    # bar 0: minutes 0-4 (full), bar 1: nothing, bar 2: minutes 10,11,13 (partial), bar 3: 15-19
    minutes = [0, 1, 2, 3, 4, 10, 11, 13, 15, 16, 17, 18, 19]
    bars, info = five_minute_bars(InstData(_candles(minutes), None))
    assert bars.index.tolist() == [T0, T0 + B, T0 + 2 * B, T0 + 3 * B]
    assert bars["minutes"].tolist() == [5, 0, 3, 5]
    assert np.isnan(bars.loc[T0 + B, ["open", "high", "low", "close", "vol"]].astype(float)).all()
    first = bars.loc[T0]
    assert (first["open"], first["high"], first["low"], first["close"], first["vol"]) == (99.5, 105.0, 99.0, 104.0, 5.0)
    assert bars.loc[T0 + 2 * B, "close"] == 107.0  # the last minute present (13)
    assert info["missing"] == 1 and info["partial"] == 1 and info["bars"] == 4


def test_the_newest_bar_counts_only_once_its_fifth_minute_is_stored() -> None:
    bars, _ = five_minute_bars(InstData(_candles(list(range(0, 9))), None))  # minutes 5..8 of bar 1
    assert bars.index.tolist() == [T0]


def test_tick_aggregates_are_nan_where_the_stream_did_not_cover_the_bar() -> None:
    candles = _candles(list(range(0, 40)))  # 8 bars
    ts = np.array([T0 + B + 1_000, T0 + B + 2_000, T0 + 3 * B + 5, T0 + 6 * B + 7, T0 + 7 * B + 9], dtype=np.int64)
    agg, span = combine([reduce(ts, np.array([1.0, 2.0, 4.0, 1.0, 1.0]),
                                np.array([True, False, True, True, False]))], after_ms=0)
    gap = (T0 + 4 * B + 10, T0 + 4 * B + 20)  # trades may be missing inside bar 4
    bars, info = five_minute_bars(InstData(candles, agg, span, [gap]))
    trades = bars["trades"].tolist()
    # bar 0: before the first trade; bar 1: holds the first trade (may be partial); bar 4: the gap;
    # bar 7: holds the last trade (may still be filling)
    assert np.isnan(trades[0]) and np.isnan(trades[1]) and np.isnan(trades[4]) and np.isnan(trades[7])
    assert trades[2] == 0.0 and trades[3] == 1.0 and trades[5] == 0.0 and trades[6] == 1.0
    assert bars.loc[T0 + 3 * B, "buy_vol"] == 4.0 and bars.loc[T0 + 3 * B, "sell_vol"] == 0.0
    assert info["bars_with_ticks"] == 4


def test_without_ticks_every_tick_aggregate_is_unknown() -> None:
    bars, info = five_minute_bars(InstData(_candles(list(range(0, 20))), None))
    assert bars[["trades", "buy_vol", "sell_vol"]].isna().all().all() and info["bars_with_ticks"] == 0
