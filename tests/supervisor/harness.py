"""Run a real Daemon on a temp config inside a test's event loop."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from functools import partial
from pathlib import Path

import anyio

from status.models import JobState
from supervisor.config import load_config
from supervisor.daemon import Clock, Daemon
from tests._procs import script

# allow_root: the suite runs as root in CI sandboxes, where the daemon would otherwise refuse
# every job (README "Security"); tests/supervisor/test_security.py covers the refusal itself.
HEADER = """
[supervisor]
state_dir = "var"
data_dir = "data"
rescan_every = "200ms"
status_min_interval = "50ms"
allow_root = true
"""


class FakeClock:
    """A clock tests move by hand."""

    def __init__(self, start: datetime) -> None:
        self.t = start

    def now(self) -> datetime:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += timedelta(seconds=seconds)


def job(tmp_path: Path, name: str, body: str, args: str = "", **keys: object) -> str:
    """A [jobs.NAME] table running a canned script."""
    path = script(tmp_path, name, body)
    lines = [f"[jobs.{name}]", f'command = ["{sys.executable}", "{path}"{args}]']
    for k, v in keys.items():
        lines.append(f"{k} = {_toml(v)}")
    return "\n".join(lines) + "\n"


def _toml(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml(x) for x in v) + "]"
    return str(v)


@asynccontextmanager
async def running(
    tmp_path: Path, *tables: str, clock: Clock | None = None, supervisor: str = "", header: str = HEADER
) -> AsyncIterator[Daemon]:
    """A started daemon; shut down (jobs stopped) on exit."""
    cfg_path = tmp_path / "config.toml"
    cfg_path.write_text(header + supervisor + "\n" + "\n".join(tables))
    daemon = Daemon(load_config(cfg_path), clock=clock)
    async with anyio.create_task_group() as tg:
        tg.start_soon(partial(daemon.run, handle_signals=False))
        with anyio.fail_after(10):
            await daemon.ready.wait()
        try:
            yield daemon
        finally:
            daemon.shutdown("test finished")
            with anyio.fail_after(15):
                await daemon.finished.wait()


async def reach(daemon: Daemon, name: str, *states: JobState, timeout: float = 10) -> None:
    """Wait until the job is in one of `states`."""
    try:
        await daemon.wait_until(lambda: daemon.jobs[name].state in states, timeout)
    except TimeoutError:
        raise AssertionError(
            f"{name} never reached {[s.value for s in states]}; it is {daemon.jobs[name].state.value}"
        ) from None


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)  # type: ignore[misc]
