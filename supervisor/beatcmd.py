"""`proofwatch beat`: a heartbeat from a shell script, merged with the previous one — written
to the run's heartbeat file, or sent to a daemon on another machine (`--url`, `--token`)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

from workers.protocol import Heartbeat, HeartbeatError, parse_heartbeat
from workers.sdk import read_heartbeat, write_heartbeat


class BeatError(Exception):
    """Raised when `proofwatch beat` is given bad input, has nowhere to write, or the remote
    daemon refuses the heartbeat or cannot be reached. `exit_code`: 2 for bad input, 1 for a
    refusal or a network failure."""

    def __init__(self, message: str, *, exit_code: int = 2) -> None:
        self.exit_code = exit_code
        super().__init__(message)


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


def next_beat(
    prev: Heartbeat | None,
    counters: dict[str, float],
    *,
    phase: str | None = None,
    message: str | None = None,
    blocked: str | None = None,
    unblock: bool = False,
    proofs: Sequence[str] = (),
    now: datetime | None = None,
) -> Heartbeat:
    """The heartbeat after `prev`: seq + 1, counters merged, fields kept unless given."""
    when = now or datetime.now(timezone.utc)
    prev = prev or Heartbeat(seq=0, ts=when)
    rose = any(v > prev.progress.get(k, float("-inf")) for k, v in counters.items())
    moved = rose or (phase is not None and phase != prev.phase) or prev.progress_at is None
    return replace(
        prev,
        progress_at=when if moved else prev.progress_at,
        seq=prev.seq + 1,
        ts=when,
        progress={**prev.progress, **counters},
        phase=prev.phase if phase is None else phase,
        message=prev.message if message is None else message,
        blocker=None if unblock else (blocked if blocked is not None else prev.blocker),
        proofs=tuple(dict.fromkeys([*prev.proofs, *(_declared(p) for p in proofs)])),
    )


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
    hb = next_beat(read_heartbeat(file), counters, phase=phase, message=message, blocked=blocked,
                   unblock=unblock, proofs=proofs, now=now)
    write_heartbeat(file, hb)
    return hb


def send_remote_beat(
    url: str,
    token: str | None,
    run_id: str | None,
    progress: Sequence[str],
    *,
    phase: str | None = None,
    message: str | None = None,
    blocked: str | None = None,
    unblock: bool = False,
    proofs: Sequence[str] = (),
    now: datetime | None = None,
    timeout: float = 10.0,
) -> dict[str, Any]:
    """Send the next heartbeat of run `run_id` to the daemon at `url` (its previous heartbeat
    is read from there, so counters merge as they do locally); return the daemon's answer."""
    import httpx

    if not url.startswith(("http://", "https://")):
        raise BeatError(f"--url {url!r}: expected the daemon's address, e.g. http://10.0.0.5:8765")
    if not token:
        raise BeatError("--token (or PROOFWATCH_HEARTBEAT_TOKEN) is required with --url: "
                        "the job's heartbeat_token")
    if not run_id:
        raise BeatError("--run (or PROOFWATCH_RUN_ID) is required with --url: the id of the run "
                        "this heartbeat is for (the daemon gives it to the job as PROOFWATCH_RUN_ID)")
    counters = dict(parse_counter(p) for p in progress)
    path = f"/api/runs/{quote(run_id, safe='')}/heartbeat"
    try:
        with httpx.Client(base_url=url.rstrip("/"), timeout=timeout,
                          headers={"Authorization": f"Bearer {token}"}) as client:
            current = _answer(client.get(path))
            prev = _heartbeat(current.get("heartbeat"))
            hb = next_beat(prev, counters, phase=phase, message=message, blocked=blocked,
                           unblock=unblock, proofs=proofs, now=now)
            return _answer(client.post(path, content=hb.to_json(),
                                       headers={"Content-Type": "application/json"}))
    except httpx.HTTPError as exc:
        raise BeatError(f"{url}: cannot reach the daemon ({exc})", exit_code=1) from None


def _answer(response: Any) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.status_code != 200 or not isinstance(body, dict):
        why = body.get("error") if isinstance(body, dict) else response.text[:200]
        raise BeatError(f"the daemon refused the heartbeat ({response.status_code}): {why}", exit_code=1)
    return body


def _heartbeat(doc: object) -> Heartbeat | None:
    if doc is None:
        return None
    try:
        return parse_heartbeat(json.dumps(doc))
    except HeartbeatError:
        return None
