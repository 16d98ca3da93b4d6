"""Instrument profiles (price level, tick, contract value) and BloFin number formatting."""

from __future__ import annotations

import functools
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from workers.sandbox.errors import BadParameter


@dataclass(frozen=True, slots=True)
class InstrumentSpec:
    """Static facts about one instrument; prices are integers counted in ticks."""

    inst_id: str
    price: float  # typical price level, in quote currency
    tick: str  # tickSize, e.g. "0.1"
    contract_value: str  # base currency per contract
    size_median: float  # typical trade size, in contracts
    vol_per_min: float  # typical stdev of a one-minute log return
    max_leverage: str = "100"

    @property
    def base(self) -> str:
        return self.inst_id.split("-")[0]

    @property
    def quote(self) -> str:
        return self.inst_id.split("-")[1]

    @property
    def tick_decimals(self) -> int:
        return _decimals(self.tick)

    @property
    def tick_units(self) -> int:
        """The tick as an integer count of 10**-tick_decimals."""
        return int(Decimal(self.tick).scaleb(self.tick_decimals))

    def price_ticks(self) -> int:
        """The starting price level, in ticks."""
        return max(1, round(self.price / float(self.tick)))

    def format_price(self, ticks: int) -> str:
        """A price in ticks as BloFin writes it ("64210.5")."""
        return price_formatter(self)(ticks)

    def to_blofin(self, list_time_ms: int) -> dict[str, str]:
        """The instrument object of GET /api/v1/market/instruments."""
        return {
            "instId": self.inst_id,
            "baseCurrency": self.base,
            "quoteCurrency": self.quote,
            "contractValue": self.contract_value,
            "listTime": str(list_time_ms),
            "expireTime": "4070880000000",
            "maxLeverage": self.max_leverage,
            "minSize": "1",
            "lotSize": "1",
            "tickSize": self.tick,
            "instType": "SWAP",
            "contractType": "linear",
            "maxLimitSize": "100000",
            "maxMarketSize": "10000",
            "state": "live",
            "settleCurrency": self.quote,
        }


_KNOWN: dict[str, InstrumentSpec] = {
    s.inst_id: s
    for s in (
        InstrumentSpec("BTC-USDT", 60000.0, "0.1", "0.001", 20.0, 0.0009, "150"),
        InstrumentSpec("ETH-USDT", 3000.0, "0.01", "0.01", 15.0, 0.0011, "125"),
        InstrumentSpec("SHIB-USDT", 0.00002, "0.00000001", "100000", 40.0, 0.0016, "50"),
        InstrumentSpec("SOL-USDT", 150.0, "0.001", "1", 10.0, 0.0014, "75"),
        InstrumentSpec("XRP-USDT", 0.5, "0.0001", "10", 30.0, 0.0013, "75"),
        InstrumentSpec("DOGE-USDT", 0.15, "0.00001", "100", 40.0, 0.0015, "75"),
    )
}


def spec_for(inst_id: str) -> InstrumentSpec:
    """The profile of a known instrument, or a generic one derived from the name."""
    if inst_id in _KNOWN:
        return _KNOWN[inst_id]
    parts = inst_id.split("-")
    if len(parts) != 2 or not all(p.isalnum() and p.isupper() for p in parts):
        raise BadParameter("instId", f"{inst_id!r} is not of the form BASE-QUOTE (e.g. BTC-USDT)")
    level = 1.0 + zlib.crc32(inst_id.encode()) % 500
    return InstrumentSpec(inst_id, level, "0.001", "1", 10.0, 0.0012)


@functools.lru_cache(maxsize=64)
def price_formatter(spec: InstrumentSpec) -> Callable[[int], str]:
    """A fast, memoising `ticks -> price string` for one instrument."""
    units, decimals = spec.tick_units, spec.tick_decimals
    cache: dict[int, str] = {}

    def fmt(ticks: int) -> str:
        text = cache.get(ticks)
        if text is None:
            if len(cache) >= 200_000:
                cache.clear()
            text = cache[ticks] = fixed(ticks * units, decimals)
        return text

    return fmt


def fixed(units: int, decimals: int) -> str:
    """`units * 10**-decimals` written with exactly `decimals` decimals."""
    if decimals == 0:
        return str(units)
    sign = "-" if units < 0 else ""
    q, r = divmod(abs(units), 10**decimals)
    return f"{sign}{q}.{r:0{decimals}d}"


def plain(value: Decimal) -> str:
    """A decimal without exponent or trailing zeros ("1.84", "2975")."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


def _decimals(text: str) -> int:
    return len(text.split(".")[1]) if "." in text else 0
