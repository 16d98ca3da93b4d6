"""The retrain builder's exceptions: one small tree; the CLI maps them to exit codes.

    RetrainError            Raised for anything that stops a run (`exit_code`: 1, or 2 for usage)
    ├── ConfigError         Raised when the command line is unusable (exit 2)
    ├── DataError           Raised when the tick store cannot be read or holds unusable data
    │   └── NotEnoughHistory Raised when there are too few 5-minute bars to walk forward (fields: bars, need)
    └── RegistryError       Raised when data/models/registry.json cannot be read or updated (field: path)
"""

from __future__ import annotations

from pathlib import Path


class RetrainError(Exception):
    """Raised for anything that stops a retrain run; `exit_code` is what the CLI returns."""

    exit_code = 1


class ConfigError(RetrainError):
    """Raised when a command-line value is unusable; the message names the flag and the fix."""

    exit_code = 2


class DataError(RetrainError):
    """Raised when the ingestor's store cannot be read, or holds nothing usable."""


class NotEnoughHistory(DataError):
    """Raised when the store holds fewer 5-minute bars than a walk-forward needs."""

    def __init__(self, bars: int, need: int, detail: str = "", *, what: str = "bars") -> None:
        self.bars = bars
        self.need = need
        text = f"not enough history: {bars} {what}, need {need}"
        super().__init__(f"{text} ({detail})" if detail else text)


class RegistryError(RetrainError):
    """Raised when the model registry cannot be read or updated."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = path
        super().__init__(f"{path}: {reason}")
