"""Duration text as written in config.toml ("250ms", "90s", "1h30m") to seconds and back."""

from __future__ import annotations

import re

__all__ = ["format_duration", "not_a_duration", "parse_duration"]

_MAX_SECONDS = 36_500 * 86_400.0  # 100 years: any longer overflows a date when added to now

_UNIT_SECONDS: dict[str, float] = {"d": 86_400.0, "h": 3_600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_UNIT_ORDER = ("d", "h", "m", "s", "ms")
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|d|h|m|s)")
_WHOLE = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|d|h|m|s))+")

# Unit words people write instead of the short units; used only to suggest the fix.
_UNIT_WORDS: dict[str, str] = {
    "": "s", "ms": "ms", "msec": "ms", "msecs": "ms", "millisecond": "ms", "milliseconds": "ms",
    "s": "s", "sec": "s", "secs": "s", "second": "s", "seconds": "s",
    "m": "m", "min": "m", "mins": "m", "minute": "m", "minutes": "m",
    "h": "h", "hr": "h", "hrs": "h", "hour": "h", "hours": "h",
    "d": "d", "day": "d", "days": "d",
}
_LOOSE = re.compile(r"\s*[-+]?\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*")


def parse_duration(text: str) -> float:
    """Return the seconds in a duration like "250ms", "90s", "20m", "2h", "1d" or "1h30m"."""
    if not isinstance(text, str) or not _WHOLE.fullmatch(text):
        raise ValueError(not_a_duration(text))
    total = 0.0
    last_rank = -1
    for number, unit in _PART.findall(text):
        rank = _UNIT_ORDER.index(unit)
        if rank <= last_rank:  # "30m1h" or "1m1m": almost certainly a typo
            raise ValueError(not_a_duration(text))
        last_rank = rank
        total += float(number) * _UNIT_SECONDS[unit]
    if total > _MAX_SECONDS:
        shown = text if len(text) <= 40 else text[:37] + "..."
        raise ValueError(f'"{shown}" is too long (at most "36500d", 100 years)')
    return total


def not_a_duration(value: object) -> str:
    """Return the one-line message for a value that is not a duration, with a fix to copy."""
    shown = f'"{value}"' if isinstance(value, str) else _plain(value)
    if len(shown) > 60:  # a line, not a screenful
        shown = shown[:56] + ('..."' if isinstance(value, str) else "...")
    return f'{shown} is not a duration (use e.g. "{_suggest(value)}")'


def _plain(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _suggest(value: object) -> str:
    if isinstance(value, bool):
        return "20m"
    if isinstance(value, (int, float)) and abs(value) < 1e9:  # not 1e400 (OverflowError), nor nan
        return f"{abs(value):g}s"
    if isinstance(value, str):
        match = _LOOSE.fullmatch(value)
        if match and match.group(2).lower() in _UNIT_WORDS:
            return f"{match.group(1)}{_UNIT_WORDS[match.group(2).lower()]}"
    return "20m"


def format_duration(seconds: float) -> str:
    """Return short text for a duration: "250ms", "1.5s", "1m30s", "20m", "1d2h"."""
    if seconds < 0:
        return "-" + format_duration(-seconds)
    millis = round(seconds * 1000)
    if millis == 0:
        return "0s"
    if millis < 1000:
        return f"{millis}ms"
    if millis < 60_000:
        return f"{millis / 1000:.3f}".rstrip("0").rstrip(".") + "s"
    rest = round(millis / 1000)
    parts: list[str] = []
    for unit in ("d", "h", "m", "s"):
        count, rest = divmod(rest, int(_UNIT_SECONDS[unit]))
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
