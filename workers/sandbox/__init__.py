"""Sandbox feeds: an offline, seeded, byte-compatible imitation of BloFin's PUBLIC market
data (REST + WebSocket) on 127.0.0.1, so the ingestor runs and is tested without a network
and tests know the ground truth. A proofwatch `service` job. Imports: starlette, uvicorn,
pyarrow, workers.sdk; never supervisor/ or status/.

Layout: ONE starlette app (`app.py`) assembled from feed modules, each `feed(ctx) -> Feed`
(routes + services): `blofin.py` (+ `_blofin_ws.py`), `sportsbook.py` (one book's web page of
the odds events, for the emulator builder's OCR), `odds.py` (The Odds API v4 over the same
events: `/v4/sports`, `/v4/sports/{sport}/odds` with quota headers and the documented error
bodies; planted arbitrage truth at the loopback-only `/_sandbox/odds/truth`); `_control.py` adds the loopback-only /_sandbox/ routes. `market.py` (trades) and
`odds_model.py` (sports events and every bookmaker's prices, seeded) are the pure models.

THE CONTRACT
1. CLI: python -m workers.sandbox [--host 127.0.0.1] [--port 8790] [--seed 7] [--rate 50]
   [--instruments BTC-USDT,ETH-USDT,SHIB-USDT] [--chaos 0.0] [--batch 1] [--conn-per-sec 1]
   [--rest-per-min 500] [--idle-timeout 30] [--candle-interval 1] [--history-minutes N]
   [--start-ms MS] [--allow-remote] [--log-level info]. A non-loopback --host exits 2
   unless --allow-remote; bad settings exit 2 naming the knob. --rate: mean trades/s per
   instrument. --chaos: per connection and per second, the probability of an abrupt
   server-side WS drop (seeded; 0.005 ~ one drop per connection every ~3 min; 0 disables).
   --batch: max trades per WS push (BloFin: 1). Heartbeats under proofwatch from the push
   loop: progress {"requests": n, "trades_served": m}, phase "serving".
2. Market (market.py, pure): Market(seed, instruments, start_ms, rate); start_ms is rounded
   down to a minute. trades_between(inst, a, b) -> [Trade] with a <= ts < b, oldest first
   (ground truth); trades_upto(inst, now_ms, limit) -> the last `limit` with ts <= now_ms,
   newest first; candles(inst, bar="1m", *, now_ms, after=None, before=None, limit=500) ->
   [Candle] newest first (bars without trades are omitted; confirm True once now_ms >= bar
   end); candle_at(inst, bar, ts, now_ms); aggregate(inst, a, b). Trade(trade_id, inst,
   price, size, side, ts).to_blofin(); Candle(...).to_blofin() -> 9 strings. tradeIds are
   consecutive integers (as 10-digit strings) per instrument, so a gap shows as a jump;
   ts (ms) non-decreasing.
   Prices: BTC ~60k tick 0.1, ETH ~3k tick 0.01, SHIB ~0.00002 tick 0.00000001; size in
   contracts (integers; contractValue BTC 0.001, ETH 0.01, SHIB 100000); regimes of trend
   and chop, GARCH-like volatility clusters, bursts of hundreds of trades a second.
3. REST (BloFin shapes: {"code":"0","msg":"success","data":[...]}, strings, newest first):
   GET /api/v1/market/instruments[?instId=], /trades?instId=&limit= (max 100, default 100;
   trades with ts <= now), /candles?instId=&bar=&after=&before=&limit= (bars 1m 3m 5m 15m
   30m 1H 2H 4H 6H 8H 12H 1D, UTC-aligned; limit max 1440 (larger is clamped), default 500;
   after: ts < after; before: ts > before; the forming bar has confirm "0"),
   /tickers[?instId=]. Errors are HTTP 200: unknown instId -> {"code":"152014","msg":
   "Instrument ID does not exist"}; a bad or missing parameter X -> {"code":"152002",
   "msg":"Parameter X error."}. Rate limit: over --rest-per-min requests in any 60 s per IP
   -> HTTP 429 {"code":"429","msg":"Too Many Requests"}.
4. WebSocket /ws/public: {"op":"subscribe"|"unsubscribe","args":[{"channel":"trades"|
   "candle<bar>","instId":..}]} -> one {"event":"subscribe"|"unsubscribe","arg":{..}} per
   arg; any invalid arg (unknown channel/instId, bad JSON/op) -> {"event":"error","code":
   "60012","msg":"Invalid request: ..."} and nothing of that request is applied; the
   connection stays open. Pushes {"arg":{"channel":"trades","instId":..},"data":[trade,..]}
   in real time, in order, from the moment of subscription (no history); candle<bar>:
   {"arg":..,"data":[[9 strings]]} every --candle-interval (1 s) with confirm "0" for the
   forming bar, plus one confirm "1" push for a bar when it closes. Plain-text "ping" ->
   plain-text "pong". A connection with no subscription for --idle-timeout (30 s) is closed
   (close frame 1000). New connections over --conn-per-sec per IP are refused at the
   handshake with HTTP 429 {"code":"429","msg":"Too Many Requests"} (token bucket, burst
   max(1, rate); running_sandbox defaults to unlimited). No WS protocol-level pings are sent.
5. Faults (sb.faults, or POST /_sandbox/faults {"fault": "drop" | "stall", "seconds": s |
   "malformed", "n": n | "error", "path", "code", "msg", "times" | "rate_limit", "times" |
   "clear"}; a JSON list applies several): drop() closes every WS without a close frame;
   stall(s) keeps sockets open and, for s seconds, pushes nothing, reads nothing and so
   answers no ping, text or protocol (pings sent meanwhile are answered after it);
   malformed(n): the next n data pushes are, in turn, truncated JSON, numbers instead of
   strings, trades without tradeId/price (candle rows cut to 5 columns); error(path, code,
   msg, times=1); rate_limit(times); clear() cancels what is pending. GET
   /_sandbox/served?instId= -> {"instId","count","tradeIds"}: ids pushed (validly) over WS
   so far, any connection, ascending; GET /_sandbox/state -> counters, settings, pending
   faults. /_sandbox/ answers loopback clients only (else 403). Trades due while stalled,
   while nobody is subscribed, or carried by a malformed push are never pushed later.
6. from workers.sandbox.server import running_sandbox: `with running_sandbox(seed=7,
   rate=200.0, instruments=["BTC-USDT"], port=0, chaos=0.0, batch=1, conn_per_sec=0.0,
   rest_per_min=500, idle_timeout=30.0, history_minutes=60, start_ms=None,
   candle_interval=1.0, clock=wall_clock_ms, run=None) as sb:` (all but the first three
   keyword-only; conn_per_sec 0 = unlimited) serves uvicorn in a background thread and
   returns once its startup is over and it listens; sb.http_url ("http://127.0.0.1:PORT"),
   sb.ws_url (".../ws/public"), sb.market, sb.faults, sb.served(inst) -> [tradeId],
   sb.now_ms() (the sandbox clock; `clock` may be a faster fake), sb.state(). Exiting
   stops the server (open WS get close 1012) and joins its thread.
7. Sportsbook (sportsbook.py): GET /sportsbook (lobby), /sportsbook/{sport_key} (HTML: boost
   cards, then each event's moneyline; American for NBA/NHL/NFL, decimal for EPL with a Draw,
   fractional for MMA; names in the book's varied styles), GET /_sandbox/sportsbook/truth
   [?sport=] (loopback only): what each page shows, canonical names, exact prices. Events come
   from OddsModel(seed, anchor = start of the current UTC day): the same all day for a seed.
8. python -m workers.sandbox.bench [--rate 60000] [--batch 100]: the push-rate bench.
"""

from __future__ import annotations

from workers.sandbox._bars import Candle
from workers.sandbox._context import Settings
from workers.sandbox.errors import (
    BadParameter,
    RemoteHostRefused,
    SandboxError,
    SandboxStartError,
    UnknownInstrument,
)
from workers.sandbox.faults import Faults
from workers.sandbox.market import Market, Trade
from workers.sandbox.server import SandboxHandle, running_sandbox

__all__ = [
    "BadParameter",
    "Candle",
    "Faults",
    "Market",
    "RemoteHostRefused",
    "SandboxError",
    "SandboxHandle",
    "SandboxStartError",
    "Settings",
    "Trade",
    "UnknownInstrument",
    "running_sandbox",
]
