"""The heartbeat protocol, shared by workers (writers) and the supervisor (reader).

A worker atomically replaces the file named by PROOFWATCH_HEARTBEAT with one JSON object:
`{"seq": int, "ts": iso8601, "progress": {"name": number}, "phase": str, "message": str,
"blocker": str | null, "proofs": [path | {"path": path, "kind": kind}, ...]}`.
Stdlib only, so a job can copy this file.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

ENV_JOB = "PROOFWATCH_JOB"
ENV_RUN_ID = "PROOFWATCH_RUN_ID"
ENV_RUN_DIR = "PROOFWATCH_RUN_DIR"
ENV_HEARTBEAT = "PROOFWATCH_HEARTBEAT"
ENV_DATA_DIR = "PROOFWATCH_DATA_DIR"
ENV_SCRATCH = "PROOFWATCH_SCRATCH"  # optional: where to write temp files before the rename

HEARTBEAT_FILE = "heartbeat.json"
HEARTBEAT_MAX_BYTES = 1_048_576
MESSAGE_MAX_CHARS = 2000


class HeartbeatError(ValueError):
    """Raised when a heartbeat document is malformed; the message says which field and why."""


@dataclass(frozen=True)
class Heartbeat:
    """One validated heartbeat."""

    seq: int
    ts: datetime
    progress: dict[str, float] = field(default_factory=dict)
    phase: str = ""
    message: str = ""
    blocker: str | None = None
    proofs: tuple[tuple[str, str], ...] = ()  # (path, kind) declared by the worker
    progress_at: datetime | None = None  # when a counter last rose or the phase changed

    def to_json(self) -> str:
        """Serialise to the wire form."""
        doc: dict[str, Any] = {
            "seq": self.seq,
            "ts": self.ts.isoformat(),
            "progress": self.progress,
            "phase": self.phase,
            "message": self.message,
            "blocker": self.blocker,
        }
        if self.progress_at is not None:
            doc["progress_at"] = self.progress_at.isoformat()
        if self.proofs:
            doc["proofs"] = [p if k == "file" else {"path": p, "kind": k} for p, k in self.proofs]
        return json.dumps(doc, separators=(",", ":"))


def parse_heartbeat(raw: bytes | str) -> Heartbeat:
    """Validate a heartbeat document; raise HeartbeatError naming the bad field."""
    if len(raw) > HEARTBEAT_MAX_BYTES:
        raise HeartbeatError(f"heartbeat is {len(raw)} bytes (limit {HEARTBEAT_MAX_BYTES})")
    try:
        doc = json.loads(raw)
    except RecursionError:
        raise HeartbeatError("not valid JSON: nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, a number over 4300 digits
        raise HeartbeatError(f"not valid JSON: {_first_line(exc)}") from None
    if not isinstance(doc, dict):
        raise HeartbeatError(f"expected a JSON object, got {type(doc).__name__}")
    seq = doc.get("seq")
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        raise HeartbeatError(f"seq: expected a non-negative integer, got {_show(seq)}")
    ts = _parse_ts(doc.get("ts"))
    progress = _parse_progress(doc.get("progress", {}))
    phase = _opt_str(doc, "phase") or ""
    message = (_opt_str(doc, "message") or "")[:MESSAGE_MAX_CHARS]
    blocker = _opt_str(doc, "blocker") or None
    progress_at = _parse_ts(doc["progress_at"], "progress_at") if doc.get("progress_at") is not None else None
    return Heartbeat(seq, ts, progress, phase, message, blocker, _parse_proofs(doc.get("proofs", [])),
                     progress_at)


def _parse_proofs(value: object) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, list):
        raise HeartbeatError(f"proofs: expected a list, got {_show(value)}")
    out: list[tuple[str, str]] = []
    for i, item in enumerate(value):
        if isinstance(item, str):
            out.append((_path(f"proofs[{i}]", item), "file"))
        elif isinstance(item, dict) and isinstance(item.get("path"), str):
            kind = item.get("kind", "file")
            if not isinstance(kind, str):
                raise HeartbeatError(f"proofs[{i}].kind: expected a string, got {_show(kind)}")
            out.append((_path(f"proofs[{i}].path", item["path"]), _text(f"proofs[{i}].kind", kind)))
        else:
            raise HeartbeatError(f"proofs[{i}]: expected a path or {{\"path\": ..., \"kind\": ...}}, "
                                 f"got {_show(item)}")
    return tuple(out)


def _parse_ts(value: object, key: str = "ts") -> datetime:
    if not isinstance(value, str):
        raise HeartbeatError(f"{key}: expected an ISO 8601 string, got {_show(value)}")
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise HeartbeatError(f"{key}: {_show(value)} is not an ISO 8601 timestamp") from None
    return ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)


def _parse_progress(value: object) -> dict[str, float]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise HeartbeatError(f"progress: expected an object of name -> number, got {_show(value)}")
    out: dict[str, float] = {}
    for name, number in value.items():
        key = f"progress.{_text('progress', name)[:80]}"
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            raise HeartbeatError(f"{key}: expected a number, got {_show(number)}")
        try:
            finite = math.isfinite(number)
        except OverflowError:  # an integer beyond any float
            finite = False
        if not finite:
            raise HeartbeatError(f"{key}: expected a finite number, got {_show(number)}")
        out[name] = number
    return out


def _opt_str(doc: dict[str, Any], key: str) -> str | None:
    value = doc.get(key)
    if value is None or isinstance(value, str):
        return value if value is None else _text(key, value)
    raise HeartbeatError(f"{key}: expected a string, got {_show(value)}")


def _text(key: str, value: str) -> str:
    """`value`, if it can be stored: a lone surrogate (JSON "\\ud800") is no Unicode text, and
    would fail every later UTF-8 encode (status.json, the history)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise HeartbeatError(f"{key}: not valid Unicode (a lone surrogate "
                             f"\\u{ord(value[exc.start]):04x} at character {exc.start})") from None
    return value


def _path(key: str, value: str) -> str:
    if "\0" in value:
        raise HeartbeatError(f"{key}: a path cannot contain a NUL character (\\u0000)")
    return _text(key, value)


def _show(value: object) -> str:
    """repr(value), cut short: an error names the bad value, it does not echo a megabyte."""
    try:
        text = repr(value)
    except (RecursionError, ValueError):  # nested too deep, or an integer over 4300 digits
        text = f"a {type(value).__name__}"
    return text if len(text) <= 80 else text[:77] + "..."


def _first_line(exc: ValueError) -> str:
    return str(exc).split(";")[0] if "integer string conversion" in str(exc) else str(exc)
