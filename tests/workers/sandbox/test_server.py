"""workers/sandbox/server.py and the CLI: lifecycle, loopback-only, heartbeats."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import anyio
import httpx
import pytest
from watchfiles import awatch

import workers.sandbox
from workers.protocol import ENV_HEARTBEAT, ENV_JOB, ENV_RUN_DIR, ENV_RUN_ID
from workers.sandbox.errors import RemoteHostRefused
from workers.sandbox.server import running_sandbox

REPO = Path(__file__).resolve().parents[3]


def test_public_names_are_exported_sorted() -> None:
    assert workers.sandbox.__all__ == sorted(workers.sandbox.__all__)
    for name in workers.sandbox.__all__:
        assert getattr(workers.sandbox, name) is not None


def test_running_sandbox_serves_at_once_and_stops_cleanly() -> None:
    threads_before = set(threading.enumerate())
    with running_sandbox(seed=3, history_minutes=1) as sb:
        assert sb.http_url.startswith("http://127.0.0.1:")
        assert sb.ws_url == sb.http_url.replace("http://", "ws://") + "/ws/public"
        r = httpx.get(f"{sb.http_url}/api/v1/market/instruments")
        assert r.json()["data"][0]["instId"] == "BTC-USDT"
        r = httpx.get(f"{sb.http_url}/api/v1/market/candles", params={"instId": "BTC-USDT"})
        assert r.json()["code"] == "0"  # served from a worker thread
        assert sb.market.seed == 3 and abs(sb.now_ms() - sb.market.start_ms - 60_000) < 60_000
        port = sb.http_url.rsplit(":", 1)[1]
    assert set(threading.enumerate()) <= threads_before
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/_sandbox/state")


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.1", "example.com"])
def test_running_sandbox_refuses_a_non_loopback_host(host: str) -> None:
    with pytest.raises(RemoteHostRefused, match="--allow-remote"):
        with running_sandbox(host=host):
            pass  # pragma: no cover


def test_cli_refuses_a_non_loopback_host() -> None:
    proc = subprocess.run([sys.executable, "-m", "workers.sandbox", "--host", "0.0.0.0"],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "not a loopback address" in proc.stderr and "--allow-remote" in proc.stderr


def test_cli_refuses_bad_settings_with_the_name_of_the_knob() -> None:
    proc = subprocess.run([sys.executable, "-m", "workers.sandbox", "--chaos", "2"],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "chaos" in proc.stderr


async def test_cli_serves_and_heartbeats_under_proofwatch(tmp_path: Path) -> None:
    heartbeat = tmp_path / "heartbeat.json"
    env = {**os.environ, ENV_HEARTBEAT: str(heartbeat), ENV_JOB: "sandbox",
           ENV_RUN_ID: "r1", ENV_RUN_DIR: str(tmp_path)}
    cmd = [sys.executable, "-m", "workers.sandbox", "--port", "0", "--rate", "100",
           "--history-minutes", "2", "--instruments", "BTC-USDT"]
    async with await anyio.open_process(cmd, cwd=REPO, env=env) as proc:
        try:
            assert proc.stderr is not None
            url = ""
            with anyio.fail_after(20):
                buf = b""
                while "Uvicorn running on" not in buf.decode():
                    buf += await proc.stderr.receive()
                url = buf.decode().split("Uvicorn running on ")[1].split()[0]
                async with httpx.AsyncClient(base_url=url) as c:
                    r = await c.get("/api/v1/market/trades", params={"instId": "BTC-USDT"})
                    assert r.json()["code"] == "0"
                async for _changes in awatch(tmp_path, debounce=50, step=20):
                    if heartbeat.exists():
                        hb = json.loads(heartbeat.read_text())
                        if hb["progress"].get("requests", 0) >= 1:
                            break
            assert hb["phase"] == "serving" and "trades_served" in hb["progress"]
        finally:
            proc.terminate()
        assert await proc.wait() in (0, -15)
