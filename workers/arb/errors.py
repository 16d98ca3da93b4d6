"""The arb matcher's errors.

    ArbError                 Raised for anything that stops a run.
    ├── ConfigError          Raised when a setting is missing or malformed (exit 2).
    ├── InputError           Raised when the emulator's odds.json cannot be found or read.
    └── ApiError             Raised when the odds API answers with an error; `blocked` is True
                             when only the operator can fix it (key missing, invalid, exhausted).
"""

from __future__ import annotations


class ArbError(Exception):
    """Raised for anything that stops a run."""


class ConfigError(ArbError):
    """Raised when a setting is missing or malformed."""


class InputError(ArbError):
    """Raised when the emulator's odds.json cannot be found or read."""


class ApiError(ArbError):
    """Raised when the odds API answers with an error, with the API's own message."""

    BLOCKING = frozenset({"MISSING_KEY", "INVALID_KEY", "DEACTIVATED_KEY", "OUT_OF_USAGE_CREDITS"})

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"odds API HTTP {status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message

    @property
    def blocked(self) -> bool:
        return self.code in self.BLOCKING
