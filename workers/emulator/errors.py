"""The emulator builder's exceptions; the CLI maps them to exit codes and blockers.

    EmulatorError        Raised for anything that stops a run (`exit_code` 1, or 2 for usage)
    ├── ConfigError      Raised when the command line is unusable (exit 2)
    └── Blocked          Raised when a device/browser step fails and a person must act; it
                         carries the exact `command`, `exit_code` and `output`, and is
                         reported as the run's blocker
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence


class EmulatorError(Exception):
    """Raised for anything that stops an emulator run; `exit_code` is what the CLI returns."""

    exit_code = 1


class ConfigError(EmulatorError):
    """Raised when a command-line value is unusable; the message names the flag."""

    exit_code = 2


class Blocked(EmulatorError):
    """Raised when a command failed in a way only a person can fix (no device, bad APK)."""

    def __init__(self, what: str, command: Sequence[str] = (), exit_code: int | None = None,
                 output: str = "") -> None:
        self.what = what
        self.command = list(command)
        self.command_exit = exit_code
        self.output = output.strip()
        parts = [what]
        if self.command:
            parts.append(f"`{shlex.join(self.command)}`")
        if exit_code is not None:
            parts.append(f"exit {exit_code}")
        text = ": ".join(parts[:1]) + (" (" + ", ".join(parts[1:]) + ")" if parts[1:] else "")
        if self.output:
            text += ": " + _tail(self.output)
        super().__init__(text)


def _tail(output: str, limit: int = 600) -> str:
    lines = [ln.strip() for ln in output.strip().splitlines() if ln.strip()]
    text = " | ".join(lines[-6:])
    return text if len(text) <= limit else "..." + text[-limit:]
