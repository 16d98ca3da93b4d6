"""Disk-full handling: one critical alert per full mount, resolved when writes succeed again.

Every daemon write reports its outcome here (`DiskWatch.report(what, path, exc)`: status.json,
the history, alerts.jsonl). A failure for lack of space (ENOSPC, EDQUOT, SQLite's "database or
disk is full") raises ONE alert for the mount the path lives on:

    disk-full:/mnt/x  critical  "disk full: /mnt/x (state_dir /mnt/x/var): status.json cannot
                                 be written — No space left on device"

The writers keep what they could not write (the previous complete status.json stays in place,
history rows stay queued in memory) and retry. A probe (statvfs of the mounts holding the
state_dir and data_dir, every rescan) also catches a full data_dir, which only the jobs write,
and pokes the writers as soon as space is back. The alert is resolved once no write to that
mount is failing and the mount has space again.
"""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import anyio
import anyio.to_thread

from status.models import Severity

if TYPE_CHECKING:  # the recorder imports this module, and the alert book imports the recorder
    from supervisor.alerts import AlertBook

log = logging.getLogger(__name__)

ALERT_PREFIX = "disk-full:"
FULL_BELOW = 1 << 20  # a mount with less free than this (and < 1% of its size) is full
_NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT})
_SQLITE_FULL = "database or disk is full"


class Clock(Protocol):
    """Where "now" comes from (the daemon's clock)."""

    def now(self) -> datetime: ...


