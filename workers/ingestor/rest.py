"""BloFin public REST (api-reference A.3, A.4): trades, paged 1-minute candles, instruments.

Every request waits its turn in a RateLimiter (5 req/s sustained by default; BloFin allows
500/min and 1500/5 min per IP). HTTP 429 holds the limiter for Retry-After (or an exponential
backoff) and the request is retried; network errors and 5xx are retried the same way (tenacity).
Error envelopes (HTTP 200 with code != "0"), 401/403 bans and other 4xx are raised as
ExchangeError carrying the exchange's own words, for the caller to decide.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

import anyio
import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from workers.ingestor.errors import ExchangeError, MalformedMessage, RateLimited
from workers.ingestor.messages import BAR_MS, Candle, Trade, parse_candle, parse_envelope, parse_trade

log = logging.getLogger(__name__)

TRADES_PATH = "/api/v1/market/trades"
CANDLES_PATH = "/api/v1/market/candles"
INSTRUMENTS_PATH = "/api/v1/market/instruments"
TRADES_LIMIT = 100
CANDLES_LIMIT = 1440


class RateLimiter:
    """Spaces requests at least 1/rate seconds apart; `hold` pushes the next slot back."""

    def __init__(self, rate: float, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = anyio.sleep) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be > 0 requests/s, got {rate}")
        self.interval = 1.0 / rate
        self._clock = clock
        self._sleep = sleep
        self._next = float("-inf")

    async def acquire(self) -> None:
        now = self._clock()
        slot = max(now, self._next)
        self._next = slot + self.interval
        if slot > now:
            await self._sleep(slot - now)

    def hold(self, seconds: float) -> None:
        self._next = max(self._next, self._clock() + seconds)


def transient(exc: BaseException) -> bool:
    """Worth retrying within seconds: 429, network errors, 5xx (banned/4xx/permanent are not)."""
    if isinstance(exc, RateLimited):
        return True
    if isinstance(exc, ExchangeError):
        return exc.http_status == 0 or exc.http_status >= 500 or exc.code in ("500", "503")
    return False


_backoff = wait_exponential_jitter(multiplier=0.5, max=30.0, jitter=0.5)


def _wait(state: RetryCallState) -> float:
    exc = state.outcome.exception() if state.outcome else None
    if isinstance(exc, RateLimited) and exc.retry_after is not None:
        return max(exc.retry_after, 0.0)
    return float(_backoff(state))


def _retry_after(resp: httpx.Response) -> float | None:
    value = resp.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class RestClient:
    """The public REST endpoints, rate limited and retried."""

    def __init__(self, base_url: str, *, rate: float = 5.0, timeout: float = 10.0,
                 attempts: int = 5, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.limiter = RateLimiter(rate)
        self.attempts = attempts
        self.requests = 0
        self.rate_limited = 0
        self.http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout, transport=transport,
                                      headers={"User-Agent": "proofwatch-ingestor/0.1"})

    async def aclose(self) -> None:
        await self.http.aclose()

    async def get(self, path: str, params: dict[str, str]) -> Any:
        """The `data` of a successful envelope; retries what is transient, raises the rest."""
        retrying = AsyncRetrying(retry=retry_if_exception(transient), wait=_wait,
                                 stop=stop_after_attempt(self.attempts), sleep=anyio.sleep,
                                 reraise=True, before_sleep=self._log_retry)
        async for attempt in retrying:
            with attempt:
                return await self._get_once(path, params)
        raise AssertionError("unreachable: tenacity reraises")  # pragma: no cover

    @staticmethod
    def _log_retry(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        log.warning("REST retry %d after: %s", state.attempt_number, exc)

    async def _get_once(self, path: str, params: dict[str, str]) -> Any:
        await self.limiter.acquire()
        where = f"{self.base_url}{path}?{urlencode(params)}"
        self.requests += 1
        try:
            resp = await self.http.get(path, params=params)
        except httpx.HTTPError as exc:
            raise ExchangeError(where, http_status=0, code="network",
                                msg=f"{type(exc).__name__}: {exc}".rstrip(": ")) from exc
        try:
            body: Any = resp.json()
        except ValueError:
            body = None
        code, msg = "", ""
        if isinstance(body, dict):
            code, msg, _ = parse_envelope(body, where)
        if resp.status_code == 429:
            self.rate_limited += 1
            retry_after = _retry_after(resp)
            self.limiter.hold(retry_after if retry_after is not None else 1.0)
            raise RateLimited(where, msg=msg or "Too Many Requests", retry_after=retry_after)
        if resp.status_code != 200:
            text = msg or resp.text[:200].strip() or resp.reason_phrase
            raise ExchangeError(where, http_status=resp.status_code, code=code or str(resp.status_code),
                                msg=text)
        if not isinstance(body, dict):
            raise ExchangeError(where, http_status=200, code="malformed",
                                msg=f"body is not a JSON object: {resp.text[:120]!r}")
        if code != "0":
            raise ExchangeError(where, http_status=200, code=code or "missing", msg=msg)
        return body.get("data")

    async def trades(self, inst: str, limit: int = TRADES_LIMIT) -> tuple[list[Trade], list[str]]:
        """The last `limit` (<= 100) trades, newest first, and the problems of skipped rows."""
        data = await self.get(TRADES_PATH, {"instId": inst, "limit": str(min(limit, TRADES_LIMIT))})
        trades, problems = [], []
        for obj in data if isinstance(data, list) else []:
            try:
                trades.append(parse_trade(obj, inst))
            except MalformedMessage as exc:
                problems.append(str(exc))
        if not isinstance(data, list):
            problems.append(f"{TRADES_PATH} {inst}: data is not a list")
        return trades, problems

    async def candles(self, inst: str, *, after: int | None = None, before: int | None = None,
                      limit: int = CANDLES_LIMIT) -> tuple[list[Candle], list[str], int]:
        """One page of 1m candles (newest first): (parsed, problems, raw row count)."""
        params = {"instId": inst, "bar": "1m", "limit": str(min(limit, CANDLES_LIMIT))}
        if after is not None:
            params["after"] = str(after)
        if before is not None:
            params["before"] = str(before)
        data = await self.get(CANDLES_PATH, params)
        rows = data if isinstance(data, list) else []
        candles, problems = [], []
        for row in rows:
            try:
                candles.append(parse_candle(row, inst))
            except MalformedMessage as exc:
                problems.append(str(exc))
        if not isinstance(data, list):
            problems.append(f"{CANDLES_PATH} {inst}: data is not a list")
        return candles, problems, len(rows)

    async def candles_range(self, inst: str, lo: int, hi: int) -> tuple[list[Candle], list[str]]:
        """Every 1m bar with lo <= ts <= hi, paging backwards with `after` (newest first)."""
        out: list[Candle] = []
        problems: list[str] = []
        after = hi + BAR_MS  # "after" returns bars older than it: hi included
        while True:
            page, bad, raw = await self.candles(inst, after=after, before=lo - BAR_MS)
            problems.extend(bad)
            out.extend(c for c in page if lo <= c.ts <= hi)
            if raw < CANDLES_LIMIT or not page:
                return out, problems
            oldest = min(c.ts for c in page)
            if oldest <= lo or oldest >= after:
                return out, problems
            after = oldest

    async def instruments(self) -> set[str]:
        """instIds the exchange lists."""
        data = await self.get(INSTRUMENTS_PATH, {})
        return {d["instId"] for d in data or [] if isinstance(d, dict) and isinstance(d.get("instId"), str)}
