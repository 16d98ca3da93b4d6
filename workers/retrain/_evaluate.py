"""Trade simulation on out-of-fold predictions, and the numbers that judge it.

Execution: at the close of bar t the model's P(up) opens (or keeps) a long when >= `enter`, a
short when <= 1 - `enter`, else the position is flat; the position is held to the close of
bar t+1 and earns its simple return. A position that the next prediction confirms is kept, not
closed and reopened, so a trade is a run of bars with the same position, and pays fee plus
slippage once on entry and once on exit (a flip pays both sides at once). A bar that cannot be
traded (its close or the next one is missing) is flat, and so is every bar outside the periods
simulated; an open position is closed at the end of each contiguous stretch. So the per-bar net
returns add up to the trade returns exactly.

Sharpe (policies.trading.annualised_sharpe): per-bar net returns of the period, flat bars
included as zero, mean / stdev * sqrt(105,120) -- 5-minute bars, 24/7, 365 days. Several
instruments form an equal-weight portfolio: each bar's return is the mean over the instruments
(capital split evenly; an instrument without a tradable bar there contributes zero). Max drawdown
is the largest fall of compounded equity from its running peak; profit factor is gross profit
over gross loss of the trades; expectancy is the mean net return per trade.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import f1_score

from policies.trading import GateSettings, annualised_sharpe, bartlett_effective_n, chance_accuracy, sharpe_gate
from workers.retrain.config import BAR_MS


@dataclass
class Book:
    """A simulation: per (instrument, bar) positions and net returns, and the trades."""

    bars: pd.DataFrame  # ts, inst, position, net
    trades: pd.DataFrame  # inst, entry_ts (bar the trade opened on), last_ts, side, bars, ret
    instruments: int

    def portfolio(self, lo: int | None = None, hi: int | None = None) -> pd.Series:
        """Equal-weight per-bar net return, indexed by ts (every bar of the simulated clock),
        between two bar open times when given."""
        bars = self.bars
        if lo is not None:
            bars = bars[bars["ts"] >= lo]
        if hi is not None:
            bars = bars[bars["ts"] <= hi]
        if bars.empty:
            return pd.Series(dtype=np.float64)
        summed = bars.groupby("ts", sort=True)["net"].sum() / max(self.instruments, 1)
        clock = np.arange(int(summed.index[0]), int(summed.index[-1]) + BAR_MS, BAR_MS)
        return summed.reindex(clock, fill_value=0.0)

    def trades_in(self, lo: int, hi: int, inst: str | None = None) -> pd.DataFrame:
        t = self.trades
        mask = (t["entry_ts"] >= lo) & (t["entry_ts"] <= hi)
        if inst is not None:
            mask &= t["inst"] == inst
        return t[mask]


def positions(proba: np.ndarray, tradable: np.ndarray, enter: float) -> np.ndarray:
    """+1 long, -1 short, 0 flat per row."""
    p = np.zeros(len(proba), dtype=np.int64)
    ok = tradable & ~np.isnan(proba)
    p[ok & (proba >= enter)] = 1
    p[ok & (1 - proba >= enter)] = -1  # P(down) >= enter, symmetric with the long side
    return p


def simulate(frame: pd.DataFrame, proba: np.ndarray, active: np.ndarray, enter: float,
             cost_per_side: float) -> Book:
    """Trade every instrument over the rows where `active` is True."""
    bars_out, trades_out = [], []
    insts = frame.loc[active, "inst"].unique()
    for inst in insts:
        rows = np.flatnonzero(active & (frame["inst"] == inst).to_numpy())
        ts = frame["ts"].to_numpy()[rows]
        order = np.argsort(ts, kind="stable")
        rows, ts = rows[order], ts[order]
        p = positions(proba[rows], frame["tradable"].to_numpy()[rows], enter)
        r = np.nan_to_num(frame["next_ret"].to_numpy()[rows])
        seg_start = np.r_[True, np.diff(ts) != BAR_MS]
        seg_end = np.r_[seg_start[1:], True]
        prev = np.r_[0, p[:-1]]
        prev[seg_start] = 0
        gross = p * r
        net = gross - cost_per_side * (np.abs(p - prev) + np.abs(p) * seg_end)
        bars_out.append(pd.DataFrame({"ts": ts, "inst": inst, "position": p, "net": net}))
        opened = (p != 0) & ((p != prev) | seg_start)
        run = np.cumsum(opened)
        held = p != 0
        if held.any():
            ids = run[held] - 1
            n = int(run[-1])
            trades_out.append(pd.DataFrame({
                "inst": inst,
                "entry_ts": ts[opened],
                "last_ts": np.maximum.reduceat(ts[held], np.flatnonzero(np.r_[True, np.diff(ids) != 0])),
                "side": p[opened],
                "bars": np.bincount(ids, minlength=n),
                "ret": np.bincount(ids, weights=gross[held], minlength=n) - 2 * cost_per_side,
            }))
    bars = (pd.concat(bars_out, ignore_index=True) if bars_out
            else pd.DataFrame({"ts": pd.Series(dtype=np.int64), "inst": pd.Series(dtype=str),
                               "position": pd.Series(dtype=np.int64), "net": pd.Series(dtype=np.float64)}))
    trades = (pd.concat(trades_out, ignore_index=True) if trades_out
              else pd.DataFrame({"inst": pd.Series(dtype=str), "entry_ts": pd.Series(dtype=np.int64),
                                 "last_ts": pd.Series(dtype=np.int64), "side": pd.Series(dtype=np.int64),
                                 "bars": pd.Series(dtype=np.int64), "ret": pd.Series(dtype=np.float64)}))
    return Book(bars, trades, len(insts))


def trading_stats(net: np.ndarray, trade_returns: np.ndarray, gates: GateSettings,
                  exposure: float | None = None) -> dict[str, Any]:
    """trades, win rate, Sharpe (None below gates.min_trades, with the reason), max drawdown,
    profit factor, expectancy, total return, over per-bar net returns `net`."""
    n = len(trade_returns)
    sharpe, verdict = sharpe_gate(n, annualised_sharpe(net.tolist()), gates)
    equity = np.cumprod(1.0 + net) if len(net) else np.ones(0)
    peak = np.maximum.accumulate(np.r_[1.0, equity])[1:]
    gains = float(trade_returns[trade_returns > 0].sum())
    losses = float(-trade_returns[trade_returns < 0].sum())
    return {
        "bars": int(len(net)),
        "trades": n,
        "win_rate": float((trade_returns > 0).mean()) if n else None,
        "sharpe": sharpe,
        "sharpe_note": verdict.reason,
        "max_drawdown": float((1 - equity / peak).max()) if len(net) else 0.0,
        "profit_factor": gains / losses if losses > 0 else None,
        "expectancy": float(trade_returns.mean()) if n else None,
        "total_return": float(equity[-1] - 1) if len(net) else 0.0,
        "exposure": exposure,
    }


def book_stats(book: Book, gates: GateSettings, lo: int, hi: int, inst: str | None = None) -> dict[str, Any]:
    """trading_stats of the portfolio (or one instrument) between two bar open times."""
    bars = book.bars[(book.bars["ts"] >= lo) & (book.bars["ts"] <= hi)]
    if inst is None:
        net = book.portfolio(lo, hi).to_numpy()
    else:
        bars = bars[bars["inst"] == inst].sort_values("ts")
        net = bars["net"].to_numpy()
    exposure = float((bars["position"] != 0).mean()) if len(bars) else None
    trades = book.trades_in(lo, hi, inst)["ret"].to_numpy()
    return trading_stats(net, trades, gates, exposure)


def classification(y: np.ndarray, proba: np.ndarray) -> dict[str, Any]:
    """Accuracy, F1 (of "up") and the base rate (majority class share) over labelled rows with
    a prediction."""
    ok = ~np.isnan(y) & ~np.isnan(proba)
    n = int(ok.sum())
    if n == 0:
        return {"labelled": 0, "accuracy": None, "f1": None, "base_rate": None, "up_share": None}
    truth, pred = y[ok], (proba[ok] >= 0.5).astype(np.float64)
    up = float(truth.mean())
    return {
        "labelled": n,
        "accuracy": float((truth == pred).mean()),
        "f1": float(f1_score(truth, pred, zero_division=0.0)),
        "base_rate": max(up, 1 - up),
        "up_share": up,
    }


CONTROL_LAGS = 12  # autocorrelation lags (bars, one hour) behind the control's effective sample size


def _autocorrs(x: np.ndarray, lags: int) -> list[float]:
    d = x - x.mean()
    var = float((d * d).mean())
    if var == 0 or len(x) <= lags + 1:
        return []
    return [float((d[:-k] * d[k:]).mean() / var) for k in range(1, lags + 1)]


def control_accuracy(y: np.ndarray, control: np.ndarray, inst: np.ndarray) -> dict[str, Any]:
    """The shuffled-label control on labelled rows: its accuracy (the mean over repeats), the
    accuracy chance alone would give it (predictions independent of the labels, at the share
    of "up" it predicted), and how many independent rows that is worth -- neighbouring bars'
    hits are correlated (features and labels both are), so their autocorrelation over an hour
    of lags, per instrument in time order, shrinks the sample (Bartlett; the smallest over the
    repeats is kept)."""
    ok = ~np.isnan(y) & ~np.isnan(control[0])
    n = int(ok.sum())
    if n == 0:
        return {"accuracy": None, "chance": None, "per_repeat": [], "effective_n": 0.0}
    order = np.argsort(inst[ok], kind="stable")  # rows are in time order within an instrument
    truth = y[ok][order] == 1.0
    up = float(truth.mean())
    accs, chances, neffs = [], [], []
    for proba in control:
        pred = proba[ok][order] >= 0.5
        hits = (pred == truth).astype(np.float64)
        accs.append(float(hits.mean()))
        chances.append(chance_accuracy(float(pred.mean()), up))
        neffs.append(bartlett_effective_n(n, _autocorrs(hits, CONTROL_LAGS)))
    return {"accuracy": float(np.mean(accs)), "chance": float(np.mean(chances)), "per_repeat": accs,
            "effective_n": min(neffs)}
