"""The Apprise notifier: any Apprise URL (tgram://, slack://, discord://, ntfy://, mailto://,
json://, ...). apprise is imported on first use and runs in a worker thread; its log lines
for this delivery become the attempt's error text (redacted by the dispatcher)."""

from __future__ import annotations

import logging
import threading
import warnings
from types import ModuleType
from typing import Any

import anyio.to_thread

from supervisor.notify._message import render
from supervisor.notify.errors import DeliveryError

_load_lock = threading.Lock()
_module: ModuleType | None = None


def _apprise() -> ModuleType:
    """Import apprise and its plugins once (they warn about deprecated stdlib modules)."""
    global _module
    with _load_lock:
        if _module is None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                import apprise

                apprise.Apprise.instantiate("json://localhost")  # loads every plugin module now
            _module = apprise
        return _module


class _ThreadLog(logging.Handler):
    """Collects the apprise log lines emitted by one thread."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.thread = threading.get_ident()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.lines.append(record.getMessage())


class AppriseSender:
    """Sends title + text through one Apprise URL."""

    def __init__(self, name: str, url: str, timeout: float) -> None:
        self.name = name
        self.timeout = timeout
        self._url = url

    async def send(self, payload: dict[str, Any]) -> None:
        """Notify once; raise DeliveryError when Apprise reports a failure."""
        title, body = render(payload)
        items = payload.get("alerts", [])
        kind = "success" if items and all(i.get("event") == "resolved" for i in items) else {
            "critical": "failure", "warning": "warning"}.get(str(payload.get("severity")), "info")
        await anyio.to_thread.run_sync(self._notify, title, body, kind, abandon_on_cancel=True)

    def _notify(self, title: str, body: str, kind: str) -> None:
        apprise = _apprise()
        capture = _ThreadLog()
        logger = logging.getLogger("apprise")
        logger.addHandler(capture)
        try:  # the plugin itself, not Apprise.notify: that would send from yet another thread
            plugin = apprise.Apprise.instantiate(self._url)
            if plugin is None:
                raise DeliveryError("not a usable Apprise URL (unknown scheme or missing parts)",
                                    permanent=True)
            ok = plugin.notify(body=body, title=title, notify_type=apprise.NotifyType(kind))
        finally:
            logger.removeHandler(capture)
        if not ok:
            detail = "; ".join(capture.lines[-3:])
            raise DeliveryError("apprise could not deliver" + (f": {detail}" if detail else ""))

    async def aclose(self) -> None:
        """Nothing to release."""
