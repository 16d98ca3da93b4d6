"""Helpers for the ingestor's end-to-end tests: the ingestor as a real subprocess against the
sandbox on loopback, and readers for what it leaves on disk."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from workers.protocol import ENV_DATA_DIR, ENV_HEARTBEAT, ENV_JOB, ENV_RUN_DIR, ENV_RUN_ID
from workers.sdk import read_heartbeat

ROOT = Path(__file__).resolve().parents[3]
BAR_MS = 60_000


def wait_until(what: str, check: Callable[[], Any], timeout: float = 15.0,
               proc: Ingestor | None = None) -> Any:
    """Poll a file-backed condition with a deadline (files give no event to await)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if proc is not None and proc.popen.poll() is not None:
            raise AssertionError(f"ingestor exited {proc.popen.returncode} while waiting for "
                                 f"{what}\n{proc.log_tail()}")
        if time.monotonic() > deadline:
            tail = proc.log_tail() if proc else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{tail}")
        time.sleep(0.05)


def accelerated(speed: float) -> Callable[[], int]:
    """A sandbox clock running `speed` times faster than the wall clock (from now on)."""
    t0 = time.time_ns() // 1_000_000
    start = time.monotonic()
    return lambda: t0 + int((time.monotonic() - start) * 1000 * speed)


class Ingestor:
    """`python -m workers.ingestor` in a subprocess, with PROOFWATCH_* pointing into tmp."""

    def __init__(self, tmp: Path, sb: Any, instruments: list[str], *extra: str,
                 name: str = "run") -> None:
        self.tmp = tmp
        self.data = tmp / "data"
        self.run_dir = tmp / name
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.heartbeat = self.run_dir / "heartbeat.json"
        self.log = self.run_dir / "stderr.log"
        env = dict(os.environ)
        env.update({ENV_HEARTBEAT: str(self.heartbeat), ENV_JOB: "ingestor", ENV_RUN_ID: name,
                    ENV_RUN_DIR: str(self.run_dir), ENV_DATA_DIR: str(self.data),
                    "PYTHONUNBUFFERED": "1"})
        args = [sys.executable, "-m", "workers.ingestor", "--ws-url", sb.ws_url,
                "--rest-url", sb.http_url, "--instruments", ",".join(instruments),
                "--flush-seconds", "0.3", "--connect-interval", "0.2", "--max-backoff", "1",
                "--candle-grace", "0.3", *extra]
        self._err = open(self.log, "wb")
        self.popen = subprocess.Popen(args, cwd=ROOT, env=env, stdout=self._err,
                                      stderr=subprocess.STDOUT)

    def log_tail(self, n: int = 40) -> str:
        try:
            lines = self.log.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return ""
        return "--- ingestor log tail ---\n" + "\n".join(lines[-n:])

    def beat(self) -> Any:
        return read_heartbeat(self.heartbeat)

    def manifest(self) -> dict[str, Any] | None:
        return read_manifest(self.data)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
        try:
            return self.popen.wait(timeout)
        finally:
            self._err.close()

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait(10)
        self._err.close()


@contextmanager
def ingestor(tmp: Path, sb: Any, instruments: list[str], *extra: str,
             name: str = "run") -> Iterator[Ingestor]:
    proc = Ingestor(tmp, sb, instruments, *extra, name=name)
    try:
        yield proc
    finally:
        proc.kill()


def read_manifest(data: Path) -> dict[str, Any] | None:
    try:
        return json.loads((data / "ticks" / "manifest.json").read_bytes())
    except (FileNotFoundError, ValueError):
        return None


def stored(manifest: dict[str, Any] | None, inst: str) -> int:
    if not manifest or inst not in manifest["instruments"]:
        return 0
    return int(manifest["instruments"][inst]["count"])


def read_parts(data: Path, dataset: str, inst: str) -> pa.Table:
    """Every row of one instrument's parts on disk (whatever the manifest says)."""
    files = sorted((data / dataset / f"inst={inst}").glob("date=*/part-*.parquet"))
    tables = [pq.ParquetFile(f).read().replace_schema_metadata(None) for f in files]
    if not tables:
        return pa.table({"ts": pa.array([], pa.timestamp("ms", tz="UTC"))})
    return pa.concat_tables(tables)


def tick_ids(data: Path, inst: str) -> list[str]:
    return read_parts(data, "ticks", inst).column("trade_id").to_pylist()


def in_gaps(ts: int, gaps: list[dict[str, Any]]) -> bool:
    return any(g["start_ms"] <= ts <= g["end_ms"] for g in gaps)


def verify_manifest(data: Path) -> dict[str, Any]:
    """Check the manifest as proofwatch would, and more: keys, every file's sha256 and rows."""
    path = data / "ticks" / "manifest.json"
    doc = json.loads(path.read_bytes())
    from workers.ingestor import REQUIRED_KEYS

    missing = [k for k in REQUIRED_KEYS if k not in doc]
    assert not missing, f"manifest lacks {missing}"
    root = path.parent / doc["root"]
    listed: set[Path] = set()
    for inst, rec in doc["instruments"].items():
        for entry in [*rec["files"], *rec["candles"]["files"]]:
            f = (root / entry["path"]).resolve()
            listed.add(f)
            blob = f.read_bytes()
            assert hashlib.sha256(blob).hexdigest() == entry["sha256"], f"{f}: sha256 differs"
            assert len(blob) == entry["bytes"]
            assert pq.ParquetFile(f).metadata.num_rows == entry["rows"], f"{f}: rows differ"
        assert rec["count"] == sum(e["rows"] for e in rec["files"]), inst
    on_disk = {p.resolve() for p in data.glob("*/inst=*/date=*/*")}
    assert on_disk == listed, f"not listed: {on_disk - listed}, missing: {listed - on_disk}"
    return doc
