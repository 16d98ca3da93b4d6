"""Parse one OCR token as odds: American (+150, -110), decimal (2.50) or fractional (6/4).

Strict by design (api-reference E.5): a token must validate in full, or it is not odds. A
lost sign or decimal point ("150", "250") is ambiguous between formats and is NOT guessed:
`parse_odds` returns None and the caller flags the value. Unicode minus / en dash / em dash
at the start of a token become "-" only when the rest validates; EVEN/EVS/EV -> +100.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

FORMATS = ("american", "decimal", "fractional")
_AMERICAN = re.compile(r"^[+-]\d{3,5}$")
_DECIMAL = re.compile(r"^\d{1,3}\.\d{2,3}$")
_FRACTIONAL = re.compile(r"^\d{1,3}/\d{1,3}$")
_DASHES = "\u2212\u2013\u2014"
_EVENS = {"EVEN", "EVENS", "EVS", "EV"}


@dataclass(frozen=True)
class Odds:
    """A validated price: its text as shown (normalised), format and decimal value."""

    text: str
    format: str
    decimal: float

    @property
    def implied(self) -> float:
        return 1.0 / self.decimal


def normalise(token: str) -> str:
    """Map look-alike characters OCR produces to the ones odds use."""
    t = token.strip().strip("|()[]{}:;,'\"`")
    if t and t[0] in _DASHES:
        t = "-" + t[1:]
    return t.replace("\u2044", "/").replace(",", ".") if "/" not in t else t.replace("\u2044", "/")


def parse_odds(token: str, expect: str | None = None) -> Odds | None:
    """The odds a token shows, or None; with `expect`, only that format is accepted."""
    t = normalise(token)
    if t.upper() in _EVENS and expect in (None, "american"):
        return Odds("+100", "american", 2.0)
    odds = _american(t) or _decimal(t) or _fractional(t)
    if odds is None or (expect is not None and odds.format != expect):
        return None
    return odds


def looks_like_odds(token: str) -> bool:
    """A short token shaped like a price (digits, or a slash, with odds punctuation; one
    stray leading mark such as a misread minus): worth a closer read even if it fails."""
    t = normalise(token)
    if len(t) > 8 or parse_odds(t) is not None:
        return parse_odds(t) is not None
    return bool(re.fullmatch(r"[^\w\s]?[+\-=~]?[\dIlLoO][\dIlLoO.,/]*", t)) and (
        any(c.isdigit() for c in t) or "/" in t)


def _american(t: str) -> Odds | None:
    if not _AMERICAN.match(t):
        return None
    v = int(t)
    if abs(v) < 100:
        return None
    dec = 1 + v / 100 if v > 0 else 1 + 100 / -v
    return Odds(f"{v:+d}", "american", round(dec, 4))


def _decimal(t: str) -> Odds | None:
    if not _DECIMAL.match(t):
        return None
    v = float(t)
    if not 1.01 <= v <= 1000:
        return None
    return Odds(t, "decimal", v)


def _fractional(t: str) -> Odds | None:
    if not _FRACTIONAL.match(t):
        return None
    n, d = (int(x) for x in t.split("/"))
    if n == 0 or d == 0:
        return None
    return Odds(t, "fractional", round(1 + n / d, 4))
