"""Features strictly from the past, and the label, for every bar of every instrument.

At bar t (known at its close) every feature uses bars <= t only: no `shift(-k)`, no centred
windows (tests/workers/retrain/test_features.py recomputes them on truncated history and
checks nothing changes). The label is the one thing that looks ahead: the direction of the
next bar's return net of the round-trip cost --

    up (1)    when close[t+1] / close[t] - 1 >  round trip (fees + slippage, both sides)
    down (0)  when close[t+1] / close[t] - 1 < -round trip
    none      otherwise, or when bar t+1 is missing: too small to trade, not trained on,
              not scored (the model still predicts there, and the trade simulation trades there)

so the two classes are close to balanced and "accuracy >= 0.95" means leakage, not a majority
class. A bar is tradable when its close and the next close exist.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from workers.retrain.config import BAR_MS

WARMUP_BARS = 48  # the longest window; earlier rows are dropped
DAY_MS = 86_400_000
RETURN_LAGS = (1, 3, 6, 12, 24)
FEATURES: tuple[str, ...] = (
    *(f"ret_{k}" for k in RETURN_LAGS),
    "rv_12", "rv_48", "rv_ratio", "range", "range_z", "close_pos", "vol_z", "rsi_14", "stoch_12",
    "minutes", "tod_sin", "tod_cos", "dow_sin", "dow_cos", "trades_z", "imbalance", "imbalance_3",
)
REGIME_VOL = "rv_12"  # the volatility the regime gate looks at (1-hour realised, per bar)

ExtraFeatures = Callable[[pd.DataFrame], pd.DataFrame]


def _zscore(x: pd.Series, window: int) -> pd.Series:
    roll = x.rolling(window, min_periods=window // 2)
    return (x - roll.mean()) / roll.std()


def instrument_features(bars: pd.DataFrame) -> pd.DataFrame:
    """The feature columns of one instrument's bars (same index)."""
    close, high, low = bars["close"], bars["high"], bars["low"]
    lc = np.log(close)
    r1 = lc.diff()
    f: dict[str, pd.Series] = {f"ret_{k}": lc - lc.shift(k) for k in RETURN_LAGS}
    sq = r1 * r1
    f["rv_12"] = np.sqrt(sq.rolling(12, min_periods=8).mean())
    f["rv_48"] = np.sqrt(sq.rolling(48, min_periods=24).mean())
    f["rv_ratio"] = f["rv_12"] / f["rv_48"]
    rng = (high - low) / close
    f["range"] = rng
    f["range_z"] = _zscore(rng, 48)
    f["close_pos"] = (close - low) / (high - low) - 0.5
    f["vol_z"] = _zscore(np.log1p(bars["vol_quote"]), 48)
    gain, loss = r1.clip(lower=0), (-r1).clip(lower=0)
    avg_gain = gain.ewm(alpha=1 / 14, min_periods=14, adjust=False).mean()
    avg_loss = loss.ewm(alpha=1 / 14, min_periods=14, adjust=False).mean()
    f["rsi_14"] = avg_gain / (avg_gain + avg_loss) - 0.5  # (RSI - 50) / 100
    low_12 = low.rolling(12, min_periods=8).min()
    high_12 = high.rolling(12, min_periods=8).max()
    f["stoch_12"] = (close - low_12) / (high_12 - low_12) - 0.5
    f["minutes"] = bars["minutes"].astype(np.float64)
    ts = bars.index.to_numpy()
    day = 2 * np.pi * (ts % DAY_MS) / DAY_MS
    week = 2 * np.pi * (((ts // DAY_MS) + 3) % 7) / 7  # 1970-01-01 was a Thursday: Monday = 0
    f["tod_sin"] = pd.Series(np.sin(day), index=bars.index)
    f["tod_cos"] = pd.Series(np.cos(day), index=bars.index)
    f["dow_sin"] = pd.Series(np.sin(week), index=bars.index)
    f["dow_cos"] = pd.Series(np.cos(week), index=bars.index)
    buy, sell = bars["buy_vol"], bars["sell_vol"]
    f["trades_z"] = _zscore(np.log1p(bars["trades"]), 48)
    f["imbalance"] = (buy - sell) / (buy + sell)
    buy_3, sell_3 = buy.rolling(3).sum(), sell.rolling(3).sum()
    f["imbalance_3"] = (buy_3 - sell_3) / (buy_3 + sell_3)
    out = pd.DataFrame(f, index=bars.index)
    return out.replace([np.inf, -np.inf], np.nan)


def build_frame(bars_by_inst: dict[str, pd.DataFrame], round_trip: float,
                extra: ExtraFeatures | None = None) -> tuple[pd.DataFrame, list[str]]:
    """One row per (instrument, bar) after the warm-up, sorted by (ts, inst): the features,
    `label` (1.0 up, 0.0 down, NaN none), `next_ret`, `tradable` and `regime_vol`."""
    frames = []
    names = list(FEATURES)
    for inst, bars in bars_by_inst.items():
        f = instrument_features(bars)
        if extra is not None:
            more = extra(bars)
            f = f.join(more)
            names += [c for c in more.columns if c not in names]
        close = bars["close"]
        next_ret = close.shift(-1) / close - 1
        f["next_ret"] = next_ret
        f["label"] = np.where(next_ret > round_trip, 1.0, np.where(next_ret < -round_trip, 0.0, np.nan))
        f["tradable"] = next_ret.notna()
        f["regime_vol"] = f[REGIME_VOL]
        f["inst"] = inst
        f = f.iloc[WARMUP_BARS:]
        frames.append(f.reset_index())
    frame = pd.concat(frames, ignore_index=True)
    frame = frame.sort_values(["ts", "inst"], kind="stable").reset_index(drop=True)
    return frame, names


def timeline(frame: pd.DataFrame) -> np.ndarray:
    """Every 5-minute open time from the first row to the last (the folds' clock)."""
    lo, hi = int(frame["ts"].iloc[0]), int(frame["ts"].iloc[-1])
    return np.arange(lo, hi + BAR_MS, BAR_MS, dtype=np.int64)
