#!/usr/bin/env bash
# Installs the peer supervisors that `make bench` compares proofwatch with, the way users do:
#   - Monit from Debian (apt-get; the Debian service is NOT started: the bench runs its own
#     `monit -I -c <tmp>/monitrc` in the foreground and stops it);
#   - supervisord from PyPI into its own virtual environment, bench/.venv-supervisord (never into
#     proofwatch's: its import name `supervisor` collides with proofwatch's package).
# Does nothing when both are already there. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

SUPERVISOR_VERSION="${SUPERVISOR_VERSION:-4.3.0}"
VENV=bench/.venv-supervisord
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"

if ! command -v monit >/dev/null 2>&1 && ! [ -x /usr/bin/monit ]; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "install-bench-deps: installing monit (Debian)" >&2
    $SUDO apt-get update -qq
    # policy-rc.d 101: do not let the package start the system-wide monit service
    policy=/usr/sbin/policy-rc.d
    created_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
        $SUDO chmod 755 "$policy"
        created_policy=1
    fi
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends monit
    if [ "$created_policy" = 1 ]; then $SUDO rm -f "$policy"; fi
fi

if ! [ -x "$VENV/bin/supervisord" ] || \
   [ "$("$VENV/bin/python" -c 'from importlib.metadata import version; print(version("supervisor"))' 2>/dev/null)" != "$SUPERVISOR_VERSION" ]; then
    echo "install-bench-deps: creating $VENV with supervisor==$SUPERVISOR_VERSION (PyPI)" >&2
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "supervisor==$SUPERVISOR_VERSION"
fi
# the venv ignores itself (as Python 3.13's venv does), so `git add -A` never picks it up
[ -f "$VENV/.gitignore" ] || printf '# created by scripts/install-bench-deps.sh\n*\n' > "$VENV/.gitignore"
