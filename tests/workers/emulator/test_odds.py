"""workers/emulator/odds.py: strict parsing of American, decimal and fractional odds."""

from __future__ import annotations

import pytest

from workers.emulator.odds import looks_like_odds, parse_odds


@pytest.mark.parametrize(("token", "text", "fmt", "decimal"), [
    ("+150", "+150", "american", 2.5),
    ("-110", "-110", "american", 1.9091),
    ("\u2212200", "-200", "american", 1.5),  # a Unicode minus, as apps draw it
    ("+100", "+100", "american", 2.0),
    ("EVEN", "+100", "american", 2.0),
    ("2.50", "2.50", "decimal", 2.5),
    ("1.01", "1.01", "decimal", 1.01),
    ("13.00", "13.00", "decimal", 13.0),
    ("6/4", "6/4", "fractional", 2.5),
    ("10/11", "10/11", "fractional", 1.9091),
    ("1/1", "1/1", "fractional", 2.0),
], ids=lambda v: str(v))
def test_valid_odds_parse_in_every_format(token: str, text: str, fmt: str, decimal: float) -> None:
    odds = parse_odds(token)
    assert odds is not None and (odds.text, odds.format) == (text, fmt)
    assert odds.decimal == pytest.approx(decimal, abs=1e-4)


@pytest.mark.parametrize("token", [
    "150",     # a lost sign: American or a dropped decimal point? not guessed
    "250",     # 2.50 with the point dropped
    "+50",     # |American| must be >= 100
    "-99",
    "1.00",    # decimal must be > 1
    "2.5.0",
    "0/4", "6/0",
    "=110",    # a misread minus is only mapped from real dash characters
    "Celtics", "", "04:30",
], ids=repr)
def test_ambiguous_or_invalid_tokens_are_not_odds(token: str) -> None:
    assert parse_odds(token) is None


def test_an_expected_format_rejects_the_others() -> None:
    assert parse_odds("2.50", "american") is None
    assert parse_odds("+150", "decimal") is None
    assert parse_odds("6/4", "fractional") is not None


@pytest.mark.parametrize(("token", "candidate"), [("\u201c115", True), ("L/l", True), ("+150", True),
                                                  ("Moneyline", False), ("WED", False), ("49ers", False)])
def test_price_shaped_misreads_are_candidates_for_a_second_read(token: str, candidate: bool) -> None:
    assert looks_like_odds(token) is candidate
