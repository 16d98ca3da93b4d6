"""Fault switches for tests: thread-safe, callable from the test thread or over HTTP.

    faults.drop()                        close every WebSocket now, abruptly (no close frame)
    faults.stall(2.0)                    keep sockets open, push nothing, answer no ping, 2 s
    faults.malformed(3)                  the next 3 WS pushes are malformed (mixed kinds)
    faults.error("/api/v1/market/trades", "152014", "Instrument ID does not exist", times=1)
    faults.rate_limit(2)                 the next 2 REST calls get HTTP 429

Trades due while stalled (or pushed malformed) are lost to the stream, as on a real exchange.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

from workers.sandbox.errors import BadParameter

FAULT_KINDS = ("drop", "stall", "malformed", "error", "rate_limit")


class Faults:
    """Pending faults; the server consumes them (take_*) as it serves."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stall_until = 0.0  # time.monotonic()
        self._malformed = 0
        self._malformed_sent = 0
        self._rate_limit = 0
        self._errors: dict[str, deque[list[Any]]] = {}
        self._listeners: dict[str, list[Callable[[], None]]] = {"drop": [], "stall": []}
        self.drops = 0

    # -- switches ---------------------------------------------------------------------------

    def drop(self) -> None:
        """Close every WebSocket connection now, abruptly."""
        with self._lock:
            self.drops += 1
        self._notify("drop")

    def stall(self, seconds: float) -> None:
        """Push nothing and answer no ping for `seconds` (sockets stay open)."""
        if not seconds >= 0:
            raise BadParameter("seconds", f"{seconds!r}: must be >= 0")
        with self._lock:
            self._stall_until = max(self._stall_until, time.monotonic() + seconds)
        self._notify("stall")

    def malformed(self, n: int) -> None:
        """Make the next n WS pushes malformed (invalid JSON, wrong types, missing fields)."""
        if n < 0:
            raise BadParameter("n", f"{n!r}: must be >= 0")
        with self._lock:
            self._malformed += n

    def error(self, path: str, code: str, msg: str, times: int = 1) -> None:
        """The next `times` REST calls to `path` answer {"code": code, "msg": msg} (HTTP 200)."""
        if not path.startswith("/"):
            raise BadParameter("path", f"{path!r}: must start with / (e.g. /api/v1/market/trades)")
        if times < 1:
            raise BadParameter("times", f"{times!r}: must be >= 1")
        with self._lock:
            self._errors.setdefault(path, deque()).append([str(code), str(msg), times])

    def rate_limit(self, times: int) -> None:
        """The next `times` REST calls get HTTP 429 {"code":"429","msg":"Too Many Requests"}."""
        if times < 0:
            raise BadParameter("times", f"{times!r}: must be >= 0")
        with self._lock:
            self._rate_limit += times

    def clear(self) -> None:
        """Cancel every pending fault (a stall in progress ends now)."""
        with self._lock:
            self._stall_until = 0.0
            self._malformed = 0
            self._rate_limit = 0
            self._errors.clear()
        self._notify("stall")

    def apply(self, body: Mapping[str, Any]) -> None:
        """Apply one fault described as JSON: {"fault": "stall", "seconds": 2}, ..."""
        kind = body.get("fault")
        try:
            if kind == "drop":
                self.drop()
            elif kind == "stall":
                self.stall(float(body["seconds"]))
            elif kind == "malformed":
                self.malformed(int(body.get("n", 1)))
            elif kind == "error":
                self.error(str(body["path"]), str(body["code"]), str(body.get("msg", "")),
                           int(body.get("times", 1)))
            elif kind == "rate_limit":
                self.rate_limit(int(body.get("times", 1)))
            elif kind == "clear":
                self.clear()
            else:
                known = ", ".join((*FAULT_KINDS, "clear"))
                raise BadParameter("fault", f"{kind!r} is not one of {known}")
        except KeyError as exc:
            raise BadParameter(str(exc.args[0]), f"missing for fault {kind!r}") from None
        except (TypeError, ValueError) as exc:
            raise BadParameter("fault", f"{kind!r}: {exc}") from None

    # -- server side ------------------------------------------------------------------------

    def on_drop(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call `listener` (in the caller's thread) on drop(); returns an unregister function."""
        return self._listen("drop", listener)

    def on_stall(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call `listener` (in the caller's thread) on stall(); returns an unregister function."""
        return self._listen("stall", listener)

    def _listen(self, kind: str, listener: Callable[[], None]) -> Callable[[], None]:
        with self._lock:
            self._listeners[kind].append(listener)

        def remove() -> None:
            with self._lock:
                if listener in self._listeners[kind]:
                    self._listeners[kind].remove(listener)

        return remove

    def _notify(self, kind: str) -> None:
        with self._lock:
            listeners = list(self._listeners[kind])
        for listener in listeners:
            listener()

    def stalled_for(self) -> float:
        """Seconds left in the current stall (0.0 when not stalled)."""
        return max(0.0, self._stall_until - time.monotonic())

    def take_malformed(self) -> int | None:
        """Consume one malformed push: its ordinal (picks the kind), or None."""
        with self._lock:
            if self._malformed <= 0:
                return None
            self._malformed -= 1
            self._malformed_sent += 1
            return self._malformed_sent

    def take_rate_limit(self) -> bool:
        with self._lock:
            if self._rate_limit <= 0:
                return False
            self._rate_limit -= 1
            return True

    def take_error(self, path: str) -> tuple[str, str] | None:
        with self._lock:
            queue = self._errors.get(path)
            if not queue:
                return None
            entry = queue[0]
            entry[2] -= 1
            if entry[2] <= 0:
                queue.popleft()
            return entry[0], entry[1]

    def pending(self) -> dict[str, Any]:
        """What is still pending (for /_sandbox/state)."""
        with self._lock:
            return {
                "stalled_for": round(self.stalled_for(), 3),
                "malformed": self._malformed,
                "malformed_sent": self._malformed_sent,
                "rate_limit": self._rate_limit,
                "errors": {p: sum(e[2] for e in q) for p, q in self._errors.items() if q},
                "drops": self.drops,
            }
