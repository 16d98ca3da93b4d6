"""workers/retrain/_features.py: features from the past only; the label nets out the cost."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workers.retrain._bars import five_minute_bars
from workers.retrain._features import FEATURES, WARMUP_BARS, build_frame, instrument_features
from workers.retrain._store import InstData
from workers.retrain._ticks import combine, reduce
from workers.retrain.synthetic import Market, candles

B = 300_000


def _bars(n_days: float = 1.0, ticks: bool = True) -> pd.DataFrame:
    c = candles(Market(days=n_days, vol_5m=0.004, seed=11), 0)
    frame = pd.DataFrame({k: c[k] for k in ("ts", "open", "high", "low", "close", "vol", "vol_quote")})
    agg, span = None, None
    if ticks:
        rng = np.random.default_rng(0)
        ts = np.sort(rng.integers(int(c["ts"][0]), int(c["ts"][-1]), 20_000))
        agg, span = combine([reduce(ts, rng.random(len(ts)), rng.random(len(ts)) < 0.5)], after_ms=0)
    bars, _ = five_minute_bars(InstData(frame, agg, span))
    return bars


def test_features_at_a_bar_do_not_change_when_the_future_is_cut_off_or_rewritten() -> None:
    bars = _bars()
    full = instrument_features(bars)
    for cut in (60, 150, len(bars) - 2):
        past = instrument_features(bars.iloc[:cut])
        pd.testing.assert_frame_equal(full.iloc[:cut], past, check_exact=False, rtol=1e-12, atol=1e-15)
        future = bars.copy()
        future.iloc[cut:, :] = future.iloc[cut:, :].to_numpy() * 3.0  # a wildly different future
        pd.testing.assert_frame_equal(full.iloc[:cut], instrument_features(future).iloc[:cut],
                                      check_exact=False, rtol=1e-12, atol=1e-15)


def test_every_declared_feature_is_computed_and_mostly_defined_after_the_warmup() -> None:
    f = instrument_features(_bars())
    assert list(f.columns) == list(FEATURES)
    after = f.iloc[WARMUP_BARS:]
    assert (after.notna().mean() > 0.9).all(), after.notna().mean().sort_values().head()


def test_label_is_the_next_bar_direction_beyond_the_round_trip_cost() -> None:
    idx = pd.Index(np.arange(WARMUP_BARS + 6, dtype=np.int64) * B, name="ts")
    close = np.full(len(idx), 100.0)
    w = WARMUP_BARS
    close[w + 1] = 100.3   # +0.30 % > 0.224 %: up
    close[w + 2] = 100.3 * 1.002  # +0.20 %: inside the cost band, no label
    close[w + 3] = close[w + 2] * 0.997  # -0.30 %: down
    close[w + 5] = np.nan  # a missing bar: nothing before it is labelled or tradable
    bars = pd.DataFrame({"open": close, "high": close, "low": close, "close": close, "vol": 1.0,
                         "vol_quote": 1.0, "minutes": 5, "trades": np.nan, "buy_vol": np.nan,
                         "sell_vol": np.nan}, index=idx)
    frame, names = build_frame({"BTC-USDT": bars}, round_trip=0.00224)
    assert names == list(FEATURES)
    labels = frame["label"].tolist()
    assert labels[0] == 1.0 and np.isnan(labels[1]) and labels[2] == 0.0
    assert np.isnan(labels[4]) and not frame["tradable"].iloc[4] and frame["tradable"].iloc[1]
    assert frame["next_ret"].iloc[0] == pytest.approx(0.003)


def test_extra_features_join_the_frame_under_their_own_names() -> None:
    bars = _bars(ticks=False)
    frame, names = build_frame({"X-USDT": bars}, 0.002,
                               extra=lambda b: pd.DataFrame({"peek": b["close"].shift(-1)}, index=b.index))
    assert names[-1] == "peek" and "peek" in frame.columns


def test_rows_are_sorted_by_time_then_instrument() -> None:
    bars = _bars(0.5, ticks=False)
    frame, _ = build_frame({"B-USDT": bars, "A-USDT": bars}, 0.002)
    assert frame["ts"].is_monotonic_increasing
    assert frame["inst"].iloc[:2].tolist() == ["A-USDT", "B-USDT"]
