"""Candle bars: names, alignment, merging block aggregates, formatting as BloFin strings."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from workers.sandbox._blocks import Agg
from workers.sandbox._instruments import InstrumentSpec, plain
from workers.sandbox.errors import BadParameter


@dataclass(frozen=True, slots=True)
class Candle:
    """One candlestick; prices and volumes already formatted as BloFin strings."""

    ts: int  # bar open time, ms
    open: str
    high: str
    low: str
    close: str
    vol: str  # contracts
    vol_currency: str  # base currency
    vol_currency_quote: str  # quote currency
    confirm: bool  # True once the bar is closed

    def to_blofin(self) -> list[str]:
        """[ts, o, h, l, c, vol, volCurrency, volCurrencyQuote, confirm], all strings."""
        return [str(self.ts), self.open, self.high, self.low, self.close, self.vol,
                self.vol_currency, self.vol_currency_quote, "1" if self.confirm else "0"]


BAR_MS: dict[str, int] = {
    "1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000,
    "1H": 3_600_000, "2H": 7_200_000, "4H": 14_400_000, "6H": 21_600_000,
    "8H": 28_800_000, "12H": 43_200_000, "1D": 86_400_000,
}


def bar_ms(bar: str) -> int:
    """The bar's length in ms; BadParameter('bar') for names the sandbox does not serve."""
    try:
        return BAR_MS[bar]
    except KeyError:
        raise BadParameter("bar", f"{bar!r} is not one of {' '.join(BAR_MS)}") from None


def ceil_to(ms: int, step: int) -> int:
    return -(-ms // step) * step


def merge(aggs: Iterable[Agg | None]) -> Agg | None:
    """One aggregate from consecutive ones (None = no trades)."""
    out: Agg | None = None
    for a in aggs:
        if a is None:
            continue
        if out is None:
            out = a
        else:
            out = (out[0], max(out[1], a[1]), min(out[2], a[2]), a[3], out[4] + a[4],
                   out[5] + a[5])
    return out


def candle(spec: InstrumentSpec, ts: int, agg: Agg, *, confirm: bool) -> Candle:
    """A Candle from an aggregate, with exact decimal volumes."""
    o, h, lo, c, vol, quote_ticks = agg
    cv = Decimal(spec.contract_value)
    return Candle(
        ts, spec.format_price(o), spec.format_price(h), spec.format_price(lo),
        spec.format_price(c), str(vol), plain(vol * cv),
        plain(quote_ticks * Decimal(spec.tick) * cv), confirm,
    )
