"""Self-watch: the daemon proving its own health to systemd and to a dead-man's switch.

systemd (the sd_notify protocol, stdlib only): when NOTIFY_SOCKET is set (a path, or "@name"
for an abstract socket), datagrams go to that AF_UNIX socket: READY=1 with a STATUS= line once
the daemon is ready; STATUS=<one line> when the job counts change (at most every
STATUS_EVERY); WATCHDOG=1 every WATCHDOG_USEC/2 while the daemon is healthy (and WATCHDOG_PID,
when set, is this process); STOPPING=1 when it shuts down. The variables are removed from the
environment once read, so jobs spawned later do not inherit them.

Dead-man's switch (`[supervisor] deadman_url`, Healthchecks.io's ping API): a GET of the URL
every `deadman_every` while the daemon is healthy. When the pings stop (the host is down, the
daemon hangs or is gone) the service alerts from the outside. No "/start" signal: that is for
timing a job from start to success, and a daemon is not a job. On a crash (the daemon's task
group ends without a shutdown request) a POST to "<url>/fail", the reason as its body, alerts
at once. A clean stop (SIGTERM, an operator) sends nothing: a restart or a reboot back within
the check's grace time stays quiet; pause the check for planned downtime.

Healthy means the daemon's own loop does its work, not merely that a timer fires: the pings are
sent from the daemon's event loop (never a thread, which would keep pinging while the loop is
blocked), and are withheld while the reconciler has not completed a pass for RECONCILE_STALE
(the reconciler wakes at least every daemon.MAX_SLEEP, 30 s, when idle). Every request has a
hard total deadline (a hanging or trickling endpoint cannot block anything), and pings keep a
fixed cadence whatever their duration.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
from collections import Counter
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit
from weakref import WeakKeyDictionary

import anyio

from status.models import JobState
from supervisor.config import EnvError, expand_env
from supervisor.durations import format_duration
from supervisor.notify import redact, register_secret
from supervisor.notify._redact import install_log_filter

if TYPE_CHECKING:
    import httpx

    from supervisor.daemon import Daemon
    from supervisor.runs import JobRuntime

log = logging.getLogger(__name__)

SYSTEMD_ENV = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")
STATUS_EVERY = 2.0  # seconds between two STATUS= updates at most
RECONCILE_STALE = 45.0  # no reconciler pass for this long: unhealthy (it wakes every <= 30 s)
DEADMAN_TIMEOUT = 10.0  # hard deadline of one ping (never more than deadman_every)
FAIL_TIMEOUT = 3.0  # hard deadline of the /fail ping sent while the daemon dies

_watches: WeakKeyDictionary[Daemon, SelfWatch] = WeakKeyDictionary()


def state_of(daemon: Daemon) -> SelfWatch | None:
    """The self-watch of a running daemon (None before it started)."""
    return _watches.get(daemon)


def take_systemd_env(environ: MutableMapping[str, str], pid: int) -> tuple[str | None, float | None]:
    """Remove the sd_notify variables from `environ`; return (socket address, watchdog
    interval in seconds). The address is None without NOTIFY_SOCKET, the interval None when
    the watchdog is off or meant for another process (WATCHDOG_PID)."""
    values = {key: environ.pop(key, None) for key in SYSTEMD_ENV}
    raw = values["NOTIFY_SOCKET"]
    address = None
    if raw and raw.startswith("@"):
        address = "\0" + raw[1:]
    elif raw and raw.startswith("/"):
        address = raw
    elif raw:
        log.warning("NOTIFY_SOCKET=%r is neither a path nor an abstract socket (@name); ignored", raw)
    return address, watchdog_interval({k: v for k, v in values.items() if v is not None}, pid)


def watchdog_interval(environ: Mapping[str, str], pid: int) -> float | None:
    """Seconds between WATCHDOG=1 pings: half of WATCHDOG_USEC; None when it is unset, not
    a positive integer, or WATCHDOG_PID names another process."""
    owner = environ.get("WATCHDOG_PID")
    if owner is not None and owner.strip() != str(pid):
        return None
    try:
        usec = int(environ.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec / 2e6 if usec > 0 else None


def status_line(jobs: Iterable[JobRuntime], alerts: int) -> str:
    """One line for systemctl status: "12 jobs: 2 pending, 9 running, 1 stalled; 2 alerts"."""
    counts = Counter(job.state for job in jobs)
    total = sum(counts.values())
    parts = ", ".join(f"{counts[state]} {state.value.lower()}" for state in JobState if counts[state])
    head = f"{total} job{'' if total == 1 else 's'}" + (f": {parts}" if parts else "")
    return f"{head}; {alerts or 'no'} alert{'' if alerts == 1 else 's'}"


def health_problem(daemon: Daemon, now: float) -> str | None:
    """Why the daemon is not healthy (None when it is); `now` is time.monotonic()."""
    # Daemon.reconciled_at: time.monotonic() at the start of each reconciler pass.
    at = getattr(daemon, "reconciled_at", None)
    if isinstance(at, float) and now - at > RECONCILE_STALE:
        return f"the reconciler has not run for {format_duration(now - at)}"
    return None


def signal_url(url: str, signal: str) -> str:
    """A Healthchecks signal URL: `signal` appended to the path, the query kept."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/" + signal))


