"""report.html: one self-contained page (PNG plots embedded as base64, no script) that says at
a glance whether the model was promoted, and why."""

from __future__ import annotations

import base64
import html
import io
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

COLOURS = {"promoted": "#1a7f37", "kept": "#9a6700", "failed": "#cf222e"}


def _dates(ms: np.ndarray) -> np.ndarray:
    return np.asarray(ms, dtype="datetime64[ms]")


def _png(fig: Figure) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def equity_png(curves: dict[str, pd.Series], folds: list[dict[str, Any]],
               arms: dict[str, pd.Series]) -> str:
    """Compounded equity of the out-of-fold portfolio and each instrument, fold windows shaded,
    the A/B arms dashed; drawdown of the portfolio below."""
    fig, (top, low) = plt.subplots(2, 1, figsize=(11, 6.2), sharex=True, height_ratios=[3, 1],
                                   layout="constrained")
    for i, f in enumerate(folds):
        lo, hi = _dates(np.array([f["test_start_ms"], f["test_end_ms"]]))
        for ax in (top, low):
            ax.axvspan(lo, hi, color="#0969da" if i % 2 else "#8250df", alpha=0.06, lw=0)
        top.annotate(f"fold {f['fold']}", (lo, 1), xycoords=("data", "axes fraction"),
                     xytext=(3, -12), textcoords="offset points", fontsize=8, color="#57606a")
    for name, series in curves.items():
        if series.empty:
            continue
        equity = (1 + series).cumprod() - 1
        top.plot(_dates(series.index.to_numpy()), equity * 100, lw=2.2 if name == "portfolio" else 1,
                 color="black" if name == "portfolio" else None, label=name,
                 alpha=1 if name == "portfolio" else 0.75)
    for name, series in arms.items():
        if series.empty:
            continue
        top.plot(_dates(series.index.to_numpy()), ((1 + series).cumprod() - 1) * 100, ls="--", lw=1.4,
                 label=f"A/B: {name}")
    top.axhline(0, color="#57606a", lw=0.8)
    top.set_ylabel("net return, %")
    top.set_title("Out-of-fold equity, net of fees and slippage")
    top.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    top.grid(alpha=0.3)
    port = curves.get("portfolio", pd.Series(dtype=float))
    if not port.empty:
        equity = (1 + port).cumprod()
        dd = equity / np.maximum.accumulate(np.r_[1.0, equity.to_numpy()])[1:] - 1
        low.fill_between(_dates(port.index.to_numpy()), dd * 100, 0, color="#cf222e", alpha=0.4, lw=0)
    low.set_ylabel("drawdown, %")
    low.grid(alpha=0.3)
    low.xaxis.set_major_formatter(mdates.ConciseDateFormatter(low.xaxis.get_major_locator()))
    return _png(fig)


