"""python -m workers.sandbox: serve the sandbox feeds (a proofwatch service job)."""

from __future__ import annotations

import argparse
import logging
import sys

from workers.sandbox._context import DEFAULT_INSTRUMENTS, Settings
from workers.sandbox.errors import SandboxError
from workers.sandbox.server import check_host, serve
from workers.sdk import Run


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m workers.sandbox",
        description="Offline imitation of BloFin's public market data (REST + WebSocket), "
                    "seeded and deterministic. Loopback only unless --allow-remote.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8790)
    p.add_argument("--allow-remote", action="store_true",
                   help="allow a non-loopback --host")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--rate", type=float, default=50.0,
                   help="mean trades per second per instrument (default 50)")
    p.add_argument("--instruments", default=",".join(DEFAULT_INSTRUMENTS),
                   help="comma-separated instIds (default %(default)s)")
    p.add_argument("--chaos", type=float, default=0.0,
                   help="per-connection, per-second probability of an abrupt server-side "
                        "WS drop, 0.0..1.0 (0.005 ~ one drop every 3 minutes; default 0)")
    p.add_argument("--batch", type=int, default=1,
                   help="max trades per WS push (BloFin sends 1; >1 for benches)")
    p.add_argument("--conn-per-sec", type=float, default=1.0,
                   help="new WS connections per second per IP (BloFin: 1; <=0 unlimited)")
    p.add_argument("--rest-per-min", type=int, default=500,
                   help="REST requests per minute per IP (BloFin: 500; <=0 unlimited)")
    p.add_argument("--idle-timeout", type=float, default=30.0,
                   help="close a WS with no subscription after this many seconds")
    p.add_argument("--candle-interval", type=float, default=1.0,
                   help="seconds between candle pushes of a forming bar (BloFin: 1)")
    p.add_argument("--history-minutes", type=int, default=None,
                   help="market history before now (default: up to 7 days)")
    p.add_argument("--start-ms", type=int, default=None,
                   help="market start, epoch ms (default: now - history); fix it to "
                        "reproduce the exact same trades across runs")
    p.add_argument("--log-level", default="info")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = Settings(
            seed=args.seed, rate=args.rate,
            instruments=tuple(i.strip() for i in args.instruments.split(",") if i.strip()),
            chaos=args.chaos, batch=args.batch, conn_per_sec=args.conn_per_sec,
            rest_per_min=args.rest_per_min, idle_timeout=args.idle_timeout,
            candle_interval=args.candle_interval, history_minutes=args.history_minutes,
            start_ms=args.start_ms)
        check_host(args.host, args.allow_remote)
        serve(settings, args.host, args.port, allow_remote=args.allow_remote,
              run=Run.from_env())
    except SandboxError as exc:
        print(f"sandbox: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
