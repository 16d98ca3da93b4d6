"""The BloFin market-data ingestor (`python -m workers.ingestor`), a proofwatch `service` job.

May import: workers.sdk, workers.protocol, and third-party pyarrow, anyio, httpx, tenacity,
websockets. Never supervisor/ or status/ (a job runs standalone), never pandas.

    __main__   CLI: arguments -> Settings, exit codes
    config     Settings (validated once, frozen) and the live BloFin endpoints
    errors     the exception tree
    service    the root task group: stream loop, writer loop, REST loop, signals
    ws         WebSocket: paced connects with backoff, subscriptions, text ping/pong keepalive
    rest       REST: rate limiter, 429/backoff, trades, paged candles, instruments
    recovery   the REST loop: instrument check, gap recovery, 1m bar backfill
    messages   parsing and validation of every message (malformed -> counted, skipped)
    ingest     de-dup and buffering (no I/O)
    dedup      bounded trade-id and bar windows
    gaps       pending gaps, their resolution, bar completeness
    store      Parquet parts (schemas, atomic writes)
    compact    merging parts, crash reconciliation
    manifest   data/ticks/manifest.json (the proof)
    resume     start-up: lock, reconcile, restore de-dup state
    writer     flushes: parts -> compaction -> manifest -> unlink
    report     heartbeats
    atomic     temp + fsync + rename
"""

from workers.ingestor.config import LIVE_REST_URL, LIVE_WS_URL, REQUIRED_KEYS, Settings

__all__ = ["LIVE_REST_URL", "LIVE_WS_URL", "REQUIRED_KEYS", "Settings"]