def folds_png(folds: list[dict[str, Any]]) -> str:
    """Per fold: Sharpe (or why there is none) and trades; accuracy vs base rate vs the
    shuffled-label control."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.6), layout="constrained")
    k = np.array([f["fold"] for f in folds])
    sharpe = [f["trading"]["sharpe"] for f in folds]
    heights = [s if s is not None else 0.0 for s in sharpe]
    colours = ["#1a7f37" if (s or 0) > 0 else "#cf222e" for s in sharpe]
    left.bar(k, heights, color=colours)
    for x, s, f in zip(k, sharpe, folds):
        text = f"{f['trading']['trades']} trades" + ("" if s is not None else "\nno Sharpe")
        left.annotate(text, (x, 0), xytext=(0, 4 if (s or 0) >= 0 else -22),
                      textcoords="offset points", ha="center", fontsize=8)
    left.axhline(0, color="#57606a", lw=0.8)
    left.set_xticks(k)
    left.set_xlabel("fold")
    left.set_ylabel("annualised Sharpe")
    left.set_title("Sharpe per test fold (none below the trade minimum)")
    left.grid(alpha=0.3, axis="y")
    w = 0.27
    for off, key, label, colour in ((-w, "accuracy", "accuracy", "#0969da"),
                                    (0, "base_rate", "base rate", "#8c959f"),
                                    (w, "shuffled_accuracy", "shuffled-label control", "#bf8700")):
        vals = [f["classification"].get(key) if key != "shuffled_accuracy" else f.get(key) for f in folds]
        right.bar(k + off, [v if v is not None else 0 for v in vals], width=w, label=label, color=colour)
    right.set_ylim(0.3, 1.0)
    right.axhline(0.95, color="#cf222e", ls=":", lw=1)
    right.annotate("leakage line 0.95", (k[0] - 0.4, 0.95), xytext=(0, 3), textcoords="offset points",
                   fontsize=8, color="#cf222e")
    right.set_xticks(k)
    right.set_xlabel("fold")
    right.set_title("Out-of-fold accuracy (labelled bars)")
    right.legend(fontsize=8, loc="upper right")
    right.grid(alpha=0.3, axis="y")
    return _png(fig)


def regime_png(history: np.ndarray, test: np.ndarray, p_lo: float, p_hi: float, pcts: tuple[float, float]) -> str:
    """Volatility of the whole history, its percentile band, and what the test folds saw."""
    fig, ax = plt.subplots(figsize=(11, 2.8), layout="constrained")
    if len(history):
        top = np.quantile(history, 0.995)
        ax.hist(history[history <= top] * 100, bins=60, color="#8c959f", alpha=0.7, label="history")
        ax.hist(test[test <= top] * 100, bins=60, color="#0969da", alpha=0.5, label="test folds")
        ax.axvline(p_lo * 100, color="black", ls="--", lw=1, label=f"p{pcts[0]:g} / p{pcts[1]:g}")
        ax.axvline(p_hi * 100, color="black", ls="--", lw=1)
        if len(test):
            ax.axvspan(test.min() * 100, test.max() * 100, color="#0969da", alpha=0.07, label="test range")
    ax.set_xlabel("1-hour realised volatility per 5-minute bar, %")
    ax.set_title("Regime coverage: the test folds must reach from p20 to p80 of the history")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _png(fig)


def _fmt(value: Any, kind: str = "") -> str:
    if value is None:
        return "&ndash;"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if kind == "pct":
            return f"{value * 100:.3f} %"
        if kind == "ratio":
            return f"{value:.3f}"
        return f"{value:.2f}"
    return html.escape(str(value))


TRADING_COLS = [("trades", "trades", ""), ("win_rate", "win rate", "pct"), ("sharpe", "Sharpe", ""),
                ("max_drawdown", "max DD", "pct"), ("profit_factor", "profit factor", "ratio"),
                ("expectancy", "expectancy / trade", "pct"), ("total_return", "total", "pct"),
                ("exposure", "exposure", "pct")]


def _trading_row(t: dict[str, Any]) -> str:
    cells = [_fmt(t.get(k), kind) for k, _, kind in TRADING_COLS]
    if t.get("sharpe") is None:
        cells[2] = f'<span title="{html.escape(t.get("sharpe_note", ""))}">n/a</span>'
    return "".join(f"<td>{c}</td>" for c in cells)


def render(m: dict[str, Any], plots: dict[str, str]) -> str:
    """The page for one run's metrics."""
    state = "failed" if m["status"] == "failed" else ("promoted" if m["promoted"] else "kept")
    title = {"failed": "FAILED", "promoted": "PROMOTED", "kept": "NOT PROMOTED"}[state]
    gates = "".join(
        f'<tr><td>{html.escape(name)}</td><td class="{"ok" if g["passed"] else "bad"}">'
        f'{"pass" if g["passed"] else "FAIL"}</td><td>{html.escape(g["reason"])}</td></tr>'
        for name, g in m["gates"].items())
    head = "".join(f"<th>{label}</th>" for _, label, _ in TRADING_COLS)
    rows = [f"<tr><th>all (portfolio)</th>{_trading_row(m['overall']['trading'])}</tr>"]
    rows += [f"<tr><th>{html.escape(i)}</th>{_trading_row(v['trading'])}</tr>"
             for i, v in m["per_instrument"].items()]
    folds = "".join(
        f"<tr><th>{f['fold']}</th><td>{html.escape(f['test_start'])} &rarr; {html.escape(f['test_end'])}</td>"
        f"<td>{f['train_rows']}</td><td>{_fmt(f['train_accuracy'], 'ratio')}</td>"
        f"<td>{_fmt(f['classification']['accuracy'], 'ratio')}</td>"
        f"<td>{_fmt(f['shuffled_accuracy'], 'ratio')}</td>{_trading_row(f['trading'])}</tr>"
        for f in m["folds"])
    data = "".join(
        f"<tr><th>{html.escape(i)}</th><td>{d['candles_1m']}</td><td>{d['bars']}</td><td>{d['missing']}</td>"
        f"<td>{d['partial']}</td><td>{d['ticks']}</td><td>{d['bars_with_ticks']}</td>"
        f"<td>{d['candle_duplicates']}</td><td>{d['tick_gaps']}</td></tr>"
        for i, d in m["data"]["instruments"].items())
    ov = m["overall"]["classification"]
    ab = m.get("ab") or {}
    images = "".join(f'<figure><img alt="{html.escape(k)}" src="data:image/png;base64,{v}"></figure>'
                     for k, v in plots.items())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>retrain {html.escape(m['run_id'] or '')}: {title}</title>
