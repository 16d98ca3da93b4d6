"""Synthetic stores in the ingestor's exact layout, for the tests and the bench.

`write_store` fills a data dir as workers.ingestor would: `candles_1m/` and `ticks/` Parquet
parts through the ingestor's own PartStore, and `ticks/manifest.json` through its Manifest.
The 5-minute log returns follow

    r[t] = signal * r[t-1] * s[t] / s[t-1] + sqrt(1 - signal**2) * s[t] * e[t]

with a clustered volatility s (log-AR(1)), so `signal` > 0 plants a learnable momentum and
`signal` = 0 is a random walk. Each 5-minute return is split into five 1-minute candles;
ticks (if asked for) are spread over the minutes with the candle's prices.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from workers.ingestor.manifest import Manifest
from workers.ingestor.store import CANDLE_SCHEMA, TICK_SCHEMA, TS_TYPE, PartStore

MINUTE_MS = 60_000


@dataclass(frozen=True)
class Market:
    """What to generate."""

    instruments: tuple[str, ...] = ("BTC-USDT", "ETH-USDT")
    days: float = 3.0
    end_ms: int = 1_790_000_000_000 - 1_790_000_000_000 % 300_000  # 2026-09-21, on the 5m grid
    signal: float = 0.0
    vol_5m: float = 0.004
    vol_of_vol: float = 0.15
    seed: int = 1
    ticks: int = 0  # total over all instruments, spread over the last `tick_days`
    tick_days: float | None = None  # default: the whole history
    drop_minutes: float = 0.0  # share of 1m candles missing at random
    drop_bars: int = 0  # whole 5-minute slots missing (no candle in them)
    calm_until: float = 0.0  # share of the history at a tenth of the volatility (a regime change)


def returns_5m(m: Market, rng: np.random.Generator, n: int) -> np.ndarray:
    h = np.zeros(n)
    shocks = rng.normal(0, m.vol_of_vol, n)
    for i in range(1, n):
        h[i] = 0.98 * h[i - 1] + shocks[i]
    s = m.vol_5m * np.exp(h - h.mean())
    s[: int(n * m.calm_until)] *= 0.1
    e = rng.normal(0, 1, n)
    r = np.empty(n)
    r[0] = s[0] * e[0]
    k = np.sqrt(1 - m.signal**2)
    for i in range(1, n):
        r[i] = m.signal * r[i - 1] * s[i] / s[i - 1] + k * s[i] * e[i]
    return r


def candles(m: Market, inst_no: int) -> dict[str, np.ndarray]:
    """One instrument's 1-minute candles (ts, o, h, l, c, vol, quote vol)."""
    rng = np.random.default_rng([m.seed, inst_no])
    n5 = int(m.days * 288)
    r5 = returns_5m(m, rng, n5)
    noise = rng.normal(0, m.vol_5m / 3, (n5, 5))
    noise -= noise.mean(axis=1, keepdims=True)
    r1 = (r5[:, None] / 5 + noise).ravel()
    close = 100.0 * (1 + inst_no) * np.exp(np.cumsum(r1))
    open_ = np.r_[close[0] / np.exp(r1[0]), close[:-1]]
    wick = np.abs(rng.normal(0, m.vol_5m / 4, (2, len(close))))
    high = np.maximum(open_, close) * (1 + wick[0])
    low = np.minimum(open_, close) / (1 + wick[1])
    vol = rng.lognormal(3, 0.5, len(close)) * (1 + 50 * np.abs(r1) / m.vol_5m)
    ts = m.end_ms - (len(close) - np.arange(len(close))) * MINUTE_MS
    keep = rng.random(len(ts)) >= m.drop_minutes
    if m.drop_bars:
        slots = rng.choice(np.arange(60, n5 - 60), m.drop_bars, replace=False)
        keep[(slots[:, None] * 5 + np.arange(5)).ravel()] = False
    return {"ts": ts[keep], "open": open_[keep], "high": high[keep], "low": low[keep],
            "close": close[keep], "vol": vol[keep], "vol_quote": vol[keep] * close[keep]}


def candle_table(inst: str, c: dict[str, np.ndarray]) -> pa.Table:
    n = len(c["ts"])
    return pa.table({
        "ts": pa.array(c["ts"], pa.int64()).cast(TS_TYPE), "inst": pa.array([inst] * n, pa.string()),
        "open": c["open"], "high": c["high"], "low": c["low"], "close": c["close"], "vol": c["vol"],
        "vol_currency": c["vol"] / 100, "vol_currency_quote": c["vol_quote"],
        "source": pa.array(["rest"] * n, pa.string()),
    }, schema=CANDLE_SCHEMA)


def tick_table(inst: str, c: dict[str, np.ndarray], count: int, since_ms: int, seed: int) -> pa.Table:
    """`count` trades inside the candles from `since_ms` on, at prices between open and close."""
    rng = np.random.default_rng([seed, 99, len(inst)])
    rows = np.flatnonzero(c["ts"] >= since_ms)
    minute = np.sort(rng.choice(rows, count, replace=True))
    ts = c["ts"][minute] + np.sort(rng.integers(0, MINUTE_MS, count))
    order = np.lexsort((ts, minute))
    minute, ts = minute[order], ts[order]
    w = rng.random(count)
    price = c["open"][minute] * (1 - w) + c["close"][minute] * w
    up = c["close"][minute] > c["open"][minute]
    buy = rng.random(count) < np.where(up, 0.6, 0.4)
    base = 3_000_000_000 + 10_000_000 * len(inst)
    return pa.table({
        "ts": pa.array(ts, pa.int64()).cast(TS_TYPE), "inst": pa.array([inst] * count, pa.string()),
        "trade_id": pa.array((base + np.arange(count)).astype(str), pa.string()),
        "price": price, "size": rng.lognormal(1, 1, count),
        "side": pa.array(np.where(buy, "buy", "sell"), pa.string()),
    }, schema=TICK_SCHEMA)


def write_store(data_dir: Path, m: Market, *, manifest: bool = True,
                until_ms: int | None = None) -> dict[str, int]:
    """Write the market into `data_dir` (only what happened before `until_ms`, if given: the
    same market seen earlier); returns counts (candles, ticks, parts)."""
    cstore = PartStore(data_dir, "candles_1m", CANDLE_SCHEMA)
    tstore = PartStore(data_dir, "ticks", TICK_SCHEMA)
    man = Manifest(data_dir / "ticks" / "manifest.json", source={"ws_url": "synthetic", "rest_url": "synthetic"})
    totals = {"candles": 0, "ticks": 0, "parts": 0}
    for no, inst in enumerate(m.instruments):
        per_inst = m.ticks // len(m.instruments) + (1 if no < m.ticks % len(m.instruments) else 0)
        c = candles(m, no)
        if until_ms is not None:
            c = {k: v[c["ts"] < until_ms] for k, v in c.items()}
        rec = man.inst(inst)
        parts = cstore.write(inst, candle_table(inst, c))
        rec.candles.files.update((p.path, p) for p in parts)
        rec.candles.complete_through_ms = int(c["ts"][-1])
        totals["candles"] += len(c["ts"])
        totals["parts"] += len(parts)
        if per_inst:
            since = m.end_ms - int((m.tick_days or m.days) * 86_400_000)
            t = tick_table(inst, c, per_inst, since, m.seed)
            tparts = tstore.write(inst, t)
            rec.files.update((p.path, p) for p in tparts)
            rec.last_ts_ms = max(p.last_ts for p in tparts)
            totals["ticks"] += t.num_rows
            totals["parts"] += len(tparts)
    if manifest:
        man.save()
    return totals
