"""One emulator run: capture (browser or adb) -> OCR -> extractions/<shot>.json + odds.json.

Heartbeats per phase: boot, install, capture (k/N), ocr (k/N), with counters that only grow
(captures, ocr_done, markets). Files, all in the run dir (`out`):
  screens/<NN>-<name>.png, extractions/<NN>-<name>.json, odds.json
  adb only: boot.log, adb_devices.txt, install.log (and emulator.log when it booted an AVD)
"""

from __future__ import annotations

import json
import logging
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from PIL import Image

from workers.atomic import write_atomic
from workers.emulator import browser, ocr
from workers.emulator.adb import AdbSession, AdbSettings
from workers.emulator.extract import DEFAULT_MIN_CONF, Extractor
from workers.sdk import Run

log = logging.getLogger(__name__)

SCHEMA = "proofwatch.emulator.odds/1"
EXTRACTION_SCHEMA = "proofwatch.emulator.extraction/1"


@dataclass(frozen=True)
class Settings:
    backend: str = "browser"  # browser | adb
    urls: tuple[str, ...] = ()
    out: Path = Path(".")
    book: str = "sandbook"
    width: int = 1000
    height: int = 1200
    chromium: str | None = None
    page_wait: float = 60.0  # retry an unreachable page this long (a sandbox still starting)
    min_conf: float = DEFAULT_MIN_CONF
    odds_format: str | None = None  # fix the book's format (american|decimal|fractional)
    reread: bool = True
    adb: AdbSettings = field(default_factory=AdbSettings)


@dataclass
class Shot:
    name: str
    path: Path
    source: dict[str, Any]
    captured_at: str


def run_job(s: Settings, run: Run) -> dict[str, Any]:
    """Capture, OCR and write every output; returns the odds.json document."""
    s.out.mkdir(parents=True, exist_ok=True)
    shots = _capture_browser(s, run) if s.backend == "browser" else _capture_adb(s, run)
    engine = ocr.engine_version()
    doc: dict[str, Any] = {"schema": SCHEMA, "book": s.book, "run_id": run.run_id or None,
                           "backend": s.backend, "engine": engine, "min_conf": s.min_conf,
                           "generated_at": None, "screenshots": [], "markets": [], "boosts": []}
    for k, shot in enumerate(shots, 1):
        run.beat({"ocr_done": k - 1}, phase="ocr", message=f"ocr {k}/{len(shots)}: {shot.name}")
        extraction = extract_file(shot.path, book=s.book, min_conf=s.min_conf,
                                  odds_format=s.odds_format, reread=s.reread)
        extraction.update(captured_at=shot.captured_at, source=shot.source)
        rel = f"extractions/{shot.name}.json"
        _write_json(s.out / rel, extraction)
        doc["screenshots"].append({"shot": shot.name, "png": shot.source["screenshot"],
                                   "extraction": rel, "captured_at": shot.captured_at,
                                   "markets": len(extraction["markets"]),
                                   "seconds": extraction["ocr"]["seconds"]})
        doc["markets"] += [{"shot": shot.name, **m} for m in extraction["markets"]]
        doc["boosts"] += [{"shot": shot.name, **b} for b in extraction["boosts"]]
        markets = len(doc["markets"])
        run.beat({"ocr_done": k, "markets": markets}, phase="ocr",
                 message=f"ocr {k}/{len(shots)}: {len(extraction['markets'])} markets "
                         f"from {shot.name} ({markets} in all)")
    outcomes = [o for m in doc["markets"] for o in m["outcomes"]]
    doc["summary"] = {
        "screenshots": len(shots), "markets": len(doc["markets"]),
        "complete_markets": sum(1 for m in doc["markets"] if m["complete"]),
        "outcomes": len(outcomes), "odds_read": sum(1 for o in outcomes if o["odds"] is not None),
        "flagged": sum(1 for o in outcomes if o["flags"]), "boosts": len(doc["boosts"]),
        "suspect_markets": sum(1 for m in doc["markets"] if m["flags"])}
    doc["generated_at"] = _now()
    _write_json(s.out / "odds.json", doc)
    return doc


def extract_file(path: Path, *, book: str = "", min_conf: float = DEFAULT_MIN_CONF,
                 odds_format: str | None = None, reread: bool = True) -> dict[str, Any]:
    """OCR one screenshot into its extraction document (without capture metadata)."""
    started = time.perf_counter()
    with Image.open(path) as img:
        img.load()
        size = img.size
        prepared = ocr.prepare(img)
    found = ocr.words(prepared)
    ex = Extractor(prepared, min_conf=min_conf, expect=odds_format, reread=reread)
    result = ex.extract(found)
    seconds = round(time.perf_counter() - started, 3)
    return {"schema": EXTRACTION_SCHEMA, "book": book, "captured_at": None, "source": {},
            "image": {"width": size[0], "height": size[1]},
            "ocr": {"engine": ocr.engine_version(), "psm": 11, "scale": round(prepared.scale, 3),
                    "threshold": prepared.threshold, "inverted": prepared.inverted,
                    "words": len(found), "rereads": ex.rereads, "min_conf": min_conf,
                    "seconds": seconds},
            "markets": result["markets"], "boosts": result["boosts"]}


def _capture_browser(s: Settings, run: Run) -> list[Shot]:
    names = _names(s.urls)
    jobs = [(url, s.out / "screens" / f"{name}.png") for url, name in zip(s.urls, names)]
    shots: list[Shot] = []
    run.beat({"captures": 0}, phase="capture", message=f"capture 0/{len(jobs)}: starting Chromium")

    def on_shot(k: int, url: str, path: Path, size: tuple[int, int]) -> None:
        shots.append(Shot(path.stem, path, {"backend": "browser", "url": url,
                                             "screenshot": f"screens/{path.name}",
                                             "width": size[0], "height": size[1]}, _now()))
        run.beat({"captures": k}, phase="capture",
                 message=f"capture {k}/{len(jobs)}: {url} ({size[0]}x{size[1]})")

    browser.capture_pages(jobs, width=s.width, height=s.height, chromium=s.chromium,
                          page_wait=s.page_wait, on_shot=on_shot)
    return shots


def _capture_adb(s: Settings, run: Run) -> list[Shot]:
    session = AdbSession(s.adb, s.out, beat=run.beat)
    try:
        run.beat(phase="boot", message="waiting for a device" + (f" (booting {s.adb.avd})"
                                                                 if s.adb.avd else ""))
        session.boot()
        run.beat({"booted": 1}, phase="install", message=f"device {session.serial} booted")
        session.install()
        session.launch()
        session.before_captures()
        shots = []
        for k in range(1, s.adb.shots + 1):
            if k > 1:
                session.between_captures()
            name = f"{k:02d}-adb"
            path = s.out / "screens" / f"{name}.png"
            n = session.screenshot(path)
            shots.append(Shot(name, path, {"backend": "adb", "serial": session.serial,
                                           "activity": s.adb.activity,
                                           "screenshot": f"screens/{path.name}", "bytes": n},
                              _now()))
            run.beat({"captures": k}, phase="capture", message=f"capture {k}/{s.adb.shots}")
        return shots
    finally:
        session.close()


def _names(urls: tuple[str, ...]) -> list[str]:
    out = []
    for k, url in enumerate(urls, 1):
        parsed = urlparse(url)
        tail = parsed.path.rstrip("/").rsplit("/", 1)[-1] or parsed.hostname or "page"
        out.append(f"{k:02d}-{re.sub(r'[^A-Za-z0-9_.-]+', '-', tail)[:40]}")
    return out


def _write_json(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(doc, indent=1).encode())


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")

