"""The file notifier: one JSON line per notification, appended and fsynced."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import anyio.to_thread

from supervisor.notify.errors import DeliveryError


class FileSender:
    """Appends payloads to a JSON-lines file (mode 0600 when created)."""

    def __init__(self, name: str, path: Path, timeout: float) -> None:
        self.name = name
        self.timeout = timeout
        self.path = path

    async def send(self, payload: dict[str, Any]) -> None:
        """Append one line; raise DeliveryError when the file cannot be written."""
        line = json.dumps(payload, sort_keys=True, ensure_ascii=False) + "\n"
        try:
            await anyio.to_thread.run_sync(self._append, line.encode(), abandon_on_cancel=True)
        except OSError as exc:
            raise DeliveryError(f"cannot append to {self.path}: {exc.strerror or exc}") from None

    def _append(self, data: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)

    async def aclose(self) -> None:
        """Nothing to release."""
