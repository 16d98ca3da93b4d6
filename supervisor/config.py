"""config.toml -> frozen, validated `Config`; errors name the file, line and key.

This module owns the errors, the field types and the models. The loader (`load_config`) lives
in `_config_load` and the environment side (`resolve_command`, `expand_env`, `check_config`) in
`_config_check`; both import the models from here, so they are re-exported lazily (see the end
of this module) and there is no import cycle.

Exceptions (all carry fields, not only text):
    ConfigError(Exception)  raised when config.toml is missing, is not TOML, or fails validation
    EnvError(LookupError)   raised when a job's env refers to an unset variable with no default
"""

from __future__ import annotations

import importlib
import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from croniter import croniter  # type: ignore[import-untyped]
from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, Strict,
                      model_validator)

from supervisor.durations import not_a_duration, parse_duration

__all__ = [
    "AlertSink", "AlertsSettings", "CheckFinding", "Config", "ConfigError", "ConfigProblem",
    "EnvError", "HealthSettings", "JobSettings", "ProofSpec", "Seconds", "SupervisorSettings",
    "check_config", "expand_env", "load_config", "resolve_command",
]

_Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with a config file: dotted key, plain message, 1-based line if known."""

    key: str
    message: str
    line: int | None = None


class ConfigError(Exception):
    """Raised when config.toml is missing, is not TOML, or fails validation."""

    def __init__(self, path: Path, problems: list[ConfigProblem]) -> None:
        self.path = path
        self.problems = problems
        super().__init__("\n".join(self._format(p) for p in problems))

    def _format(self, problem: ConfigProblem) -> str:
        where = f"{self.path}:{problem.line}" if problem.line is not None else str(self.path)
        return f"{where}: {problem.key}: {problem.message}" if problem.key else f"{where}: {problem.message}"


class EnvError(LookupError):
    """Raised when a job's env refers to a variable that is unset and has no default."""

    def __init__(self, key: str, var: str) -> None:
        self.key = key
        self.var = var
        super().__init__(f"env.{key}: ${{{var}}} is not set in the supervisor's environment")


@dataclass(frozen=True)
class CheckFinding:
    """One result of `check_config`."""

    level: Literal["error", "warning", "ok"]
    key: str
    message: str


# --- field types -------------------------------------------------------------------------

