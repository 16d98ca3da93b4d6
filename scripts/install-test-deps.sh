#!/usr/bin/env bash
# Installs the Debian packages the test suite needs (none are missing => does nothing).

set -euo pipefail
# chromium: the dashboard tests drive Debian's headless Chromium over the DevTools protocol
# (tests/supervisor/test_dashboard.py); fonts-dejavu-core gives its screenshots readable text.
# tesseract-ocr, tesseract-ocr-eng: the emulator builder's OCR (tests/workers/emulator); adb: its
# adb backend's no-device test runs the real binary (the happy path uses a stand-in).
# postgresql: the fleet tests start a throwaway server of their own (tests/fleet/pg.py): initdb in a
# temp dir, loopback port, run as the postgres account the package creates.
PACKAGES=(chromium fonts-dejavu-core tesseract-ocr tesseract-ocr-eng adb postgresql)
missing=()
for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