def no_space(exc: BaseException | None) -> str | None:
    """Why `exc` (or an error it wraps) means the disk or the quota is full; None otherwise."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in _NO_SPACE_ERRNOS:
            return os.strerror(exc.errno or errno.ENOSPC)
        if isinstance(exc, sqlite3.Error) and (
                getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or _SQLITE_FULL in str(exc)):
            return _SQLITE_FULL
        orig = getattr(exc, "orig", None)  # SQLAlchemy wraps the driver's error
        exc = orig if isinstance(orig, BaseException) else (exc.__cause__ or exc.__context__)
    return None


def mount_point(path: Path) -> Path:
    """The mount point holding `path` (or its nearest existing ancestor)."""
    p = Path(os.path.realpath(path))
    while not p.exists() and p != p.parent:
        p = p.parent
    while not os.path.ismount(p) and p != p.parent:
        p = p.parent
    return p


def free_space(mount: Path) -> tuple[int, int]:
    """(bytes free to unprivileged writers, total bytes) of a mount."""
    st = os.statvfs(mount)
    return st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize


def is_full(free: int, total: int) -> bool:
    """Too little space left for the daemon's writes (under 1 MiB and under 1% of the size)."""
    return free < min(FULL_BELOW, max(total // 100, 1))


def size_text(n: int) -> str:
    """Bytes for people: '0 B', '512 KiB', '4.0 MiB'."""
    if n < 1024:
        return f"{n} B"
    if n < 1 << 20:
        return f"{n / 1024:.0f} KiB"
    if n < 1 << 30:
        return f"{n / (1 << 20):.1f} MiB"
    return f"{n / (1 << 30):.1f} GiB"


@dataclass
class _Mount:
    path: Path
    failing: dict[str, str] = field(default_factory=dict)  # what -> "No space left on device"
    space: str | None = None  # the probe's "0 B free of 4.0 MiB" while the mount is full
    title: str | None = None  # "status.json cannot be written — ...": the first failed write


class DiskWatch:
    """Tracks failed writes and free space per mount; owns the `disk-full:<mount>` alerts."""

    def __init__(self, alerts: AlertBook, clock: Clock, places: Mapping[str, Path], *,
                 retry: Sequence[Callable[[], None]] = (), on_change: Callable[[], None] | None = None) -> None:
        self.alerts = alerts
        self.clock = clock
        self.places = {name: Path(os.path.abspath(p)) for name, p in places.items()}
        self.retry = list(retry)
        self.on_change = on_change or (lambda: None)
        self.mounts: dict[Path, _Mount] = {}
        self._mount_of: dict[Path, Path] = {}

    def mount_of(self, path: Path) -> Path:
        """The (cached) mount point of a file or directory."""
        folder = Path(os.path.abspath(path)).parent
        cached = self._mount_of.get(folder)
        if cached is None:
            cached = self._mount_of[folder] = mount_point(folder)
        return cached

    def failing(self, mount: Path) -> dict[str, str]:
        """What cannot be written on `mount` now, and why."""
        m = self.mounts.get(mount)
        return dict(m.failing) if m else {}

    def report(self, what: str, path: Path, exc: BaseException | None) -> None:
        """A write of `what` (e.g. "status.json") to `path` succeeded (exc None) or failed."""
        if exc is None:
            m = self.mounts.get(self.mount_of(path))
            if m is not None and m.failing.pop(what, None) is not None:
                log.info("%s written again on %s", what, m.path)
                self._settle(m, f"{what} written again")
            return
        reason = no_space(exc)
        if reason is None:
            return  # not a space problem: the writer logs it
        mount = self.mount_of(path)
        m = self.mounts.setdefault(mount, _Mount(mount))
        if m.failing.get(what) == reason:
            return
        m.failing[what] = reason
        log.error("disk full: %s cannot be written to %s: %s", what, mount, reason)
        # the title names the first write that failed; each later one is added to the detail
        m.title = m.title or f"{what} cannot be written — {reason}"
        self._fire(m, m.title)
        self.on_change()

    def probe(self) -> list[tuple[Path, int, int]]:
        """statvfs of every mount to watch (blocking: call it off the loop)."""
        mounts = {self.mount_of(p / "x") for p in self.places.values()}
        mounts |= set(self.mounts)
        mounts |= {Path(k.removeprefix(ALERT_PREFIX)) for k in self.alerts.active if k.startswith(ALERT_PREFIX)}
        out = []
        for mount in sorted(mounts):
            try:
                free, total = free_space(mount)
            except OSError:
                free, total = FULL_BELOW, FULL_BELOW  # gone or unreadable: not "full"
            out.append((mount, free, total))
        return out

    def apply_probe(self, results: list[tuple[Path, int, int]]) -> None:
        """Raise or settle alerts from a probe's results; poke the writers when space is back."""
        poke = False
        for mount, free, total in results:
            m = self.mounts.setdefault(mount, _Mount(mount))
            if is_full(free, total):
                space = f"{size_text(free)} free of {size_text(total)}"
                if m.space is None:
                    m.space = space
                    log.error("disk full: %s has %s", mount, space)
                    if not m.failing:
                        self._fire(m, f"{space} — writes will fail")
                    self.on_change()
                m.space = space
                continue
            if m.space is not None:
                log.info("space is back on %s: %s free", mount, size_text(free))
                m.space = None
            poke = poke or bool(m.failing)
            self._settle(m, f"{size_text(free)} free again")
        if poke:
            for fn in self.retry:
                fn()

    async def serve(self, interval: float) -> None:
        """Probe every `interval` seconds until cancelled; a failed probe is logged, never fatal."""
        while True:
            try:
                self.apply_probe(await anyio.to_thread.run_sync(self.probe))
            except Exception:
                log.exception("disk space probe failed; next try in %ss", interval)
            await anyio.sleep(interval)

    def _roles(self, mount: Path) -> list[str]:
        return [f"{name} {p}" for name, p in self.places.items() if self.mount_of(p / "x") == mount]

    def _fire(self, m: _Mount, what: str) -> None:
        roles = self._roles(m.path)
        where = f" ({', '.join(roles)})" if roles else ""
        self.alerts.fire(None, f"{ALERT_PREFIX}{m.path}", severity=Severity.CRITICAL, now=self.clock.now(),
                         title=f"disk full: {m.path}{where}: {what}", detail=self._detail(m, roles))

    def _detail(self, m: _Mount, roles: list[str]) -> str:
        lines = [f"mount {m.path}" + (f": {m.space}" if m.space else ""),
                 *(f"on it: {r}" for r in roles)]
        lines += [f"cannot be written: {what} ({reason})" for what, reason in m.failing.items()]
        lines.append("proofwatch keeps running: the previous complete status.json stays in place and "
                     "history rows wait in memory; both are written as soon as there is space. "
                     f"Free space on {m.path} (old runs, large data files); this alert then resolves itself.")
        return "\n".join(lines)

    def _settle(self, m: _Mount, why: str) -> None:
        if m.failing or m.space is not None:
            return
        m.title = None
        if self.alerts.resolve(f"{ALERT_PREFIX}{m.path}", self.clock.now(), f"space is back: {why}"):
            self.on_change()