def _show(value: object) -> str:
    """Render a config value the way it looks in TOML, shortened."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
    elif isinstance(value, dict):
        text = "a table"
    elif isinstance(value, list):
        text = "[" + ", ".join(_show(item) for item in value) + "]"
    elif isinstance(value, (date, time)):
        text = value.isoformat()
    else:
        text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _to_seconds(value: object) -> float:
    if isinstance(value, timedelta) and value >= timedelta(0):
        return value.total_seconds()
    if isinstance(value, str):
        return parse_duration(value)
    raise ValueError(not_a_duration(value))


Seconds = Annotated[float, BeforeValidator(_to_seconds)]
_Int = Annotated[int, Strict()]
_Float = Annotated[float, Strict()]

_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]i?b|b)?", re.IGNORECASE)
_SIZE_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
               "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def _to_bytes(value: object) -> object:
    if isinstance(value, str) and (match := _SIZE.fullmatch(value.strip())):
        return int(float(match[1]) * _SIZE_UNITS[(match[2] or "b").lower()])
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ValueError(f'{_show(value)} is not a size (use e.g. "10MB" or "512KiB")')


def _to_command(value: object) -> object:
    if isinstance(value, str):
        try:
            value = shlex.split(value)
        except ValueError as exc:
            raise ValueError(f"{_show(value)} is not a valid command line ({str(exc).lower()})") from None
    if not isinstance(value, list):
        raise ValueError(f"expected a command line string or a list of strings, got {_show(value)}")
    if not value or value[0] == "":
        raise ValueError("must name a program to run (it is empty)")
    return value


def _to_datetime(value: object) -> datetime:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f'{_show(value)} is not a date-time (use e.g. "2025-07-01T09:00")') from None
    if isinstance(value, date) and not isinstance(value, datetime):
        value = datetime.combine(value, time())
    if not isinstance(value, datetime):
        raise ValueError(f'expected a date-time like "2025-07-01T09:00", got {_show(value)}')
    return value if value.tzinfo is not None else value.astimezone()  # naive means local time


_CRON_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day-of-month", 1, 31), ("month", 1, 12),
                ("day-of-week", 0, 7), ("second", 0, 59))


def _cron_problem(expr: str) -> str | None:
    """Return why `expr` is not a usable 5- or 6-field cron expression, or None."""
    if expr.startswith("@"):
        return None if croniter.is_valid(expr) else "unknown @-alias"
    fields = expr.split()
    if len(fields) not in (5, 6):
        return f"expected 5 fields (minute hour day month weekday) or 6 (plus seconds), got {len(fields)}"
    for i, ((name, low, high), field) in enumerate(zip(_CRON_FIELDS, fields)):
        for step in re.findall(r"/(\d+)", field):
            if not 0 < int(step) <= high - low + 1:
                return f"{name} step /{step} is outside 1-{high - low + 1}"
        probe = ["*"] * len(fields)
        probe[i] = field
        if not croniter.is_valid(" ".join(probe), strict=True):
            return f'{name} field "{field}" is not valid (values {low}-{high})'
    return None if croniter.is_valid(expr, strict=True) else "it never matches a real date"


def _check_cron(expr: str) -> str:
    if (reason := _cron_problem(expr)) is not None:
        raise ValueError(f"{_show(expr)} is not a cron expression ({reason})")
    return expr


_REF = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _check_env_refs(env: dict[str, str]) -> dict[str, str]:
    for key, value in env.items():
        if "${" in _REF.sub("", value):
            raise ValueError(f"env.{key}: {_show(value)} has a malformed reference "
                             "(use ${NAME}, ${NAME:-default}, or $$ for a literal $)")
    return env


# --- models --------------------------------------------------------------------------------

class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SupervisorSettings(_Model):
    state_dir: Path = Path("var")
    data_dir: Path = Path("data")
    status_file: Path | None = None
    log_max_bytes: Annotated[_Int, BeforeValidator(_to_bytes), Field(gt=0)] = 10_485_760
    log_backups: _Int = Field(default=3, ge=0)
    rescan_every: Seconds = parse_duration("2s")
    status_min_interval: Seconds = parse_duration("250ms")
    recent_runs: _Int = Field(default=20, ge=0)
    keep_runs: _Int = Field(default=50, ge=1)
    host: str | None = None


ProofKind = Literal["file", "text", "log", "json", "jsonl", "png", "jpeg", "parquet", "sqlite",
                    "command", "http", "git"]


class ProofSpec(_Model):
    model_config = ConfigDict(frozen=True, extra="allow")
    path: str = Field(min_length=1)
    kind: ProofKind = "file"
    min_count: _Int = Field(default=1, ge=0)
    min_bytes: _Int = Field(default=0, ge=0)


class JobSettings(_Model):
    kind: Literal["service", "task"] = "task"
    command: Annotated[list[str], BeforeValidator(_to_command)]
    cwd: Path | None = None
    env: Annotated[dict[str, str], AfterValidator(_check_env_refs)] = {}
    start: Literal["boot", "manual"] | None = None
    after: list[str] = []
    schedule: Annotated[str, AfterValidator(_check_cron)] | None = None
    not_before: Annotated[datetime, BeforeValidator(_to_datetime)] | None = None
    stall_after: Seconds = parse_duration("20m")
    startup_grace: Seconds = parse_duration("60s")
    on_stall: Literal["alert", "restart", "kill"] = "alert"
    progress_from: Literal["heartbeat", "output"] = "heartbeat"
    expected_load: list[str] = []
    max_runtime: Seconds | None = None
    min_runtime: Seconds | None = None
    stop_grace: Seconds = parse_duration("10s")
    stable_after: Seconds = parse_duration("60s")
    max_restarts: _Int = Field(default=10, ge=0)
    restart_window: Seconds = parse_duration("1h")
    fatal_retry_every: Seconds = parse_duration("30m")
    backoff_initial: Seconds = parse_duration("1s")
    backoff_max: Seconds = parse_duration("5m")
    no_restart_exit_codes: list[_Int] = []
    proofs: list[ProofSpec] = []
    description: str = ""

    @property
    def starts_at_boot(self) -> bool:
        """Whether the daemon starts this job itself when it boots."""
        if self.start is not None:
            return self.start == "boot"
        return not self.after and self.schedule is None


class HealthSettings(_Model):
    model_config = ConfigDict(frozen=True, extra="allow")
    interval: Seconds = parse_duration("10s")
    cpu_temp_max: _Float = Field(default=85.0, gt=0)
    disk_max_pct: _Float = Field(default=90.0, gt=0, le=100)
    mem_max_pct: _Float = Field(default=90.0, gt=0, le=100)
    mounts: list[str] = ["/"]


class AlertSink(_Model):
    model_config = ConfigDict(frozen=True, extra="allow")
    kind: Literal["webhook", "command", "file", "apprise"]


class AlertsSettings(_Model):
    model_config = ConfigDict(frozen=True, extra="allow")
    sinks: list[AlertSink] = []


def _dotted(loc: _Loc) -> str:
    parts = [f"[{p}]" if isinstance(p, int) else p if re.fullmatch(r"[A-Za-z0-9_-]+", p)
             else json.dumps(p) for p in loc]
    return "".join(p if p.startswith("[") or i == 0 else "." + p for i, p in enumerate(parts))


class _JobGraphError(ValueError):
    def __init__(self, issues: list[tuple[_Loc, str]]) -> None:
        self.issues = issues
        super().__init__("; ".join(f"{_dotted(loc)}: {message}" for loc, message in issues))


class Config(_Model):
    path: Path
    base_dir: Path
    supervisor: SupervisorSettings = Field(default_factory=SupervisorSettings)
    health: HealthSettings = Field(default_factory=HealthSettings)
    alerts: AlertsSettings = Field(default_factory=AlertsSettings)
    jobs: dict[str, JobSettings] = {}
    api: dict[str, Any] = {}

    @model_validator(mode="after")
    def _check_job_graph(self) -> Config:
        if issues := _job_graph_issues(self.jobs):
            raise _JobGraphError(issues)
        return self

    def _resolve(self, path: Path) -> Path:
        return self.base_dir / path.expanduser()

    @property
    def state_dir(self) -> Path:
        return self._resolve(self.supervisor.state_dir)

    @property
    def data_dir(self) -> Path:
        return self._resolve(self.supervisor.data_dir)

    @property
    def status_file(self) -> Path:
        if self.supervisor.status_file is None:
            return self.state_dir / "status.json"
        return self._resolve(self.supervisor.status_file)

    @property
    def runs_dir(self) -> Path:
        return self.state_dir / "runs"

    @property
    def history_db(self) -> Path:
        return self.state_dir / "history.db"

    @property
    def socket_path(self) -> Path:
        return self.state_dir / "proofwatch.sock"

    @property
    def alerts_log(self) -> Path:
        return self.state_dir / "alerts.jsonl"

    def job_cwd(self, name: str) -> Path:
        """Return the absolute working directory of job `name` (default: the config's directory)."""
        cwd = self.jobs[name].cwd
        return self.base_dir if cwd is None else self._resolve(cwd)


_JOB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def _job_graph_issues(jobs: Mapping[str, JobSettings]) -> list[tuple[_Loc, str]]:
    issues: list[tuple[_Loc, str]] = []
    for name, job in jobs.items():
        if not _JOB_NAME.fullmatch(name):
            issues.append((("jobs", name), 'bad job name (use letters, digits, "_", "." and "-", '
                                           "starting with a letter or digit)"))
        for dep in job.after:
            if dep not in jobs:
                defined = ", ".join(sorted(n for n in jobs if n != name)) or "none"
                issues.append((("jobs", name, "after"), f'unknown job "{dep}" (defined: {defined})'))
    for cycle in _after_cycles(jobs):
        issues.append((("jobs", cycle[0], "after"), '"after" forms a cycle: ' + " -> ".join(cycle)))
    return issues


def _after_cycles(jobs: Mapping[str, JobSettings]) -> list[list[str]]:
    cycles: list[list[str]] = []
    done: set[str] = set()
    stack: list[str] = []

    def visit(name: str) -> None:
        stack.append(name)
        for dep in jobs[name].after:
            if dep in stack:
                cycle = stack[stack.index(dep):] + [dep]
                if not any(set(cycle) == set(seen) for seen in cycles):
                    cycles.append(cycle)
            elif dep in jobs and dep not in done:
                visit(dep)
        stack.pop()
        done.add(name)

    for name in jobs:
        if name not in done:
            visit(name)
    return cycles


# --- re-exports ------------------------------------------------------------------------------

if TYPE_CHECKING:
    from supervisor._config_check import check_config, expand_env, resolve_command
    from supervisor._config_load import load_config

_REEXPORTS = {
    "check_config": "supervisor._config_check",
    "expand_env": "supervisor._config_check",
    "load_config": "supervisor._config_load",
    "resolve_command": "supervisor._config_check",
}


def __getattr__(name: str) -> Any:
    """Import the loader and check functions on first use (PEP 562)."""
    module = _REEXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_REEXPORTS})