def next_slot(previous: float, every: float, now: float) -> float:
    """The next tick on the grid previous + k*every that is after `now` (missed ticks are
    skipped, never bunched, and the cadence never drifts with the work done per tick)."""
    nxt = previous + every
    if nxt <= now:
        nxt += every * (math.floor((now - nxt) / every) + 1)
    return nxt


class SdNotify:
    """Datagrams to systemd's notification socket; a no-op without one."""

    def __init__(self, address: str | None) -> None:
        self.address = address
        self._sock: socket.socket | None = None
        self._failing = False

    def send(self, *fields: str) -> bool:
        """Send one message ("KEY=value" lines); True when it was handed to the socket."""
        if self.address is None:
            return False
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                self._sock.setblocking(False)  # a full queue drops a message, never blocks the loop
            self._sock.sendto("\n".join(fields).encode(), self.address)
        except OSError as exc:
            if not self._failing:
                log.warning("cannot notify systemd (NOTIFY_SOCKET): %s; will keep trying", exc)
            self._failing = True
            return False
        if self._failing:
            log.info("notifying systemd works again")
        self._failing = False
        return True

    def close(self) -> None:
        """Close the socket."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None


@dataclass
class DeadmanState:
    """What the dead-man's switch did."""

    pings: int = 0  # successful pings
    failures: int = 0  # consecutive failed pings (0 after a success)
    last_ok_at: datetime | None = None
    last_error: str | None = None  # redacted; kept after a success, for the record
    last_error_at: datetime | None = None
    fail_sent: bool = False  # the /fail signal went out as the daemon died


