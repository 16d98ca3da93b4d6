"""Arbitrage math (api-reference F.3), pure: best prices, the arb condition, stake splits
rounded to a unit with the profit recomputed after rounding, boosts as +EV."""

from __future__ import annotations

import math
from dataclasses import dataclass

from workers.arb.convert import no_vig


@dataclass(frozen=True)
class Quote:
    """One book's decimal price for one outcome, and its age in seconds."""

    book: str
    outcome: str
    decimal: float
    age_s: float


@dataclass(frozen=True)
class Leg:
    book: str
    outcome: str
    odds: float
    stake: float
    returns: float
    age_s: float


@dataclass(frozen=True)
class Arb:
    legs: tuple[Leg, ...]
    implied_sum: float
    total_stake: float
    profit: float
    profit_pct: float
    ideal_profit_pct: float


def best_quotes(quotes: list[Quote], outcomes: tuple[str, ...], max_age_s: float) -> list[Quote] | None:
    """The best fresh quote per outcome, or None when an outcome has no fresh quote."""
    best: dict[str, Quote] = {}
    for q in quotes:
        if q.age_s > max_age_s or q.outcome not in outcomes or not q.decimal > 1:
            continue
        cur = best.get(q.outcome)
        if cur is None or q.decimal > cur.decimal or (q.decimal == cur.decimal and q.age_s < cur.age_s):
            best[q.outcome] = q
    if len(best) != len(outcomes):
        return None
    return [best[o] for o in outcomes]


def find_arb(best: list[Quote], *, bankroll: float, unit: float, margin: float) -> Arb | None:
    """The arbitrage on these best quotes (one per outcome), or None.

    An arb needs S = sum(1/d) < 1 - margin. Stakes s_i = T (1/d_i) / S are rounded to `unit`;
    the guaranteed profit is recomputed as min(s_i d_i) - sum(s_i) and must stay > 0."""
    if len(best) < 2:
        return None
    s = sum(1 / q.decimal for q in best)
    if not s < 1 - margin:
        return None
    stakes = [round_to(bankroll * (1 / q.decimal) / s, unit) for q in best]
    if any(x <= 0 for x in stakes):
        return None
    total = round(sum(stakes), 10)
    returns = [x * q.decimal for x, q in zip(stakes, best)]
    profit = min(returns) - total
    if not profit > 0:
        return None
    legs = tuple(Leg(q.book, q.outcome, q.decimal, x, round(r, 2), q.age_s)
                 for q, x, r in zip(best, stakes, returns))
    return Arb(legs, round(s, 6), round(total, 2), round(profit, 2),
               round(100 * profit / total, 3), round(100 * (1 / s - 1), 3))


def round_to(x: float, unit: float) -> float:
    """x rounded to the nearest multiple of unit (halves up)."""
    if unit <= 0:
        return x
    return round(math.floor(x / unit + 0.5) * unit, 10)


def boost_ev(boosted: float, fair_prices: list[float], index: int) -> tuple[float, float]:
    """(fair probability, EV per unit staked) of a boosted price against the no-vig fair
    probability of outcome `index` in `fair_prices` (one book's full market)."""
    p = no_vig(fair_prices)[index]
    return p, boosted * p - 1
