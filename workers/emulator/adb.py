"""The adb backend: an Android emulator (optionally booted here) or a phone over adb.

Steps, each logged with its exact command, exit code and output; any failure raises
`Blocked` (the run's blocker names the command and adb's own words, e.g. "adb: no
devices/emulators found", "Failure [INSTALL_FAILED_MISSING_SHARED_LIBRARY: ...]"):
  boot     optionally `emulator -avd NAME -no-window -no-audio -no-snapshot` (its output in
           emulator.log); wait for a device in state `device` and `getprop sys.boot_completed`
           = 1 within --boot-timeout (boot.log, with the marker "sys.boot_completed=1");
           `adb devices -l` saved as adb_devices.txt
  install  `adb -s SERIAL install -r APK` for each --apk: "Success" and exit 0 required
           (install.log)
  launch   `adb shell input keyevent KEYCODE_WAKEUP`, `adb shell am start -W -n ACTIVITY`
  capture  `adb exec-out screencap -p` (PNG magic checked), with `input tap` / `input swipe`
           between captures as configured
Waiting on a device has no event to await: the boot wait polls every --poll seconds, and
--settle gives the app's UI time to draw after a launch, tap or swipe.
"""

from __future__ import annotations

import logging
import shlex
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from workers.emulator.errors import Blocked, ConfigError

log = logging.getLogger(__name__)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
BOOT_MARKER = "sys.boot_completed=1"


@dataclass(frozen=True)
class AdbSettings:
    adb: str = "adb"
    serial: str | None = None
    avd: str | None = None
    emulator: str = "emulator"
    emulator_args: tuple[str, ...] = ("-no-window", "-no-audio", "-no-snapshot")
    boot_timeout: float = 300.0  # with --avd: how long the emulator may take to boot
    device_wait: float = 0.0  # without --avd: how long to wait for a phone to be ready
    poll: float = 2.0
    apks: tuple[str, ...] = ()
    activity: str | None = None
    shots: int = 3
    taps: tuple[tuple[int, int], ...] = ()
    swipe: tuple[int, int, int, int] | None = (540, 1500, 540, 700)
    settle: float = 1.5
    keep_emulator: bool = False
    command_timeout: float = 120.0


@dataclass
class Device:
    serial: str
    state: str
    info: str = ""


def parse_devices(output: str) -> list[Device]:
    """`adb devices -l` -> devices (header and blank lines skipped)."""
    out = []
    for line in output.splitlines():
        line = line.strip()
        if not line or line.startswith("List of devices") or line.startswith("*"):
            continue
        parts = line.split()
        if len(parts) >= 2:
            state = parts[1] if parts[1] != "no" else " ".join(parts[1:3])
            out.append(Device(parts[0], state, " ".join(parts[2:])))
    return out


