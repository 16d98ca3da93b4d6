"""Odds conversions (api-reference F.1): everything becomes decimal odds d > 1."""

from __future__ import annotations

import re

_FRACTION = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def american_to_decimal(a: float) -> float:
    """+150 -> 2.5, -110 -> 1.9091; |a| < 100 is not American odds."""
    if abs(a) < 100:
        raise ValueError(f"{a!r}: American odds are <= -100 or >= +100")
    return 1 + a / 100 if a > 0 else 1 + 100 / -a


def fractional_to_decimal(text: str) -> float:
    """'5/2' -> 3.5, '10/11' -> 1.909."""
    m = _FRACTION.match(text)
    if not m or int(m.group(2)) == 0 or int(m.group(1)) == 0:
        raise ValueError(f"{text!r}: not fractional odds like 5/2")
    return 1 + int(m.group(1)) / int(m.group(2))


def decimal_to_american(d: float) -> int:
    """2.5 -> +150, 1.5 -> -200."""
    if d <= 1:
        raise ValueError(f"{d!r}: decimal odds must be > 1")
    return round((d - 1) * 100) if d >= 2 else -round(100 / (d - 1))


def to_decimal(value: float | str, fmt: str) -> float:
    """Any supported format to decimal odds."""
    if fmt == "decimal":
        d = float(value)
    elif fmt == "american":
        d = american_to_decimal(float(value))
    elif fmt == "fractional":
        d = fractional_to_decimal(str(value))
    else:
        raise ValueError(f"unknown odds format {fmt!r} (american | decimal | fractional)")
    if not d > 1:
        raise ValueError(f"{value!r}: decimal odds must be > 1")
    return d


def implied(d: float) -> float:
    """The implied probability 1/d."""
    return 1 / d


def no_vig(prices: list[float]) -> list[float]:
    """Fair probabilities by proportional normalisation (F.2)."""
    raw = [1 / d for d in prices]
    total = sum(raw)
    return [p / total for p in raw]
