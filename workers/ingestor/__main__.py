"""python -m workers.ingestor: the BloFin market-data ingestor (a proofwatch `service` job).

Streams public trades and 1-minute candles over the WebSocket, recovers what REST allows after
any interruption, and writes Parquet under the data dir:

    ticks/inst=<INST>/date=<YYYY-MM-DD>/part-*.parquet       ts, inst, trade_id, price, size, side
    candles_1m/inst=<INST>/date=<YYYY-MM-DD>/part-*.parquet  confirmed bars only
    ticks/manifest.json                                      the proof (counts, files + sha256, gaps)

Offline, against the sandbox (python -m workers.sandbox --port 8790):
    python -m workers.ingestor --ws-url ws://127.0.0.1:8790/ws/public \\
        --rest-url http://127.0.0.1:8790 --instruments BTC-USDT,ETH-USDT
Live BloFin:
    python -m workers.ingestor --ws-url wss://openapi.blofin.com/ws/public \\
        --rest-url https://openapi.blofin.com --instruments BTC-USDT,ETH-USDT

Exit codes: 0 after SIGTERM (pending rows flushed, manifest written), 130 after SIGINT,
2 for a bad command line or data dir, 1 for anything else (the message says what and where).
"""

from __future__ import annotations

import os

# Before pyarrow loads: jemalloc hands freed memory back to the OS; the default (mimalloc)
# keeps ~60-100 MiB more resident after compactions (bench/ingest_ticks.py measures it).
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")

import argparse  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

from workers.ingestor.config import LIVE_REST_URL, LIVE_WS_URL, Settings  # noqa: E402
from workers.ingestor.errors import ConfigError, IngestError  # noqa: E402
from workers.protocol import ENV_DATA_DIR  # noqa: E402

log = logging.getLogger("workers.ingestor")


def parse_args(argv: list[str]) -> argparse.Namespace:
    d = Settings.__dataclass_fields__
    p = argparse.ArgumentParser(
        prog="python -m workers.ingestor",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="BloFin market-data ingestor: WS trades + 1m candles -> Parquet, with REST "
                    "gap recovery and a manifest as proof.",
        epilog=f"Live endpoints: --ws-url {LIVE_WS_URL} --rest-url {LIVE_REST_URL}\n"
               "Sandbox: --ws-url ws://127.0.0.1:8790/ws/public --rest-url http://127.0.0.1:8790")
    p.add_argument("--ws-url", required=True, help=f"public WebSocket (live: {LIVE_WS_URL})")
    p.add_argument("--rest-url", required=True, help=f"REST root (live: {LIVE_REST_URL})")
    p.add_argument("--instruments", required=True, help="comma-separated instIds, e.g. BTC-USDT,ETH-USDT")
    p.add_argument("--data-dir", default=None,
                   help=f"where ticks/ and candles_1m/ go (default ${ENV_DATA_DIR} or ./data)")
    p.add_argument("--flush-rows", type=int, default=d["flush_rows"].default,
                   help="flush when this many rows are pending (default %(default)s)")
    p.add_argument("--flush-seconds", type=float, default=d["flush_seconds"].default,
                   help="flush pending rows at least this often (default %(default)s)")
    p.add_argument("--ping-interval", type=float, default=d["ping_interval"].default,
                   help="send a text ping after this many idle seconds, < 30 (default %(default)s)")
    p.add_argument("--pong-timeout", type=float, default=d["pong_timeout"].default,
                   help="reconnect if nothing answers a ping within this (default %(default)s)")
    p.add_argument("--connect-interval", type=float, default=d["connect_interval"].default,
                   help="min seconds between new WS connections (BloFin: 1/s; default %(default)s)")
    p.add_argument("--max-backoff", type=float, default=d["max_backoff"].default,
                   help="cap of the reconnect backoff, seconds (default %(default)s)")
    p.add_argument("--rest-rate", type=float, default=d["rest_rate"].default,
                   help="REST requests per second, sustained (default %(default)s)")
    p.add_argument("--compact-fanout", type=int, default=d["compact_fanout"].default,
                   help="merge parts of a date when this many share a level (default %(default)s)")
    p.add_argument("--max-file-rows", type=int, default=d["max_file_rows"].default,
                   help="rows at which a part is no longer merged (default %(default)s)")
    p.add_argument("--dedup-window", type=int, default=d["dedup_window"].default,
                   help="trade ids remembered per instrument (default %(default)s)")
    p.add_argument("--candle-grace", type=float, default=d["candle_grace"].default,
                   help="seconds to wait for a bar's confirmation before asking REST "
                        "(default %(default)s)")
    p.add_argument("--history-minutes", type=int, default=d["history_minutes"].default,
                   help="on a first run (empty store), also fetch this many minutes of 1m candles "
                        "before the first live bar over REST (default %(default)s)")
    p.add_argument("--log-level", default="info")
    p.add_argument("--debug", action="store_true", help="tracebacks on errors")
    return p.parse_args(argv)


def settings_from(args: argparse.Namespace) -> Settings:
    data_dir = args.data_dir or os.environ.get(ENV_DATA_DIR) or "data"
    return Settings(
        ws_url=args.ws_url, rest_url=args.rest_url,
        instruments=tuple(i.strip() for i in args.instruments.split(",") if i.strip()),
        data_dir=Path(data_dir).resolve(), flush_rows=args.flush_rows,
        flush_seconds=args.flush_seconds, ping_interval=args.ping_interval,
        pong_timeout=args.pong_timeout, connect_interval=args.connect_interval,
        max_backoff=args.max_backoff, rest_rate=args.rest_rate,
        compact_fanout=args.compact_fanout, max_file_rows=args.max_file_rows,
        dedup_window=args.dedup_window, candle_grace=args.candle_grace,
        history_minutes=args.history_minutes)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise
    try:
        settings = settings_from(args)
        import anyio

        from workers.ingestor.service import Service
        from workers.sdk import Run

        service = Service(settings, Run.from_env())
        return anyio.run(service.run, backend="asyncio")
    except (IngestError, BaseExceptionGroup) as exc:
        err = _ingest_error(exc)
        if err is None or args.debug:
            raise
        print(f"ingestor: {err}", file=sys.stderr)
        return 2 if isinstance(err, ConfigError) else 1
    except KeyboardInterrupt:
        return 130


def _ingest_error(exc: BaseException) -> IngestError | None:
    """The IngestError inside a task group's exception group (or the error itself)."""
    if isinstance(exc, IngestError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _ingest_error(inner)
            if found is not None:
                return found
    return None


if __name__ == "__main__":
    sys.exit(main())
