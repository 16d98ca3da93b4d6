"""File-change intake: watchfiles (inotify) on the runs directory, so a heartbeat is seen
within tens of milliseconds of being written."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import anyio
from watchfiles import Change, awatch

from supervisor.logs import STDERR, STDOUT
from workers.protocol import HEARTBEAT_FILE

log = logging.getLogger(__name__)

_INTERESTING = frozenset({HEARTBEAT_FILE, STDOUT, STDERR})
DEBOUNCE_MS = 200
STEP_MS = 50


def _only_reports(_change: Change, path: str) -> bool:
    return os.path.basename(path) in _INTERESTING


async def watch_runs(
    runs_dir: Path, on_change: Callable[[str], None], stop: anyio.Event
) -> None:
    """Call `on_change(path)` for every changed heartbeat or output file until `stop` is set."""
    while not stop.is_set():
        try:
            async for changes in awatch(
                runs_dir,
                watch_filter=_only_reports,
                debounce=DEBOUNCE_MS,
                step=STEP_MS,
                stop_event=stop,
                rust_timeout=1000,
            ):
                for _change, path in changes:
                    on_change(path)
        except Exception:  # the rescan keeps heartbeats flowing meanwhile
            log.exception("file watcher failed; restarting it in 1s (rescan covers the gap)")
            await anyio.sleep(1.0)