<style>
body{{font:14px/1.45 system-ui,sans-serif;margin:1.5em auto;max-width:1120px;color:#1f2328;padding:0 1em}}
.banner{{padding:.8em 1.2em;border-radius:8px;color:#fff;background:{COLOURS[state]}}}
.banner h1{{margin:0;font-size:1.5em}} .banner p{{margin:.3em 0 0}}
table{{border-collapse:collapse;margin:.6em 0 1.2em;font-size:13px}}
th,td{{border-bottom:1px solid #d0d7de;padding:.25em .6em;text-align:right}} th:first-child,td.l{{text-align:left}}
td.ok{{color:#1a7f37;font-weight:600}} td.bad{{color:#cf222e;font-weight:700}}
.gates td:last-child{{text-align:left}} figure{{margin:.5em 0}} img{{max-width:100%}}
small,.note{{color:#57606a}} code{{background:#f6f8fa;padding:0 .3em}}
</style></head><body>
<div class="banner"><h1>{title}</h1><p>{html.escape(m['verdict'])}</p></div>
<p class="note">run {html.escape(m['run_id'] or '-')} &middot; {html.escape(m['created_at'])} &middot;
model {html.escape((m.get('model') or {}).get('id', 'none'))} &middot; out-of-fold accuracy
{_fmt(ov['accuracy'], 'ratio')} vs base rate {_fmt(ov['base_rate'], 'ratio')} (shuffled labels
{_fmt(ov.get('shuffled_accuracy'), 'ratio')}) on {ov['labelled']} labelled bars</p>
<h2>Gates</h2><table class="gates"><tr><th>gate</th><th></th><th>verdict</th></tr>{gates}</table>
<h2>Out-of-fold trading</h2>
<table><tr><th></th>{head}</tr>{''.join(rows)}</table>
<p class="note">{html.escape(m['sharpe_convention'])}</p>
{images}
<h2>Walk-forward folds</h2>
<table><tr><th>fold</th><th class="l">test window (UTC)</th><th>train rows</th><th>train acc.</th>
<th>test acc.</th><th>shuffled</th>{head}</tr>{folds}</table>
<h2>A/B against the incumbent</h2><p>{html.escape(ab.get('summary') or m['gates']['promotion']['reason'])}</p>
<h2>Data</h2>
<table><tr><th></th><th>1m candles</th><th>5m bars</th><th>missing</th><th>partial</th><th>ticks</th>
<th>bars with ticks</th><th>duplicate candles</th><th>tick gaps</th></tr>{data}</table>
<p class="note">Label: {html.escape(m['label']['definition'])}</p>
<details><summary>Settings</summary><pre>{html.escape(_settings_text(m['settings']))}</pre></details>
</body></html>
"""


def _settings_text(settings: dict[str, Any]) -> str:
    lines = []
    for key, value in settings.items():
        if isinstance(value, dict):
            lines += [f"{key}.{k} = {v!r}" for k, v in value.items()]
        else:
            lines.append(f"{key} = {value!r}")
    return "\n".join(lines)
