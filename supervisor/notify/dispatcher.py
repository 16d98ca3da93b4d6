"""The notification dispatcher: decide (policies.alerting), persist (the outbox), deliver.

    update(alerts) -> plan_notifications -> outbox rows + policy state, ONE transaction
                   -> wake the sink tasks -> each sends its due rows and records every attempt

Delivery is at-least-once. Each sink has its own task, so a slow or dead sink delays only
itself; every attempt is bounded by the sink's `timeout`. A row is tried in rounds: up to
`RetryPolicy.attempts` tries with jittered exponential waits (tenacity), then, if all failed,
it is rescheduled (`next_attempt_at`) with a longer jittered backoff, so later rows are not
held behind it. Rows are never dropped. At start every undelivered row is made due again, so
what a stopped daemon left behind goes out first. Payloads carry a stable `id` (also the
`X-Proofwatch-Delivery` header) for receivers to drop the rare duplicate.

All log lines go through `redact`; sink URLs and secrets are registered with it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import logging
import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Protocol

import anyio
import anyio.to_thread
from anyio.abc import TaskStatus
from pydantic import ValidationError

from policies.alerting import (AlertView, Notification, NotifySettings, NotifyState, Plan, Silence,
                               SinkRule, active_silences, plan_notifications, silence, unsilence)
from status.models import Severity
from status.outbox import Outbox, OutboxRow
from supervisor.config import AlertSink, AlertsSettings
from supervisor.notify._message import to_payload
from supervisor.notify._redact import install_log_filter, redact
from supervisor.notify._senders import Sender, make_sender
from supervisor.notify.errors import DeliveryError

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)


class Clock(Protocol):
    """Where "now" comes from (the daemon's clock)."""

    def now(self) -> datetime: ...


class _UTC:
    def now(self) -> datetime:
        return datetime.now(timezone.utc)


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try (seconds)."""

    attempts: int = 4  # tries per round
    initial: float = 1.0  # first wait within a round; doubles, jittered
    max_wait: float = 30.0  # longest wait within a round
    round_max: float = 600.0  # longest wait between rounds (and after a permanent error)
    keep_delivered: float = 30 * 86_400.0  # delivered rows older than this are pruned at start

    def round_delay(self, attempts: int, permanent: bool, rng: random.Random) -> float:
        """The jittered wait before the next round, after `attempts` tries in all."""
        if permanent:
            return self.round_max
        rounds = max(1, math.ceil(attempts / max(1, self.attempts)))
        base = min(self.round_max, self.max_wait * 2.0 ** min(rounds - 1, 20))
        return base * rng.uniform(0.5, 1.0)


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, DeliveryError) and not exc.permanent


class Dispatcher:
    """Plans notifications, writes them to the outbox, and delivers them per sink."""

    def __init__(
        self,
        sinks_config: AlertsSettings | Sequence[AlertSink],
        history: Any,
        clock: Clock | None = None,
        *,
        base_dir: Path | None = None,
        retry: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        settings = (sinks_config if isinstance(sinks_config, AlertsSettings)
                    else AlertsSettings(sinks=list(sinks_config)))
        engine = getattr(history, "engine", history)  # a history, its engine, or the outbox's file
        install_log_filter()
        self.settings = NotifySettings(repeat_every=settings.repeat_every,
                                       escalate_after=settings.escalate_after,
                                       group_wait=settings.group_wait)
        self.rules = [SinkRule(name=s.name, min_severity=Severity(s.min_severity), jobs=tuple(s.jobs))
                      for s in settings.sinks]
        self._senders: dict[str, Sender] = {
            s.name: make_sender(s, base_dir, transport) for s in settings.sinks}
        self._outbox = Outbox(engine)
        self._clock = clock or _UTC()
        self._retry = retry or RetryPolicy()
        self._rng = random.Random()
        self._state = NotifyState()
        self._depth = 0
        self._loaded = False
        self._load_lock = anyio.Lock()
        self._plan_lock = anyio.Lock()
        self._wakes = {name: anyio.Event() for name in self._senders}

    # ---- the daemon's side ------------------------------------------------------------------

    @property
    def state(self) -> NotifyState:
        """The policy state as last persisted."""
        return self._state

    def depth(self) -> int:
        """Notifications written to the outbox and not delivered yet (configured sinks)."""
        return self._depth

    def silences(self, now: datetime | None = None) -> tuple[Silence, ...]:
        """Silences in force."""
        return active_silences(self._state, now or self._clock.now())

    async def update(self, alerts: Sequence[AlertView], now: datetime | None = None) -> datetime | None:
        """Plan for the current alerts, persist the plan, wake the senders; return next_due.

        Call it whenever alerts change and again at the returned time. On a store error the
        decision is not kept (it is made again next time) and a retry time 5 s ahead is returned.
        """
        async with self._plan_lock:
            now = now or self._clock.now()
            try:
                await self._load()
                plan: Plan = plan_notifications(alerts, self.rules, self._state, now, self.settings)
                for key, event in plan.suppressed:
                    log.info("alert %s: %s notification silenced", key, event)
                if plan.notifications or plan.state != self._state:
                    await self.enqueue(plan.notifications, plan.state)
            except Exception as exc:  # the supervisor's loop must go on; decide again soon
                log.error("notify: update failed (%s); deciding again in 5s", redact(exc),
                          exc_info=True)
                return now + timedelta(seconds=5)
            return plan.next_due

    async def silence(self, target: str, seconds: float, *, reason: str = "",
                      now: datetime | None = None) -> Silence:
        """Mute notifications of a job or an alert key for `seconds` (persisted, expires itself)."""
        await self._load()
        async with self._plan_lock:
            now = now or self._clock.now()
            state = silence(self._state, target, seconds, now, reason)
            await self.enqueue([], state)
        made = next(s for s in state.silences if s.target == target)
        log.info("notifications of %s silenced until %s%s", target, made.until.isoformat(),
                 f" ({redact(reason)})" if reason else "")
        return made

    async def unsilence(self, target: str) -> bool:
        """Lift a silence early; True when there was one."""
        await self._load()
        async with self._plan_lock:
            if not any(s.target == target for s in self._state.silences):
                return False
            await self.enqueue([], unsilence(self._state, target))
        log.info("notifications of %s no longer silenced", target)
        return True

    async def enqueue(
        self, notifications: Sequence[Notification], state: NotifyState | None = None
    ) -> int:
        """Write notifications (and the policy state, if given) to the outbox in one
        transaction, then wake their senders; return how many rows were written."""
        await self._load()
        now = self._clock.now()
        rows: list[OutboxRow] = []
        for note in notifications:
            if note.sink not in self._senders:
                log.warning("notification %s for unknown sink %s dropped", note.id, note.sink)
                continue
            rows.append(OutboxRow(created_at=now, sink=note.sink, payload=to_payload(note),
                                  next_attempt_at=now))
        dumped = state.model_dump(mode="json") if state is not None else None
        if rows or dumped is not None:
            await anyio.to_thread.run_sync(self._outbox.add, rows, dumped, now)
        if state is not None:
            self._state = state
        self._depth += len(rows)
        for row in rows:
            log.info("notification %s -> %s queued: %s", row.payload["id"], row.sink,
                     redact(row.payload["title"]))
            self._wakes[row.sink].set()
        return len(rows)

    # ---- delivery ---------------------------------------------------------------------------

    async def serve(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Deliver until cancelled: one task per sink, undelivered rows of earlier runs first."""
        await self._load()
        try:
            async with anyio.create_task_group() as tg:
                for name in self._senders:
                    tg.start_soon(self._sink_loop, name, name=f"notify:{name}")
                task_status.started()
                await anyio.sleep_forever()  # also with no sinks: serve() ends only when cancelled
        finally:
            with anyio.CancelScope(shield=True):
                for sender in self._senders.values():
                    await sender.aclose()

    async def _load(self) -> None:
        async with self._load_lock:
            if self._loaded:
                return
            names = list(self._senders)

            def load() -> tuple[dict[str, object] | None, int, int]:
                self._outbox.create()
                now = self._clock.now()
                self._outbox.prune(now - timedelta(seconds=self._retry.keep_delivered))
                pending = self._outbox.retry_now(now)
                depth = sum(self._outbox.undelivered_count(name) for name in names)
                return self._outbox.load_state(), pending, depth

            raw, pending, self._depth = await anyio.to_thread.run_sync(load)
            if raw is not None:
                try:
                    self._state = NotifyState.model_validate(raw)
                except ValidationError:
                    log.warning("notify: the saved notification state is unreadable; starting afresh")
            if pending:
                log.info("notify: %d undelivered notifications from before; sending them now", pending)
            if pending > self._depth:
                log.warning("notify: %d undelivered notifications belong to sinks no longer "
                            "configured", pending - self._depth)
            self._loaded = True

    async def _sink_loop(self, name: str) -> None:
        sender = self._senders[name]
        while True:
            wake = self._wakes[name] = anyio.Event()
            due_at: datetime | None
            try:
                rows = await anyio.to_thread.run_sync(self._outbox.due, name, self._clock.now())
                for row in rows:
                    await self._deliver(sender, row)
                if rows:
                    continue
                due_at = await anyio.to_thread.run_sync(self._outbox.next_attempt, name)
            except Exception as exc:
                log.error("notify sink %s: outbox error (%s); retrying in 5s", name, redact(exc))
                due_at = self._clock.now() + timedelta(seconds=5)
            delay = math.inf if due_at is None else (due_at - self._clock.now()).total_seconds()
            if delay > 0:
                with anyio.move_on_after(delay):
                    await wake.wait()

    async def _deliver(self, sender: Sender, row: OutboxRow) -> None:
        # loaded with the first notification: a daemon that sends none never pays for it
        from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_random_exponential

        assert row.id is not None
        attempts = row.attempts
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._retry.attempts),
            wait=wait_random_exponential(multiplier=self._retry.initial, max=self._retry.max_wait),
            retry=retry_if_exception(_retryable), sleep=anyio.sleep, reraise=True)
        try:
            async for attempt in retrying:
                with attempt:
                    attempts += 1
                    await self._attempt(sender, row, attempts)
        except DeliveryError as exc:
            delay = self._retry.round_delay(attempts, exc.permanent, self._rng)
            await anyio.to_thread.run_sync(self._outbox.reschedule, row.id,
                                           self._clock.now() + timedelta(seconds=delay))
            log.warning("notification %s -> %s: %d attempts failed%s; next round in %.1fs",
                        row.payload.get("id"), sender.name, attempts,
                        " (permanent error)" if exc.permanent else "", delay)

    async def _attempt(self, sender: Sender, row: OutboxRow, number: int) -> None:
        assert row.id is not None
        started = time.monotonic()
        error: DeliveryError | None = None
        try:
            with anyio.fail_after(sender.timeout + 1.0):
                await sender.send(row.payload)
        except DeliveryError as exc:
            error = exc
        except TimeoutError:
            error = DeliveryError(f"timed out after {sender.timeout:g}s")
        except Exception as exc:  # an unexpected library error must not end the sink's task
            error = DeliveryError(f"{type(exc).__name__}: {exc}")
        elapsed_ms = (time.monotonic() - started) * 1000
        text = redact(error) if error is not None else None
        await anyio.to_thread.run_sync(
            lambda: self._outbox.record(row.id or 0, now=self._clock.now(), duration_ms=elapsed_ms,
                                        error=text))
        note_id = row.payload.get("id")
        if error is not None:
            log.warning("notification %s -> %s: attempt %d failed after %.0f ms: %s",
                        note_id, sender.name, number, elapsed_ms, text)
            raise error
        self._depth = max(0, self._depth - 1)
        log.info("notification %s -> %s delivered (attempt %d, %.0f ms)", note_id, sender.name,
                 number, elapsed_ms)
