"""Gates on a walk-forward model evaluation: pure verdicts, no I/O, stdlib only.

The retrain builder (workers/retrain) computes the numbers; these functions decide what they
mean. Each gate returns a `Verdict` whose `reason` is the sentence an operator reads:

- `sharpe_gate`: a Sharpe ratio is not reported below `min_trades` trades ("insufficient trades").
- `leakage_gate`: out-of-fold accuracy >= 0.95 or F1 == 1.0 on a 5-minute direction label is
  a bug until proven otherwise ("leakage suspected"); so is a shuffled-label control that
  scores far from chance -- further than 0.05, or than 3 standard errors of its accuracy
  when the caller gives the effective sample size (`chance_allowance`). Chance is the base
  rate (majority class), or, when the caller gives it, the expected accuracy of predictions
  independent of the labels (`chance_accuracy`).
- `regime_gate`: the test folds must have seen the volatility range of the whole history, from
  its 20th to its 80th percentile, else the result is "not converged".
- `promotion_gate`: a candidate replaces the incumbent only with Sharpe >= the incumbent's on the
  same out-of-fold period, a positive expectancy, and >= 100 trades per arm.

Sharpe convention (documented in the README): per-bar strategy returns net of costs, flat bars
included as zero, annualised with sqrt(bars per year); crypto trades 24/7, so 5-minute bars give
365 * 24 * 12 = 105,120 bars a year.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

BARS_PER_YEAR_5M = 365 * 24 * 12


@dataclass(frozen=True)
class GateSettings:
    """Thresholds of the gates (config: [jobs.retrain] arguments)."""

    min_trades: int = 30  # below this a Sharpe ratio means nothing
    leakage_accuracy: float = 0.95  # out-of-fold accuracy at or above this: leakage suspected
    chance_tolerance: float = 0.05  # shuffled-label accuracy within this of the base rate
    control_z: float = 3.0  # with the control's effective sample size: allow z standard errors
    regime_low_pct: float = 20.0
    regime_high_pct: float = 80.0
    min_trades_per_arm: int = 100


@dataclass(frozen=True)
class Verdict:
    """One gate's outcome."""

    gate: str
    passed: bool
    reason: str


@dataclass(frozen=True)
class ArmStats:
    """One model's trading on the shared out-of-fold period."""

    trades: int
    sharpe: float | None
    expectancy: float  # mean net return per trade


def annualised_sharpe(returns: Sequence[float], periods_per_year: int = BARS_PER_YEAR_5M) -> float | None:
    """mean / stdev * sqrt(periods_per_year); None when undefined (fewer than 2 values or no
    variation)."""
    if len(returns) < 2:
        return None
    sd = statistics.stdev(returns)
    if sd == 0 or not math.isfinite(sd):
        return None
    return statistics.fmean(returns) / sd * math.sqrt(periods_per_year)


def sharpe_gate(trades: int, sharpe: float | None, settings: GateSettings = GateSettings()) -> tuple[float | None, Verdict]:
    """The Sharpe ratio to report (None below `min_trades`) and the verdict."""
    if trades < settings.min_trades:
        return None, Verdict("trades", False,
                             f"insufficient trades: {trades} < {settings.min_trades}, Sharpe not reported")
    if sharpe is None:
        return None, Verdict("trades", False, f"{trades} trades but returns without variation: Sharpe undefined")
    return sharpe, Verdict("trades", True, f"{trades} trades >= {settings.min_trades}")


def bartlett_effective_n(n: int, autocorrs: Sequence[float]) -> float:
    """Independent observations worth `n` serially correlated ones, from the series'
    autocorrelations at lags 1..L (Bartlett weights 1 - k / (L + 1)); clamped to [1, n]."""
    if n <= 0:
        return 0.0
    lags = len(autocorrs)
    total = sum((1 - k / (lags + 1)) * rho for k, rho in enumerate(autocorrs, 1) if math.isfinite(rho))
    return max(1.0, min(float(n), n / max(1.0, 1 + 2 * total)))


def chance_accuracy(predicted_up: float, actual_up: float) -> float:
    """The expected accuracy of predictions made without looking at the labels: predicting
    "up" on a share `predicted_up` of rows whose share `actual_up` is up."""
    return predicted_up * actual_up + (1 - predicted_up) * (1 - actual_up)


def chance_allowance(reference: float, control_n: float | None, settings: GateSettings = GateSettings()) -> float:
    """How far a shuffled-label control may score from chance (`reference`) and still be chance:
    `chance_tolerance`, widened to `control_z` standard errors of an accuracy measured on
    `control_n` independent rows (a small or serially correlated test set is noisy)."""
    if not control_n or control_n <= 0:
        return settings.chance_tolerance
    se = math.sqrt(max(reference * (1 - reference), 0.0) / control_n)
    return max(settings.chance_tolerance, settings.control_z * se)


