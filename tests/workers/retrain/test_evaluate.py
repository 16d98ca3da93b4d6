"""workers/retrain/_evaluate.py: the trade simulation, by hand, and the numbers it reports."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from policies.trading import GateSettings
from workers.retrain._evaluate import (
    book_stats,
    classification,
    control_accuracy,
    positions,
    simulate,
    trading_stats,
)
from workers.retrain.config import BAR_MS

C = 0.001  # cost per side


def _frame(ts: list[int], next_ret: list[float], inst: str = "BTC-USDT") -> pd.DataFrame:
    return pd.DataFrame({"ts": np.array(ts, dtype=np.int64) * BAR_MS, "inst": inst,
                         "next_ret": next_ret, "tradable": ~np.isnan(next_ret)})


def test_positions_open_long_short_or_stay_flat_on_confidence() -> None:
    proba = np.array([0.55, 0.549, 0.45, 0.451, np.nan, 0.9])
    tradable = np.array([True, True, True, True, True, False])
    assert positions(proba, tradable, 0.55).tolist() == [1, 0, -1, 0, 0, 0]


def test_a_kept_position_pays_once_a_flip_pays_both_sides_and_trades_add_up_to_the_bars() -> None:
    frame = _frame([0, 1, 2, 3, 4, 5], [0.01, -0.02, 0.03, 0.01, -0.01, 0.02])
    proba = np.array([0.6, 0.6, 0.4, 0.5, 0.7, 0.7])  # long, long, short, flat, long, long
    book = simulate(frame, proba, np.ones(6, dtype=bool), 0.55, C)
    assert book.bars["position"].tolist() == [1, 1, -1, 0, 1, 1]
    np.testing.assert_allclose(book.bars["net"], [0.009, -0.02, -0.032, -0.001, -0.011, 0.019])
    t = book.trades
    assert t["side"].tolist() == [1, -1, 1] and t["bars"].tolist() == [2, 1, 2]
    np.testing.assert_allclose(t["ret"], [-0.012, -0.032, 0.008])
    assert t["entry_ts"].tolist() == [0, 2 * BAR_MS, 4 * BAR_MS] and t["last_ts"].tolist() == [BAR_MS, 2 * BAR_MS, 5 * BAR_MS]
    assert book.bars["net"].sum() == pytest.approx(t["ret"].sum())


def test_a_position_is_closed_where_the_bars_stop_being_contiguous() -> None:
    frame = _frame([0, 1, 5, 6], [0.01, 0.01, 0.01, 0.01])
    book = simulate(frame, np.full(4, 0.9), np.ones(4, dtype=bool), 0.55, C)
    assert len(book.trades) == 2 and book.trades["bars"].tolist() == [2, 2]
    assert book.bars["net"].sum() == pytest.approx(book.trades["ret"].sum()) == pytest.approx(0.04 - 4 * C)


def test_untradable_and_inactive_rows_are_flat() -> None:
    frame = _frame([0, 1, 2, 3], [0.01, np.nan, 0.01, 0.01])
    active = np.array([True, True, True, False])
    book = simulate(frame, np.full(4, 0.9), active, 0.55, C)
    assert book.bars["position"].tolist() == [1, 0, 1] and len(book.trades) == 2


def test_portfolio_is_the_equal_weight_mean_over_instruments() -> None:
    frame = pd.concat([_frame([0, 1], [0.01, 0.02], "A-USDT"), _frame([1, 2], [0.03, 0.04], "B-USDT")],
                      ignore_index=True)
    book = simulate(frame, np.full(4, 0.9), np.ones(4, dtype=bool), 0.55, 0.0)
    port = book.portfolio()
    assert port.index.tolist() == [0, BAR_MS, 2 * BAR_MS]
    np.testing.assert_allclose(port.to_numpy(), [0.005, 0.025, 0.02])


def test_sharpe_is_not_reported_below_the_trade_minimum() -> None:
    stats = trading_stats(np.array([0.01, -0.005, 0.002]), np.array([0.01, -0.005, 0.002]), GateSettings())
    assert stats["sharpe"] is None
    assert stats["sharpe_note"] == "insufficient trades: 3 < 30, Sharpe not reported"
    assert stats["win_rate"] == pytest.approx(2 / 3) and stats["expectancy"] == pytest.approx(0.007 / 3)
    assert stats["profit_factor"] == pytest.approx(0.012 / 0.005)


def test_drawdown_is_the_worst_fall_of_compounded_equity_from_its_peak() -> None:
    net = np.array([0.1, -0.5, 0.2, 0.1])
    stats = trading_stats(net, np.array([0.1, -0.5, 0.2, 0.1] * 10), GateSettings())
    assert stats["max_drawdown"] == pytest.approx(0.5)
    assert stats["total_return"] == pytest.approx(1.1 * 0.5 * 1.2 * 1.1 - 1)
    assert stats["sharpe"] == pytest.approx(net.mean() / net.std(ddof=1) * np.sqrt(105_120))


def test_no_losing_trade_leaves_the_profit_factor_undefined_not_infinite() -> None:
    stats = trading_stats(np.array([0.01, 0.02]), np.array([0.01, 0.02]), GateSettings())
    assert stats["profit_factor"] is None


def test_book_stats_per_instrument_counts_only_its_trades() -> None:
    frame = pd.concat([_frame([0, 1], [0.01, 0.02], "A-USDT"), _frame([0, 1], [0.03, -0.04], "B-USDT")],
                      ignore_index=True).sort_values("ts", kind="stable").reset_index(drop=True)
    book = simulate(frame, np.array([0.9, 0.9, 0.9, 0.1]), np.ones(4, dtype=bool), 0.55, 0.0)
    a = book_stats(book, GateSettings(), 0, BAR_MS, "A-USDT")
    b = book_stats(book, GateSettings(), 0, BAR_MS, "B-USDT")
    assert (a["trades"], b["trades"]) == (1, 2) and a["total_return"] == pytest.approx(1.01 * 1.02 - 1)


def test_classification_scores_labelled_rows_against_the_majority_base_rate() -> None:
    y = np.array([1.0, 0.0, 1.0, np.nan, 1.0])
    proba = np.array([0.7, 0.6, 0.8, 0.9, np.nan])
    c = classification(y, proba)
    assert c["labelled"] == 3 and c["accuracy"] == pytest.approx(2 / 3)
    assert c["base_rate"] == pytest.approx(2 / 3) and c["f1"] == pytest.approx(0.8)


def test_control_accuracy_averages_repeats_against_label_blind_chance() -> None:
    rng = np.random.default_rng(3)
    y = (rng.random(400) < 0.6).astype(np.float64)  # 60 % up: base rate 0.6
    inst = np.array(["A"] * 400)
    control = np.vstack([np.full(400, 0.9), np.where(rng.random(400) < 0.5, 0.9, 0.1)])
    c = control_accuracy(y, control, inst)
    assert c["per_repeat"][0] == pytest.approx(y.mean())  # always "up" scores the up share
    assert c["accuracy"] == pytest.approx(np.mean(c["per_repeat"]))
    # chance: always up -> 0.6-ish; half up at random -> 0.5-ish
    assert 0.53 < c["chance"] < 0.57
    assert 300 < c["effective_n"] <= 400  # independent rows: hardly shrunk


def test_correlated_hits_shrink_the_controls_effective_sample() -> None:
    y = np.repeat(np.tile([1.0, 0.0], 10), 20)  # runs of 20 bars up, then 20 down
    control = np.vstack([np.full(400, 0.9)])  # hits come in runs too
    c = control_accuracy(y, control, np.array(["A"] * 400))
    assert c["accuracy"] == pytest.approx(0.5) and c["effective_n"] < 60
