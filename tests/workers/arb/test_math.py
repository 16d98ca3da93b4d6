"""Odds conversions and the arbitrage formula on hand-checked cases (api-reference F)."""

from __future__ import annotations

import pytest

from workers.arb import Quote, best_quotes, find_arb, round_to
from workers.arb.arbitrage import boost_ev
from workers.arb.convert import decimal_to_american, no_vig, to_decimal


@pytest.mark.parametrize(("value", "fmt", "decimal"), [
    (150, "american", 2.5), (-110, "american", 1.909091), (-200, "american", 1.5),
    (100, "american", 2.0), ("5/2", "fractional", 3.5), ("10/11", "fractional", 1.909091),
    ("6/4", "fractional", 2.5), (2.8, "decimal", 2.8), ("2.80", "decimal", 2.8),
], ids=lambda v: str(v))
def test_conversions_to_decimal(value: object, fmt: str, decimal: float) -> None:
    assert to_decimal(value, fmt) == pytest.approx(decimal, abs=1e-6)  # type: ignore[arg-type]


@pytest.mark.parametrize(("value", "fmt"), [(50, "american"), ("0/1", "fractional"),
                                            (1.0, "decimal"), ("x", "fractional"), (2, "moon")])
def test_bad_odds_are_refused(value: object, fmt: str) -> None:
    with pytest.raises(ValueError):
        to_decimal(value, fmt)  # type: ignore[arg-type]


def test_decimal_to_american_and_no_vig() -> None:
    assert decimal_to_american(2.5) == 150 and decimal_to_american(1.5) == -200
    assert sum(no_vig([1.9091, 1.9091])) == pytest.approx(1.0)
    assert no_vig([1.9091, 1.9091])[0] == pytest.approx(0.5)


def q(book: str, outcome: str, d: float, age: float = 5.0) -> Quote:
    return Quote(book, outcome, d, age)


def test_two_way_arb_hand_checked() -> None:
    # +115 (2.15) vs -105 (1.9524): S = 0.97731, ROI 2.32 %; stakes 476 / 524 -> profit 23.05
    best = [q("a", "X", 2.15), q("b", "Y", 1 + 100 / 105)]
    arb = find_arb(best, bankroll=1000, unit=1, margin=0.0)
    assert arb is not None
    assert [leg.stake for leg in arb.legs] == [476, 524]
    assert arb.implied_sum == pytest.approx(0.97731, abs=1e-5)
    assert arb.ideal_profit_pct == pytest.approx(2.32, abs=0.01)
    assert arb.profit == pytest.approx(23.05, abs=0.01) and arb.total_stake == 1000


def test_three_way_arb_hand_checked() -> None:
    # 2.80 / 3.50 / 3.00, T = 500: S = 0.97619, stakes 182.93 / 146.34 / 170.73, returns 512.20
    best = [q("a", "H", 2.8), q("b", "D", 3.5), q("c", "A", 3.0)]
    arb = find_arb(best, bankroll=500, unit=0.01, margin=0.0)
    assert arb is not None
    assert [leg.stake for leg in arb.legs] == [182.93, 146.34, 170.73]
    assert arb.ideal_profit_pct == pytest.approx(2.44, abs=0.01)
    assert min(leg.returns for leg in arb.legs) == pytest.approx(512.2, abs=0.02)


def test_no_arb_when_implied_sum_is_at_least_one_minus_margin() -> None:
    assert find_arb([q("a", "X", 1.9091), q("b", "Y", 1.9091)], bankroll=1000, unit=1, margin=0) is None
    # S = 0.97731 is an arb at margin 0.02 but not at margin 0.03
    best = [q("a", "X", 2.15), q("b", "Y", 1 + 100 / 105)]
    assert find_arb(best, bankroll=1000, unit=1, margin=0.02) is not None
    assert find_arb(best, bankroll=1000, unit=1, margin=0.03) is None


def test_rounding_that_kills_an_arb_drops_it() -> None:
    # S = 0.9975: ideal profit 2.5 on 1000, but stakes rounded to 100 -> 500 / 500 at 1.98 / 2.03
    best = [q("a", "X", 1.98), q("b", "Y", 2.03)]
    assert find_arb(best, bankroll=1000, unit=0.01, margin=0) is not None
    assert find_arb(best, bankroll=1000, unit=100, margin=0) is None
    assert round_to(476.49, 1) == 476 and round_to(182.925, 0.01) == pytest.approx(182.93)


def test_stale_odds_are_dropped_from_the_best_prices() -> None:
    quotes = [q("fresh", "X", 2.0, age=30), q("stale", "X", 3.0, age=7200), q("fresh", "Y", 2.0, age=30)]
    best = best_quotes(quotes, ("X", "Y"), max_age_s=600)
    assert best is not None and [b.book for b in best] == ["fresh", "fresh"]
    assert find_arb(best, bankroll=1000, unit=1, margin=0) is None
    with_stale = best_quotes(quotes, ("X", "Y"), max_age_s=10_000)
    assert with_stale is not None and find_arb(with_stale, bankroll=1000, unit=1, margin=0) is not None
    assert best_quotes([q("fresh", "X", 2.0)], ("X", "Y"), max_age_s=600) is None  # Y missing


def test_boost_ev_against_the_no_vig_price() -> None:
    p, ev = boost_ev(2.3, [1.9091, 1.9091], 0)
    assert p == pytest.approx(0.5) and ev == pytest.approx(0.15)
    assert boost_ev(1.95, [1.9091, 1.9091], 0)[1] < 0