@dataclass
class SelfWatch:
    """The self-watch of one daemon: what it sent and why it held back."""

    daemon: Daemon
    notify: SdNotify
    watchdog_every: float | None
    watchdog_pings: int = 0
    status_sent: str = ""
    ready_sent: bool = False
    stopping_sent: bool = False
    problem: str | None = None  # why pings are withheld right now
    max_loop_lag: float = 0.0  # seconds the event loop was late for a watchdog tick, at most
    deadman: DeadmanState = field(default_factory=DeadmanState)
    _status_at: float = field(default=-math.inf, init=False, repr=False)
    _client: httpx.AsyncClient | None = field(default=None, init=False, repr=False)
    _ticked: anyio.Event = field(default_factory=anyio.Event, init=False, repr=False)

    def check_health(self) -> bool:
        """True when pings may go out; logs each change of verdict once."""
        problem = health_problem(self.daemon, time.monotonic())
        if problem != self.problem:
            if problem:
                log.error("self-watch: daemon unhealthy (%s); withholding the watchdog and "
                          "dead-man's pings", problem)
            else:
                log.info("self-watch: daemon healthy again; pings resume")
            self.problem = problem
        return problem is None

    # ---- systemd -------------------------------------------------------------------------

    def _status_now(self) -> str:
        d = self.daemon
        if d.shutdown_reason is not None:
            left = sum(1 for job in d.jobs.values() if job.run is not None)
            reason = " ".join(d.shutdown_reason.split())
            return f"stopping ({reason}); {left} run{'' if left == 1 else 's'} left"
        return status_line(d.jobs.values(), len(d.alerts.active))

    def _send_status(self, *extra: str) -> bool:
        line = self._status_now()
        if not self.notify.send(*extra, f"STATUS={line}"):
            return False
        self.status_sent, self._status_at = line, anyio.current_time()
        return True

    async def _systemd_loop(self) -> None:
        d = self.daemon
        every = self.watchdog_every
        next_ping = anyio.current_time()
        while True:
            now = anyio.current_time()
            if not self.ready_sent:  # retried (every second at least) until systemd has it
                self.ready_sent = self._send_status("READY=1")
            if every is not None and now >= next_ping:
                self.max_loop_lag = max(self.max_loop_lag, now - next_ping)
                if self.check_health() and self.notify.send("WATCHDOG=1"):
                    self.watchdog_pings += 1
                next_ping = next_slot(next_ping, every, now)
            if d.shutdown_reason is not None and not self.stopping_sent:
                self.stopping_sent = True
                self._send_status("STOPPING=1")
            status_due = None
            if self._status_now() != self.status_sent:
                status_due = max(now, self._status_at + STATUS_EVERY)
                if status_due <= now:
                    self._send_status()
                    status_due = None
            wake_at = min(next_ping if every is not None else math.inf,
                          status_due if status_due is not None else math.inf,
                          now + 1.0 if not self.ready_sent else math.inf)
            if status_due is not None:  # an update is already pending: just wait for its turn
                await anyio.sleep_until(wake_at)
                continue
            seen = d.changes
            with anyio.move_on_after(wake_at - now):
                await d.wait_until(lambda: d.changes != seen or (
                    d.shutdown_reason is not None and not self.stopping_sent), math.inf)

    # ---- the dead-man's switch -----------------------------------------------------------

    def _url(self) -> tuple[str | None, str | None]:
        """(the expanded deadman_url, None) or (None, why it cannot be used); (None, None)
        when none is configured."""
        secret = self.daemon.config.supervisor.deadman_url
        if secret is None:
            return None, None
        raw = secret.get_secret_value()
        register_secret(raw, url=True)
        try:
            url = expand_env({"v": raw}, os.environ)["v"]
        except EnvError as exc:
            return None, f"deadman_url: ${{{exc.var}}} is not set in the daemon's environment"
        register_secret(url, url=True)
        return url, None

    async def _request(self, url: str, timeout: float, fail_body: str | None = None) -> str | None:
        """One ping (a POST to <url>/fail with `fail_body`); the error (redacted) or None."""
        import httpx  # lazily, like the webhook notifier: most daemons have no switch

        if self._client is None:
            install_log_filter()  # httpx logs each request's URL
            self._client = httpx.AsyncClient(headers={"User-Agent": "proofwatch"})
        try:
            with anyio.fail_after(timeout):  # httpx's timeouts are per phase, not in total
                if fail_body is None:
                    response = await self._client.get(url, timeout=timeout)
                else:
                    response = await self._client.post(signal_url(url, "fail"), timeout=timeout,
                                                       content=fail_body.encode())
        except (TimeoutError, httpx.TimeoutException):
            return f"no complete answer within {format_duration(timeout)}"
        except Exception as exc:  # any failure is reported, none may reach the daemon
            return redact(f"{type(exc).__name__}: {exc}".strip())
        if not response.is_success:
            return f"HTTP {response.status_code} {response.reason_phrase}"
        return None

    def _record(self, error: str | None, every: float) -> None:
        state, now = self.deadman, self.daemon.clock.now()
        if error is None:
            if state.failures:
                log.info("dead-man's switch: ping ok again after %d failed", state.failures)
            state.pings, state.failures, state.last_ok_at = state.pings + 1, 0, now
            return
        if not state.failures:
            log.warning("dead-man's switch: ping failed: %s; retrying every %s (logged once "
                        "until a ping succeeds)", error, format_duration(every))
        else:
            log.debug("dead-man's switch: ping failed again (%d in a row): %s", state.failures + 1, error)
        state.failures += 1
        state.last_error, state.last_error_at = error, now

    async def _deadman_loop(self) -> None:
        next_at = anyio.current_time()
        while True:
            await anyio.sleep_until(next_at)
            every = self.daemon.config.supervisor.deadman_every  # follows config reloads
            try:
                url, error = self._url()
                if url is not None and self.check_health():
                    error = await self._request(url, min(DEADMAN_TIMEOUT, every))
                    self._record(error, every)
                elif error is not None:
                    self._record(error, every)
            except Exception:
                log.exception("dead-man's switch: ping crashed; next try in %s", format_duration(every))
            self._ticked.set()
            self._ticked = anyio.Event()
            next_at = next_slot(next_at, every, anyio.current_time())

    async def next_deadman_tick(self) -> None:
        """Wait until the dead-man's switch has had its next turn (pinged, failed or skipped)."""
        await self._ticked.wait()

    async def _send_fail(self) -> None:
        """The daemon is dying without a shutdown request: tell the switch now."""
        url, _ = self._url()
        if url is None:
            return
        d = self.daemon
        body = (f"proofwatch on {d.hostname} (pid {os.getpid()}) is stopping without a shutdown "
                "request: it crashed; see its log (journalctl -u proofwatch)")
        error = await self._request(url, min(FAIL_TIMEOUT, d.config.supervisor.deadman_every), body)
        self.deadman.fail_sent = error is None
        if error is not None:
            log.warning("dead-man's switch: the /fail signal was not delivered: %s", error)

    async def serve(self) -> None:
        """Notify systemd and ping the switch until cancelled; then STOPPING=1 (and /fail on
        a crash)."""
        try:
            async with anyio.create_task_group() as tg:
                if self.notify.address is not None:
                    tg.start_soon(self._systemd_loop)
                tg.start_soon(self._deadman_loop)
        finally:
            crashed = self.daemon.shutdown_reason is None
            if not self.stopping_sent:
                self.stopping_sent = True
                self._send_status("STOPPING=1")
            self.notify.close()
            with anyio.CancelScope(shield=True):
                if crashed:
                    await self._send_fail()
                if self._client is not None:
                    with anyio.move_on_after(1.0):
                        await self._client.aclose()


async def serve(daemon: Daemon) -> None:
    """Run the self-watch of `daemon` (in its task group) until cancelled."""
    await daemon.ready.wait()
    address, every = take_systemd_env(os.environ, os.getpid())
    watch = _watches[daemon] = SelfWatch(daemon, SdNotify(address), every)
    if every is not None:
        log.info("systemd watchdog: pinging every %s while healthy", format_duration(every))
    await watch.serve()
