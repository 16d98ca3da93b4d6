"""policies/trading.py: the retrain gates at and around their boundaries."""

from __future__ import annotations

import math
import random

import pytest

from policies.trading import (
    BARS_PER_YEAR_5M,
    ArmStats,
    GateSettings,
    annualised_sharpe,
    bartlett_effective_n,
    chance_accuracy,
    chance_allowance,
    leakage_gate,
    percentile,
    promotion_gate,
    regime_gate,
    sharpe_gate,
)


def test_annualised_sharpe_scales_by_sqrt_bars_per_year() -> None:
    returns = [0.001, -0.0005, 0.002, 0.0, 0.0015]
    mean = sum(returns) / 5
    sd = math.sqrt(sum((r - mean) ** 2 for r in returns) / 4)
    assert annualised_sharpe(returns) == pytest.approx(mean / sd * math.sqrt(105_120))
    assert BARS_PER_YEAR_5M == 105_120


@pytest.mark.parametrize("returns", [[], [0.01], [0.002, 0.002, 0.002]], ids=["none", "one", "flat"])
def test_annualised_sharpe_is_undefined_without_variation(returns: list[float]) -> None:
    assert annualised_sharpe(returns) is None


@pytest.mark.parametrize(
    ("trades", "reported", "passed"),
    [(29, None, False), (30, 1.5, True), (500, 1.5, True)],
    ids=["29-insufficient", "30-boundary", "many"],
)
def test_sharpe_gate_reports_no_sharpe_below_30_trades(trades: int, reported: float | None, passed: bool) -> None:
    value, verdict = sharpe_gate(trades, 1.5)
    assert value == reported and verdict.passed is passed
    if not passed:
        assert verdict.reason == "insufficient trades: 29 < 30, Sharpe not reported"


@pytest.mark.parametrize(
    ("accuracy", "f1", "shuffled", "passed", "says"),
    [
        (0.949, 0.7, 0.51, True, "near the base rate"),
        (0.95, 0.7, 0.51, False, "out-of-fold accuracy 0.950 >= 0.95"),
        (0.60, 1.0, 0.51, False, "F1 is 1.0"),
        (0.60, 0.6, 0.56, True, "near the base rate"),  # 0.05 from 0.51 is still chance
        (0.60, 0.6, 0.57, False, "with shuffled labels the model scores 0.570"),
        (0.60, 0.6, 0.45, False, "0.060 away from the base rate 0.510"),
    ],
    ids=["below", "at-0.95", "f1-perfect", "shuffled-at-tolerance", "shuffled-learns", "shuffled-below"],
)
def test_leakage_gate_boundaries(accuracy: float, f1: float, shuffled: float, passed: bool, says: str) -> None:
    verdict = leakage_gate(accuracy, f1, shuffled, base_rate=0.51)
    assert verdict.passed is passed and says in verdict.reason
    if not passed:
        assert verdict.reason.startswith("leakage suspected")


def test_percentile_interpolates_like_numpy_linear() -> None:
    values = [float(v) for v in range(1, 11)]
    assert percentile(values, 20) == pytest.approx(2.8)
    assert percentile(values, 80) == pytest.approx(8.2)
    assert percentile([3.0], 50) == 3.0
    with pytest.raises(ValueError):
        percentile([], 50)


def test_regime_gate_needs_test_folds_across_p20_to_p80_of_the_history() -> None:
    rng = random.Random(1)
    history = [rng.uniform(0.001, 0.01) for _ in range(1000)]
    p20, p80 = percentile(history, 20), percentile(history, 80)
    assert regime_gate(history, [p20, p80]).passed
    calm_only = regime_gate(history, [p20 * 0.9, p80 * 0.99])
    assert not calm_only.passed and calm_only.reason.startswith("not converged: the test folds never saw volatile markets")
    wild_only = regime_gate(history, [p20 * 1.01, p80 * 1.5])
    assert not wild_only.passed and "calm markets" in wild_only.reason
    assert not regime_gate(history, []).passed


ARM = ArmStats(trades=100, sharpe=1.0, expectancy=0.0001)


