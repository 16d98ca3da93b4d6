"""The emulator builder: capture sportsbook screens and extract odds with Tesseract OCR, with
proof a person can check (a proofwatch `task` job). Imports: pillow, pytesseract, websockets,
workers.sdk, workers.sandbox.odds_model (the default page list); never supervisor/ or status/.

    python -m workers.emulator [--backend browser|adb] ...   (see __main__.py / README.md)

Modules: `browser.py` (headless Chromium over DevTools, full-page PNGs), `adb.py` (boot an AVD
or use a phone, install APKs, launch, screencap, tap/swipe; every failure is `Blocked` with the
exact command, exit code and output), `ocr.py` (preprocessing, `image_to_data` word boxes,
rows), `odds.py` (strict American / decimal / fractional parsing), `extract.py` (rows ->
markets, outcomes, boosts, each value with a confidence; doubtful values re-read, then
flagged, never guessed), `_job.py` (phases, heartbeats, extractions/<shot>.json, odds.json),
`odds.schema.json` (the odds.json contract).
"""

from __future__ import annotations

from workers.emulator._job import Settings, extract_file, run_job
from workers.emulator.adb import AdbSettings, parse_devices
from workers.emulator.errors import Blocked, ConfigError, EmulatorError
from workers.emulator.odds import Odds, parse_odds

__all__ = [
    "AdbSettings",
    "Blocked",
    "ConfigError",
    "EmulatorError",
    "Odds",
    "Settings",
    "extract_file",
    "parse_devices",
    "parse_odds",
    "run_job",
]
