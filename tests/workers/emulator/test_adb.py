"""The adb backend: the real `adb` binary (Debian's package) with no device reports the
specific blocker; the happy path and an install failure run against the STAND-IN adb
(conftest.STANDIN_ADB) serving real sandbox screenshots."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.workers.emulator.conftest import needs_tesseract, standin_adb
from workers.emulator.adb import parse_devices

REPO = Path(__file__).resolve().parents[3]


def emulator(*args: str, env: dict[str, str] | None = None, out: Path) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("PROOFWATCH_")}
    return subprocess.run([sys.executable, "-m", "workers.emulator", "--backend", "adb", "--out", str(out), *args],
                          cwd=REPO, capture_output=True, text=True, timeout=90, env={**base, **(env or {})})


@pytest.fixture
def private_adb_server() -> Iterator[dict[str, str]]:
    """Our own adb server on a free port (not the machine's 5037), killed afterwards."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    env = {"ANDROID_ADB_SERVER_PORT": port}
    yield env
    subprocess.run(["adb", "kill-server"], env={**os.environ, **env}, capture_output=True, timeout=30)


@pytest.mark.skipif(shutil.which("adb") is None, reason="no adb: `make test` installs Debian's adb")
def test_real_adb_without_a_device_reports_the_specific_blocker(tmp_path: Path,
                                                                 private_adb_server: dict[str, str]) -> None:
    proc = emulator(env=private_adb_server, out=tmp_path)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("emulator: BLOCKED: no booted device")
    # adb's own words: "error: no devices/emulators found" (Debian's adb 29), "adb: no ..." (newer)
    assert re.search(r"\b(adb|error): no devices/emulators found", last) and "exit 1" in last
    assert "`adb shell getprop sys.boot_completed`" in last
    assert (tmp_path / "adb_devices.txt").read_text().startswith("List of devices attached")
    assert "getprop sys.boot_completed" in (tmp_path / "boot.log").read_text()


def test_devices_listing_is_parsed_with_states() -> None:
    listing = ("List of devices attached\nemulator-5554\tdevice product:sdk model:sdk device:emu transport_id:1\n"
               "R58M12ABCDE\tunauthorized usb:1-4.2 transport_id:2\n\n")
    devices = parse_devices(listing)
    assert [(d.serial, d.state) for d in devices] == [("emulator-5554", "device"), ("R58M12ABCDE", "unauthorized")]


@needs_tesseract
def test_standin_adb_happy_path_boots_installs_launches_captures_and_extracts(
        tmp_path: Path, screens: dict[str, Path]) -> None:
    adb = standin_adb(tmp_path / "bin")
    apk = tmp_path / "sandbook.apk"
    apk.write_bytes(b"PK\x03\x04 not really an apk")
    calls = tmp_path / "calls.log"
    env = {"STANDIN_ADB_LOG": str(calls),
           "STANDIN_ADB_SCREENS": os.pathsep.join(str(screens[k]) for k in ("basketball_nba", "soccer_epl")),
           "PATH": f"{adb.parent}{os.pathsep}{os.environ['PATH']}"}
    out = tmp_path / "run"
    proc = emulator("--apk", str(apk), "--activity", "com.sandbook.app/.MainActivity", "--shots", "2",
                    "--tap", "540,300", "--settle", "0", env=env, out=out)
    assert proc.returncode == 0, proc.stderr
    assert "sys.boot_completed=1 serial=emulator-5554" in (out / "boot.log").read_text()
    assert "emulator-5554" in (out / "adb_devices.txt").read_text()
    install = (out / "install.log").read_text()
    assert f"adb -s emulator-5554 install -r {apk}" in install and "\nSuccess\n" in install
    sent = calls.read_text().splitlines()
    assert sent.index("-s emulator-5554 shell input tap 540 300") < sent.index("-s emulator-5554 exec-out screencap -p")
    assert "-s emulator-5554 shell am start -W -n com.sandbook.app/.MainActivity" in sent
    assert "-s emulator-5554 shell input swipe 540 1500 540 700 300" in sent
    doc = json.loads((out / "odds.json").read_text())
    assert doc["backend"] == "adb" and doc["summary"]["screenshots"] == 2
    assert doc["summary"]["markets"] == 8 + 8
    assert sorted(p.name for p in (out / "extractions").iterdir()) == ["01-adb.json", "02-adb.json"]


def test_standin_adb_install_failure_is_a_blocker_with_the_command_and_code(tmp_path: Path) -> None:
    adb = standin_adb(tmp_path / "bin")
    apk = tmp_path / "sandbook.apk"
    apk.write_bytes(b"PK")
    env = {"STANDIN_ADB_LOG": str(tmp_path / "calls.log"), "STANDIN_ADB_SCREENS": "", "STANDIN_ADB_INSTALL_FAIL": "1"}
    proc = emulator("--adb", str(adb), "--apk", str(apk), env=env, out=tmp_path / "run")
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert f"installing {apk} failed" in last and "exit 1" in last
    assert "INSTALL_FAILED_MISSING_SHARED_LIBRARY" in last and "com.google.android.gms" in last
    assert "exit 1" in (tmp_path / "run" / "install.log").read_text()