@pytest.mark.parametrize(
    ("candidate", "incumbent", "passed", "says"),
    [
        (ARM, None, True, "promoted: Sharpe 1.00 (no incumbent)"),
        (ARM, ArmStats(100, 1.0, 0.0002), True, "incumbent Sharpe 1.00"),  # equal Sharpe promotes
        (ArmStats(100, 0.99, 0.0001), ArmStats(100, 1.0, 0.0002), False, "candidate Sharpe 0.99 < incumbent 1.00"),
        (ArmStats(99, 2.0, 0.0001), None, False, "candidate made 99 trades < 100"),
        (ARM, ArmStats(99, 0.5, 0.0001), False, "incumbent made 99 trades < 100"),
        (ArmStats(100, 2.0, 0.0), None, False, "candidate expectancy 0.000000 <= 0"),
        (ArmStats(100, None, 0.0001), None, False, "candidate Sharpe undefined"),
    ],
    ids=["first-model", "equal-sharpe", "worse-sharpe", "99-trades", "incumbent-99", "zero-expectancy", "no-sharpe"],
)
def test_promotion_gate_boundaries(candidate: ArmStats, incumbent: ArmStats | None, passed: bool, says: str) -> None:
    verdict = promotion_gate(candidate, incumbent)
    assert verdict.passed is passed and says in verdict.reason
    if not passed:
        assert verdict.reason.startswith("kept, not promoted: ")


def test_gate_settings_move_the_boundaries() -> None:
    strict = GateSettings(min_trades=50, min_trades_per_arm=200)
    assert sharpe_gate(49, 1.0, strict)[0] is None
    assert not promotion_gate(ArmStats(150, 1.0, 0.001), None, strict).passed


@pytest.mark.parametrize(
    ("n", "autocorrs", "expected"),
    [(100, [], 100.0), (100, [0.0, 0.0], 100.0), (100, [-0.3], 100.0), (90, [0.5], 90 / 1.5),
     (120, [0.4, 0.2], 120 / (1 + 2 * (0.4 * 2 / 3 + 0.2 / 3))), (3, [0.99, 0.99, 0.99], 1.0),
     (0, [0.2], 0.0), (50, [float("nan")], 50.0)],
    ids=["no-lags", "independent", "negative-is-independent", "lag-1", "bartlett-weights", "floor-1",
         "empty", "nan-ignored"],
)
def test_bartlett_effective_n_shrinks_a_correlated_sample(n: int, autocorrs: list[float], expected: float) -> None:
    assert bartlett_effective_n(n, autocorrs) == pytest.approx(expected)


def test_chance_accuracy_is_that_of_predictions_blind_to_the_labels() -> None:
    assert chance_accuracy(0.5, 0.52) == pytest.approx(0.5)
    assert chance_accuracy(1.0, 0.52) == pytest.approx(0.52)  # always "up": the up share
    assert chance_accuracy(0.0, 0.52) == pytest.approx(0.48)
    assert chance_accuracy(0.3, 0.6) == pytest.approx(0.3 * 0.6 + 0.7 * 0.4)


def test_chance_allowance_widens_to_three_standard_errors_of_a_small_control() -> None:
    assert chance_allowance(0.5, None) == 0.05
    assert chance_allowance(0.5, 10_000) == 0.05  # 3 x 0.005: the floor holds
    assert chance_allowance(0.5, 400) == pytest.approx(3 * 0.025)
    assert chance_allowance(0.5, 400, GateSettings(control_z=2.0)) == pytest.approx(0.05)


@pytest.mark.parametrize(
    ("shuffled", "control_n", "passed"),
    [(0.575, 400, True), (0.586, 400, False), (0.575, None, False), (0.44, 400, True), (0.42, 400, False)],
    ids=["inside-3-se", "outside-3-se", "no-n-keeps-0.05", "below-inside", "below-outside"],
)
def test_leakage_gate_judges_a_small_control_by_its_standard_error(
        shuffled: float, control_n: float | None, passed: bool) -> None:
    verdict = leakage_gate(0.6, 0.6, shuffled, base_rate=0.5, control_n=control_n)
    assert verdict.passed is passed
    if passed:
        assert verdict.reason.endswith("(allowed gap 0.075)")
    else:
        assert verdict.reason.startswith("leakage suspected: with shuffled labels")


def test_leakage_gate_accuracy_line_ignores_the_control_sample_size() -> None:
    assert not leakage_gate(0.95, 0.7, 0.5, 0.5, control_n=10).passed


def test_leakage_gate_measures_the_control_from_chance_when_given() -> None:
    # a control predicting both classes half the time scores ~0.50 on a 0.56/0.44 split: chance,
    # though 0.06 below the base rate
    assert not leakage_gate(0.6, 0.6, 0.50, base_rate=0.56).passed
    verdict = leakage_gate(0.6, 0.6, 0.50, base_rate=0.56, chance=0.5)
    assert verdict.passed and "near chance 0.500 (base rate 0.560)" in verdict.reason
    bad = leakage_gate(0.6, 0.6, 0.58, base_rate=0.56, chance=0.5, control_n=1000)
    assert not bad.passed and "0.080 away from chance 0.500 (base rate 0.560)" in bad.reason