@dataclass
class AdbSession:
    """Runs the steps against one device, writing the logs into `out`."""

    settings: AdbSettings
    out: Path
    beat: Callable[..., None] = lambda *a, **k: None
    serial: str | None = None
    _emulator: subprocess.Popen[bytes] | None = None
    _emulator_log: Path | None = None
    boot_log: list[str] = field(default_factory=list)

    def _cmd(self, *args: str, device: bool = True) -> list[str]:
        base = [self.settings.adb]
        if device and self.serial:
            base += ["-s", self.serial]
        return base + list(args)

    def run(self, args: Sequence[str], *, binary: bool = False,
            timeout: float | None = None) -> subprocess.CompletedProcess[bytes]:
        """Run a command; a missing binary or a timeout is a Blocked with the command."""
        try:
            proc = subprocess.run(list(args), capture_output=True,
                                  timeout=timeout or self.settings.command_timeout)
        except FileNotFoundError:
            raise Blocked(f"{args[0]} not found: install it (Debian: apt-get install adb) or "
                          "pass its path", args) from None
        except subprocess.TimeoutExpired as exc:
            raise Blocked(f"timed out after {exc.timeout:.0f} s", args, None,
                          _text(exc.stdout or b"") + _text(exc.stderr or b"")) from None
        if not binary:
            self._log(f"$ {shlex.join(args)}  -> exit {proc.returncode}\n"
                      f"{_text(proc.stdout)}{_text(proc.stderr)}".rstrip())
        return proc

    def _log(self, line: str) -> None:
        stamp = datetime.now(timezone.utc).strftime("%H:%M:%S")
        self.boot_log.append(f"[{stamp}] {line}")
        (self.out / "boot.log").write_text("\n".join(self.boot_log) + "\n")

    # -- boot ---------------------------------------------------------------------------------
    def boot(self) -> None:
        """Start the AVD if configured; wait until a device has finished booting."""
        s = self.settings
        self.out.mkdir(parents=True, exist_ok=True)
        if s.avd:
            cmd = [s.emulator, "-avd", s.avd, *s.emulator_args]
            self._emulator_log = self.out / "emulator.log"
            self._log(f"starting {shlex.join(cmd)} (output in emulator.log)")
            try:
                self._emulator = subprocess.Popen(
                    cmd, stdout=self._emulator_log.open("wb"), stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL)
            except FileNotFoundError:
                raise Blocked(f"{s.emulator} not found: install the Android SDK emulator and "
                              "put it on PATH, or pass --emulator", cmd) from None
        started = time.monotonic()
        deadline = started + (s.boot_timeout if s.avd else s.device_wait)
        last: tuple[list[str], int | None, str] = ([], None, "")
        polls = 0
        while True:
            polls += 1
            self._check_emulator_alive()
            devices_cmd = self._cmd("devices", "-l", device=False)
            dev = self.run(devices_cmd)
            listing = _text(dev.stdout) + _text(dev.stderr)
            (self.out / "adb_devices.txt").write_text(listing)
            if dev.returncode != 0:
                last = (devices_cmd, dev.returncode, listing)
            else:
                ready = self._pick(parse_devices(listing))
                if ready is not None:
                    self.serial = ready.serial
                    prop_cmd = self._cmd("shell", "getprop", "sys.boot_completed")
                    prop = self.run(prop_cmd, timeout=30)
                    value = _text(prop.stdout).strip()
                    if prop.returncode == 0 and value == "1":
                        self._log(f"{BOOT_MARKER} serial={self.serial} after "
                                  f"{time.monotonic() - started:.1f} s")
                        return
                    last = (prop_cmd, prop.returncode, _text(prop.stdout) + _text(prop.stderr)
                            or "(empty: still booting)")
                else:
                    last = self._no_device(listing)
            if time.monotonic() >= deadline:
                break
            self.beat(phase="boot", message=f"waiting for the device to boot ({polls} polls)")
            time.sleep(s.poll)
        cmd, rc, output = last
        waited = f" within {deadline - started:.0f} s" if deadline > started else ""
        raise Blocked(f"no booted device{waited}", cmd, rc, output)

    def _pick(self, devices: list[Device]) -> Device | None:
        want = self.settings.serial
        for d in devices:
            if want and d.serial != want:
                continue
            if d.state == "device" and (want or not self._emulator
                                        or d.serial.startswith("emulator-")):
                return d
        return None

    def _no_device(self, listing: str) -> tuple[list[str], int | None, str]:
        """Why no device is usable, in adb's own words."""
        devices = parse_devices(listing)
        for d in devices:
            if self.settings.serial and d.serial != self.settings.serial:
                continue
            if d.state == "unauthorized":
                return (self._cmd("devices", "-l", device=False), 0,
                        f"{d.serial} is unauthorized: accept the USB debugging prompt on the "
                        "device (and check 'Always allow')")
            if d.state in ("offline", "no permissions"):
                return (self._cmd("devices", "-l", device=False), 0, f"{d.serial}: {d.state}")
        probe = [self.settings.adb] + (["-s", self.settings.serial] if self.settings.serial
                                       else []) + ["shell", "getprop", "sys.boot_completed"]
        proc = self.run(probe, timeout=30)
        return probe, proc.returncode, _text(proc.stderr) + _text(proc.stdout)

    def _check_emulator_alive(self) -> None:
        if self._emulator is not None and self._emulator.poll() is not None:
            tail = self._emulator_log.read_text(errors="replace") if self._emulator_log else ""
            raise Blocked("the emulator exited while booting", self._emulator.args,  # type: ignore[arg-type]
                          self._emulator.returncode, tail[-2000:])

    # -- install / launch ---------------------------------------------------------------------
    def install(self) -> int:
        """`adb install -r` each APK; install.log records every attempt."""
        log_path = self.out / "install.log"
        lines: list[str] = []
        if not self.settings.apks:
            lines.append("no APKs configured (--apk): nothing to install")
        log_path.write_text("\n".join(lines) + "\n")
        for i, apk in enumerate(self.settings.apks, 1):
            if not Path(apk).is_file():
                raise ConfigError(f"--apk {apk}: no such file")
            cmd = self._cmd("install", "-r", apk)
            self.beat(phase="install", message=f"installing {Path(apk).name} ({i}/{len(self.settings.apks)})")
            proc = self.run(cmd, timeout=max(self.settings.command_timeout, 300))
            output = _text(proc.stdout) + _text(proc.stderr)
            lines.append(f"$ {shlex.join(cmd)}\n{output.rstrip()}\nexit {proc.returncode}")
            log_path.write_text("\n".join(lines) + "\n")
            ok = proc.returncode == 0 and any(ln.strip() == "Success" for ln in output.splitlines())
            if not ok:
                raise Blocked(f"installing {apk} failed", cmd, proc.returncode, output)
            self.beat({"installed": i}, phase="install")
        return len(self.settings.apks)

    def launch(self) -> None:
        """Wake the screen and start the configured activity."""
        self.run(self._cmd("shell", "input", "keyevent", "KEYCODE_WAKEUP"))
        if not self.settings.activity:
            return
        cmd = self._cmd("shell", "am", "start", "-W", "-n", self.settings.activity)
        proc = self.run(cmd)
        output = _text(proc.stdout) + _text(proc.stderr)
        if proc.returncode != 0 or "Error" in output or "Exception" in output:
            raise Blocked(f"starting {self.settings.activity} failed", cmd, proc.returncode, output)
        time.sleep(self.settings.settle)

    # -- capture ------------------------------------------------------------------------------
    def screenshot(self, path: Path) -> int:
        """`adb exec-out screencap -p` into path; the bytes must be a PNG."""
        cmd = self._cmd("exec-out", "screencap", "-p")
        proc = self.run(cmd, binary=True)
        data = proc.stdout
        if proc.returncode != 0 or not data.startswith(PNG_MAGIC):
            raise Blocked("screencap returned no PNG", cmd, proc.returncode,
                          _text(proc.stderr) + repr(data[:60]))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        self._log(f"$ {shlex.join(cmd)}  -> exit 0, {len(data)} bytes -> {path.name}")
        return len(data)

    def before_captures(self) -> None:
        for x, y in self.settings.taps:
            self._input("tap", str(x), str(y))

    def between_captures(self) -> None:
        if self.settings.swipe:
            x1, y1, x2, y2 = self.settings.swipe
            self._input("swipe", str(x1), str(y1), str(x2), str(y2), "300")

    def _input(self, *args: str) -> None:
        cmd = self._cmd("shell", "input", *args)
        proc = self.run(cmd)
        if proc.returncode != 0:
            raise Blocked(f"input {args[0]} failed", cmd, proc.returncode,
                          _text(proc.stdout) + _text(proc.stderr))
        time.sleep(self.settings.settle)

    def close(self) -> None:
        """Stop the emulator this session started (unless --keep-emulator)."""
        if self._emulator is None or self.settings.keep_emulator:
            return
        if self.serial:
            try:
                self.run(self._cmd("emu", "kill"), timeout=30)
            except Blocked:
                pass
        try:
            self._emulator.wait(30)
        except subprocess.TimeoutExpired:
            self._emulator.terminate()
            try:
                self._emulator.wait(10)
            except subprocess.TimeoutExpired:
                self._emulator.kill()
                self._emulator.wait()


def _text(b: bytes | str) -> str:
    return b if isinstance(b, str) else b.decode(errors="replace")
