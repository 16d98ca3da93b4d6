"""5-minute OHLCV bars on a strict grid, from the 1-minute candles, plus tick aggregates.

Bars come from the candles (the ingestor backfills them over REST, so they are complete even
where the tick stream had gaps). The grid runs every 5 minutes from an instrument's first bar to
its last complete one; a slot with no 1m candle at all stays on the grid as a missing bar (NaN
prices, `minutes` = 0), never silently dropped or forward-filled: a missing bar cannot be
traded, and no label or return reaches across it. A slot with 1-4 of its 5 minutes is built from
the minutes present (`minutes` says how many). The newest slot counts only once its fifth
minute is stored.

Tick aggregates (trade count, taker buy and sell volume) are filled only for bars the tick
stream fully covered: after the first stored trade, before the last, and clear of every gap the
ingestor recorded (where trades may be missing). Elsewhere they are NaN -- "unknown", which the
model handles natively -- not zero.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from workers.retrain._store import InstData
from workers.retrain.config import BAR_MS, MINUTE_MS

BAR_COLUMNS = ["open", "high", "low", "close", "vol", "vol_quote", "minutes", "trades", "buy_vol",
               "sell_vol"]
MINUTES_PER_BAR = BAR_MS // MINUTE_MS


def five_minute_bars(data: InstData) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The instrument's bars indexed by open time (ms) on the strict grid, and a summary."""
    c = data.candles
    ts = c["ts"].to_numpy()
    bucket = ts - ts % BAR_MS
    grouped = c.assign(bucket=bucket).groupby("bucket", sort=True)
    bars = grouped.agg(open=("open", "first"), high=("high", "max"), low=("low", "min"),
                       close=("close", "last"), vol=("vol", "sum"), vol_quote=("vol_quote", "sum"),
                       minutes=("ts", "size"))
    last_end = int(ts[-1]) + MINUTE_MS  # the end of the newest stored minute
    complete = bars.index.to_numpy() + BAR_MS <= last_end
    bars = bars[complete]
    if bars.empty:
        return _empty(), {"bars": 0, "missing": 0, "partial": 0, "bars_with_ticks": 0}
    grid = np.arange(int(bars.index[0]), int(bars.index[-1]) + BAR_MS, BAR_MS, dtype=np.int64)
    bars = bars.reindex(grid)
    bars.index.name = "ts"
    bars["minutes"] = bars["minutes"].fillna(0).astype(np.int64)
    for col in ("vol", "vol_quote"):
        bars[col] = bars[col].where(bars["minutes"] > 0)
    trades, buy, sell = _tick_columns(data, grid)
    bars["trades"], bars["buy_vol"], bars["sell_vol"] = trades, buy, sell
    minutes = bars["minutes"].to_numpy()
    info = {
        "bars": len(bars),
        "missing": int((minutes == 0).sum()),
        "partial": int(((minutes > 0) & (minutes < MINUTES_PER_BAR)).sum()),
        "bars_with_ticks": int(np.isfinite(trades).sum()),
        "first_bar_ms": int(grid[0]),
        "last_bar_ms": int(grid[-1]),
    }
    return bars[BAR_COLUMNS], info


def _empty() -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype="float64") for c in BAR_COLUMNS},
                         index=pd.Index([], dtype="int64", name="ts"))
    frame["minutes"] = frame["minutes"].astype(np.int64)
    return frame


def _tick_columns(data: InstData, grid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per bar: trade count, taker-buy volume, taker-sell volume; NaN where not covered."""
    n = len(grid)
    nan = np.full(n, np.nan)
    ticks = data.ticks
    if ticks is None or ticks.empty or data.tick_span is None:
        return nan, nan.copy(), nan.copy()
    idx = (ticks["ts"].to_numpy() - grid[0]) // BAR_MS
    inside = (idx >= 0) & (idx < n)
    idx = idx[inside]
    count = np.bincount(idx, weights=ticks["trades"].to_numpy()[inside].astype(np.float64), minlength=n)
    buy_vol = np.bincount(idx, weights=ticks["buy_vol"].to_numpy()[inside], minlength=n)
    sell_vol = np.bincount(idx, weights=ticks["sell_vol"].to_numpy()[inside], minlength=n)
    first, last = data.tick_span
    start = -(-first // BAR_MS) * BAR_MS  # the bar holding the first trade may be partial
    covered = (grid >= start) & (grid + BAR_MS <= last)
    for lo, hi in data.tick_gaps:  # inclusive bounds: trades in [lo, hi] may be missing
        covered &= ~((grid <= hi) & (grid + BAR_MS > lo))
    return (np.where(covered, count, np.nan), np.where(covered, buy_vol, np.nan),
            np.where(covered, sell_vol, np.nan))
