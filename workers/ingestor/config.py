"""The ingestor's settings, validated once at the edge (the CLI) into a frozen object."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from workers.ingestor.errors import ConfigError

# What a proofwatch json proof of data/ticks/manifest.json should require (see manifest.py).
REQUIRED_KEYS = ("schema", "updated_at", "instruments", "totals", "batches", "malformed")
LIVE_WS_URL = "wss://openapi.blofin.com/ws/public"
LIVE_REST_URL = "https://openapi.blofin.com"
INST_RE = re.compile(r"^[A-Z0-9]+(-[A-Z0-9]+)+$")


@dataclass(frozen=True)
class Settings:
    """Everything the service needs; see `python -m workers.ingestor --help`."""

    ws_url: str
    rest_url: str
    instruments: tuple[str, ...]
    data_dir: Path
    flush_rows: int = 20_000
    flush_seconds: float = 5.0
    ping_interval: float = 20.0
    pong_timeout: float = 10.0
    connect_interval: float = 1.0
    max_backoff: float = 60.0
    rest_rate: float = 5.0
    compact_fanout: int = 8
    max_file_rows: int = 500_000
    dedup_window: int = 20_000
    candle_grace: float = 3.0
    max_backfill_bars: int = 7 * 1440
    history_minutes: int = 0  # first run only: 1m bars of history to fetch over REST
    ban_block_after: float = 300.0

    def __post_init__(self) -> None:
        if not self.ws_url.startswith(("ws://", "wss://")):
            raise ConfigError(f"--ws-url {self.ws_url!r}: expected ws://... or wss://... "
                              f"(live: {LIVE_WS_URL})")
        if not self.rest_url.startswith(("http://", "https://")):
            raise ConfigError(f"--rest-url {self.rest_url!r}: expected http(s)://... "
                              f"(live: {LIVE_REST_URL})")
        if not self.instruments:
            raise ConfigError("--instruments: give at least one, e.g. BTC-USDT,ETH-USDT")
        for inst in self.instruments:
            if not INST_RE.match(inst):
                raise ConfigError(f"--instruments: {inst!r} is not a BloFin instId (e.g. BTC-USDT)")
        if len(set(self.instruments)) != len(self.instruments):
            raise ConfigError(f"--instruments: duplicates in {','.join(self.instruments)}")
        checks = [
            ("--flush-rows", self.flush_rows >= 1, "must be >= 1"),
            ("--history-minutes", 0 <= self.history_minutes <= self.max_backfill_bars,
             f"must be between 0 and {self.max_backfill_bars} (7 days of 1m bars)"),
            ("--flush-seconds", self.flush_seconds > 0, "must be > 0"),
            ("--ping-interval", 0 < self.ping_interval < 30,
             "must be between 0 and 30 s (BloFin drops idle connections after 30 s)"),
            ("--pong-timeout", self.pong_timeout > 0, "must be > 0"),
            ("--connect-interval", self.connect_interval >= 0, "must be >= 0"),
            ("--rest-rate", 0 < self.rest_rate <= 8,
             "must be in (0, 8] requests/s (BloFin: 500/min, 1500/5 min per IP)"),
            ("--compact-fanout", self.compact_fanout >= 2, "must be >= 2"),
            ("--max-file-rows", self.max_file_rows >= 2, "must be >= 2"),
            ("--dedup-window", self.dedup_window >= 1000,
             "must be >= 1000 (it must exceed the 100-trade REST window by far)"),
        ]
        for flag, ok, why in checks:
            if not ok:
                raise ConfigError(f"{flag} {getattr(self, flag[2:].replace('-', '_'))}: {why}")

    @property
    def ticks_dir(self) -> Path:
        return self.data_dir / "ticks"

    @property
    def manifest_path(self) -> Path:
        return self.ticks_dir / "manifest.json"