def leakage_gate(
    accuracy: float,
    f1: float,
    shuffled_accuracy: float,
    base_rate: float,
    settings: GateSettings = GateSettings(),
    control_n: float | None = None,
    chance: float | None = None,
) -> Verdict:
    """Fail on skill too good to be true, or a shuffled-label control that still 'learns'.

    `base_rate` is the accuracy of always predicting the majority class on the same rows. When
    given, `chance` (see `chance_accuracy`) replaces it as the control's reference -- a control
    that predicts both classes scores below the base rate by construction -- and `control_n`,
    the effective number of independent rows the control was scored on, widens the allowed gap
    (see `chance_allowance`)."""
    if accuracy >= settings.leakage_accuracy:
        return Verdict("leakage", False, f"leakage suspected: out-of-fold accuracy {accuracy:.3f} >= "
                                         f"{settings.leakage_accuracy} on a next-bar direction label")
    if f1 >= 1.0:
        return Verdict("leakage", False, "leakage suspected: out-of-fold F1 is 1.0")
    reference = base_rate if chance is None else chance
    name = f"the base rate {base_rate:.3f}" if chance is None else (
        f"chance {chance:.3f} (base rate {base_rate:.3f})")
    gap = abs(shuffled_accuracy - reference)
    allowed = chance_allowance(reference, control_n, settings)
    if gap > allowed + 1e-9:  # at the tolerance is still chance
        return Verdict("leakage", False,
                       f"leakage suspected: with shuffled labels the model scores {shuffled_accuracy:.3f}, "
                       f"{gap:.3f} away from {name} (allowed {allowed:.3g})")
    return Verdict("leakage", True, f"accuracy {accuracy:.3f}; shuffled-label control {shuffled_accuracy:.3f} "
                                    f"near {name} (allowed gap {allowed:.3g})")


def percentile(values: Sequence[float], pct: float) -> float:
    """Linear-interpolated percentile (0..100) of a non-empty sequence."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    pos = (len(ordered) - 1) * pct / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def regime_gate(
    history_vol: Sequence[float],
    test_vol: Sequence[float],
    settings: GateSettings = GateSettings(),
) -> Verdict:
    """The test folds' volatility must reach down to the history's low percentile and up to its
    high percentile: a model tested only in calm (or only in wild) markets has not converged."""
    if not history_vol or not test_vol:
        return Verdict("regime", False, "not converged: no volatility observations")
    low = percentile(history_vol, settings.regime_low_pct)
    high = percentile(history_vol, settings.regime_high_pct)
    seen_low, seen_high = min(test_vol), max(test_vol)
    missing = []
    if seen_low > low:
        missing.append(f"calm markets (lowest test volatility {seen_low:.3g} > p{settings.regime_low_pct:g} {low:.3g})")
    if seen_high < high:
        missing.append(f"volatile markets (highest test volatility {seen_high:.3g} < p{settings.regime_high_pct:g} {high:.3g})")
    if missing:
        return Verdict("regime", False, "not converged: the test folds never saw " + " nor ".join(missing))
    return Verdict("regime", True, f"test folds span volatility {seen_low:.3g}..{seen_high:.3g}, covering "
                                   f"p{settings.regime_low_pct:g}..p{settings.regime_high_pct:g} ({low:.3g}..{high:.3g})")


def promotion_gate(
    candidate: ArmStats, incumbent: ArmStats | None, settings: GateSettings = GateSettings()
) -> Verdict:
    """Promote only a candidate at least as good as the incumbent, profitable, on enough trades."""
    need = settings.min_trades_per_arm
    problems = []
    if candidate.trades < need:
        problems.append(f"candidate made {candidate.trades} trades < {need}")
    if incumbent is not None and incumbent.trades < need:
        problems.append(f"incumbent made {incumbent.trades} trades < {need} on the same period")
    if candidate.expectancy <= 0:
        problems.append(f"candidate expectancy {candidate.expectancy:.6f} <= 0")
    if candidate.sharpe is None:
        problems.append("candidate Sharpe undefined")
    elif incumbent is not None and incumbent.sharpe is not None and candidate.sharpe < incumbent.sharpe:
        problems.append(f"candidate Sharpe {candidate.sharpe:.2f} < incumbent {incumbent.sharpe:.2f}")
    if problems:
        return Verdict("promotion", False, "kept, not promoted: " + "; ".join(problems))
    against = "no incumbent" if incumbent is None else (
        f"incumbent Sharpe {incumbent.sharpe:.2f}" if incumbent.sharpe is not None else "incumbent Sharpe undefined")
    return Verdict("promotion", True, f"promoted: Sharpe {candidate.sharpe:.2f} ({against}), "
                                      f"expectancy {candidate.expectancy:.6f}, {candidate.trades} trades")
