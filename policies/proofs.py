"""Proof verdicts: freshness, size, count, age, JSON key paths, image and row minimums.

Pure functions of (facts, settings, now) -> a problem string or None; the supervisor reads the
files, runs the verifiers and turns these verdicts into `ProofStatus` records. A problem string
starts with a short word the operator can scan for ("stale:", "too small:", "missing:", ...).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

__all__ = [
    "age_check", "age_problem", "count_check", "count_problem", "fresh_problem", "lookup_problem",
    "minimum_problem", "size_check", "size_problem", "span",
]


def span(seconds: float) -> str:
    """Short text for a duration as an operator reads it: "500ms", "60s", "20m", "1h30m", "2d3h"."""
    if seconds < 0:
        return "-" + span(-seconds)
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    if seconds < 120:
        return f"{round(seconds, 3):g}s"
    whole = round(seconds)
    parts: list[str] = []
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)):
        count, whole = divmod(whole, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts[:2])


def fresh_problem(mtime: datetime, started_at: datetime) -> str | None:
    """Why an artifact modified at `mtime` does not belong to a run started at `started_at`."""
    if mtime < started_at:
        return f"stale: modified {mtime.isoformat()} before the run started {started_at.isoformat()}"
    return None


def size_problem(size: int, min_bytes: int) -> str | None:
    """Why a file of `size` bytes is not enough: empty files never prove anything."""
    if size < min_bytes:
        return f"too small: {size} bytes < min_bytes {min_bytes}"
    if size == 0:
        return "empty: 0 bytes"
    return None


def size_check(min_bytes: int) -> str:
    """The passed-check text for the size verdict."""
    return f">= {min_bytes} bytes" if min_bytes > 0 else "not empty"


def count_problem(matched: int, valid: int, min_count: int) -> str | None:
    """Why `valid` good files out of `matched` fall short of `min_count`."""
    if valid >= min_count:
        return None
    found = f"{matched} matched, {valid} valid" if matched else "nothing matched"
    return f"missing: {found}; min_count is {min_count}"


def count_check(min_count: int) -> str:
    """The passed-check text for the count verdict."""
    return f">= {min_count} file{'' if min_count == 1 else 's'}"


def age_problem(newest: datetime, now: datetime, max_age: float) -> str | None:
    """Why the newest matching file (modified at `newest`) is too old to count at `now`."""
    age = (now - newest).total_seconds()
    if age <= max_age:
        return None
    return (f"too old: newest file modified {span(age)} ago ({newest.isoformat()}), "
            f"max_age is {span(max_age)}")


def age_check(max_age: float) -> str:
    """The passed-check text for the max_age verdict."""
    return f"newest < {span(max_age)} old"


def minimum_problem(what: str, have: int, minimum: int | None, key: str) -> str | None:
    """`have` of `what` (rows, lines, px wide...) is under the configured `key` = `minimum`."""
    if minimum is None or have >= minimum:
        return None
    return f"too few {what}: {have} < {key} {minimum}"


def lookup_problem(doc: object, dotted: str) -> str | None:
    """Why the key path "model.metrics.auc" or "items.0.id" is absent from a decoded JSON doc."""
    node = doc
    walked: list[str] = []
    for part in dotted.split("."):
        where = ".".join(walked) or "the top level"
        if isinstance(node, dict):
            if part not in node:
                return f"missing key {dotted} ({where} has no {part!r}{_keys_hint(node)})"
            node = node[part]
        elif isinstance(node, list):
            if not _is_index(part):
                return f"missing key {dotted} ({where} is a list; use an index, not {part!r})"
            index = int(part)
            if not -len(node) <= index < len(node):
                return f"missing key {dotted} ({where} has {len(node)} items, no index {index})"
            node = node[index]
        else:
            return f"missing key {dotted} ({where} is {_json_type(node)}, not an object)"
        walked.append(part)
    return None


def _is_index(part: str) -> bool:
    return part.isdigit() or (part.startswith("-") and part[1:].isdigit())


def _keys_hint(node: dict[str, object]) -> str:
    keys: Sequence[str] = sorted(map(str, node))
    if not keys:
        return "; it is empty"
    shown = ", ".join(keys[:8]) + (", ..." if len(keys) > 8 else "")
    return f"; it has {shown}"


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a " + type(value).__name__
