"""`proofwatch beat`: a heartbeat from a shell script, merged with the previous one."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

from workers.protocol import Heartbeat
from workers.sdk import read_heartbeat, write_heartbeat


class BeatError(Exception):
    """Raised when `proofwatch beat` is given bad input or has nowhere to write."""


def parse_counter(text: str) -> tuple[str, float]:
    """'files=12' -> ('files', 12.0)."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise BeatError(f"--progress {text!r}: expected NAME=NUMBER, e.g. files=12")
    try:
        number = float(value)
    except ValueError:
        raise BeatError(f"--progress {text!r}: {value!r} is not a number") from None
    if not math.isfinite(number):
        raise BeatError(f"--progress {text!r}: {value!r} is not a finite number")
    return name.strip(), number


def _declared(text: str) -> tuple[str, str]:
    """'png:screens/a.png' -> ('screens/a.png', 'png'); a plain path is kind file."""
    kind, sep, path = text.partition(":")
    if sep and kind in _KINDS:
        return path, kind
    return text, "file"


_KINDS = frozenset({"file", "text", "log", "json", "jsonl", "png", "jpeg", "parquet", "sqlite"})


def send_beat(
    file: Path | None,
    progress: Sequence[str],
    *,
    phase: str | None = None,
    message: str | None = None,
    blocked: str | None = None,
    unblock: bool = False,
    proofs: Sequence[str] = (),
    now: datetime | None = None,
) -> Heartbeat:
    """Write the next heartbeat (seq + 1, counters merged) and return it."""
    if file is None:
        raise BeatError("PROOFWATCH_HEARTBEAT is not set: run this inside a proofwatch job, or pass --file")
    if not file.parent.is_dir():
        raise BeatError(f"{file.parent}: no such directory (is this run still alive?)")
    counters = dict(parse_counter(p) for p in progress)
    prev = read_heartbeat(file) or Heartbeat(seq=0, ts=datetime.now(timezone.utc))
    when = now or datetime.now(timezone.utc)
    rose = any(v > prev.progress.get(k, float("-inf")) for k, v in counters.items())
    moved = rose or (phase is not None and phase != prev.phase) or prev.progress_at is None
    hb = replace(
        prev,
        progress_at=when if moved else prev.progress_at,
        seq=prev.seq + 1,
        ts=now or datetime.now(timezone.utc),
        progress={**prev.progress, **counters},
        phase=prev.phase if phase is None else phase,
        message=prev.message if message is None else message,
        blocker=None if unblock else (blocked if blocked is not None else prev.blocker),
        proofs=tuple(dict.fromkeys([*prev.proofs, *(_declared(p) for p in proofs)])),
    )
    write_heartbeat(file, hb)
    return hb
