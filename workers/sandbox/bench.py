"""Push-rate bench: how many trades/s one WS client receives from a sandbox process.

    python -m workers.sandbox.bench [--rate 60000] [--batch 100] [--seconds 10]

Starts `python -m workers.sandbox` in a subprocess (so server and client do not share a
GIL), subscribes to the trades of one instrument, counts what arrives and checks that the
tradeIds are contiguous (no gap: the server kept up).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import subprocess
import sys
import time

from websockets.asyncio.client import connect


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _measure(url: str, inst: str, seconds: float) -> tuple[int, float, int]:
    async with connect(url, max_size=None) as ws:
        await ws.send(json.dumps({"op": "subscribe",
                                  "args": [{"channel": "trades", "instId": inst}]}))
        await ws.recv()  # the ack
        n, gaps, last = 0, 0, None
        t0 = time.perf_counter()
        while (elapsed := time.perf_counter() - t0) < seconds:
            data = json.loads(await ws.recv())["data"]
            for trade in data:
                tid = int(trade["tradeId"])
                if last is not None and tid != last + 1:
                    gaps += 1
                last = tid
            n += len(data)
        return n, elapsed, gaps


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m workers.sandbox.bench")
    p.add_argument("--rate", type=float, default=60_000.0)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--seconds", type=float, default=10.0)
    args = p.parse_args(argv)
    port = _free_port()
    cmd = [sys.executable, "-m", "workers.sandbox", "--port", str(port), "--rate",
           str(args.rate), "--batch", str(args.batch), "--instruments", "BTC-USDT",
           "--history-minutes", "1", "--log-level", "warning"]
    server = subprocess.Popen(cmd)
    try:
        for _ in range(200):  # the server's own readiness: its port accepts connections
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
                break
            except OSError:
                time.sleep(0.05)
        n, elapsed, gaps = asyncio.run(
            _measure(f"ws://127.0.0.1:{port}/ws/public", "BTC-USDT", args.seconds))
    finally:
        server.terminate()
        server.wait(10)
    print(f"rate={args.rate:,.0f}/s batch={args.batch}: received {n:,} trades in "
          f"{elapsed:.1f} s = {n / elapsed:,.0f} trades/s, gaps={gaps}")
    return 0 if gaps == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
