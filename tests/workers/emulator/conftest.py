"""Shared fixtures: one sandbox and one set of real Chromium screenshots of its sportsbook
for the whole emulator test directory, and the clearly named stand-in for adb."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from workers.emulator.browser import capture_pages, find_chromium
from workers.sandbox.server import SandboxHandle, running_sandbox

PAGES = ("basketball_nba", "soccer_epl", "mma_mixed_martial_arts")  # American, decimal, fractional

needs_chromium = pytest.mark.skipif(find_chromium() is None, reason="no Chromium: `make test` installs "
                                    "Debian's chromium (scripts/install-test-deps.sh)")
needs_tesseract = pytest.mark.skipif(shutil.which("tesseract") is None, reason="no tesseract: `make test` "
                                     "installs tesseract-ocr (scripts/install-test-deps.sh)")

# A STAND-IN for Android's adb, for tests only: it answers the handful of adb commands the
# emulator builder sends as an emulator with a booted device would, and serves sandbox
# screenshots for `exec-out screencap -p`. Every call is appended to $STANDIN_ADB_LOG.
STANDIN_ADB = '''
"""STAND-IN for adb (tests only; NOT Android's adb)."""
import os, sys
args = sys.argv[1:]
with open(os.environ["STANDIN_ADB_LOG"], "a") as f:
    f.write(" ".join(args) + "\\n")
if args[:1] == ["-s"]:
    args = args[2:]
if args == ["devices", "-l"]:
    print("List of devices attached")
    print("emulator-5554          device product:sdk_gphone64_x86_64 model:sdk_gphone64_x86_64 "
          "device:emu64xa transport_id:1")
    print()
elif args[:2] == ["shell", "getprop"]:
    print("1")
elif args[:1] == ["install"]:
    print("Performing Streamed Install")
    if os.environ.get("STANDIN_ADB_INSTALL_FAIL"):
        print("adb: failed to install " + args[-1] + ": Failure [INSTALL_FAILED_MISSING_SHARED_LIBRARY: "
              "Package couldn't be installed in /data/app/com.sandbook.app-1: Package com.sandbook.app "
              "requires unavailable shared library com.google.android.gms; failing!]", file=sys.stderr)
        sys.exit(1)
    print("Success")
elif args[:3] == ["shell", "am", "start"]:
    print("Starting: Intent { cmp=" + args[-1] + " }")
    print("Status: ok")
    print("Complete")
elif args[:2] == ["shell", "input"]:
    pass
elif args == ["exec-out", "screencap", "-p"]:
    screens = os.environ["STANDIN_ADB_SCREENS"].split(os.pathsep)
    with open(os.environ["STANDIN_ADB_LOG"]) as f:
        k = sum(1 for line in f if "screencap" in line) - 1
    with open(screens[k % len(screens)], "rb") as f:
        sys.stdout.buffer.write(f.read())
elif args[:2] == ["emu", "kill"]:
    print("OK: killing emulator, bye bye")
else:
    print("adb stand-in: unsupported command: " + " ".join(args), file=sys.stderr)
    sys.exit(1)
'''


@pytest.fixture(scope="session")
def sandbox() -> Iterator[SandboxHandle]:
    with running_sandbox(seed=7, history_minutes=1) as sb:
        yield sb


@pytest.fixture(scope="session")
def truth(sandbox: SandboxHandle) -> dict[str, Any]:
    return httpx.get(f"{sandbox.http_url}/_sandbox/sportsbook/truth", timeout=10).json()  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def screens(sandbox: SandboxHandle, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real headless-Chromium screenshots of three sportsbook pages, by sport key."""
    if find_chromium() is None:
        pytest.skip("no Chromium")
    out = tmp_path_factory.mktemp("screens")
    jobs = [(f"{sandbox.http_url}/sportsbook/{k}", out / f"{i:02d}-{k}.png") for i, k in enumerate(PAGES, 1)]
    capture_pages(jobs)
    return {k: path for k, (_url, path) in zip(PAGES, jobs)}


def standin_adb(directory: Path) -> Path:
    """Write the stand-in as an executable named `adb` in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "adb"
    path.write_text(f"#!{sys.executable}\n" + STANDIN_ADB)
    path.chmod(0o755)
    return path
