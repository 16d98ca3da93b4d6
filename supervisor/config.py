"""config.toml -> frozen, validated `Config`; errors name the file, line and key.

Exceptions (all carry fields, not only text):
    ConfigError(Exception)  raised when config.toml is missing, is not TOML, or fails validation
    EnvError(LookupError)   raised when a job's env refers to an unset variable with no default
"""

from __future__ import annotations

import difflib
import json
import os
import re
import shlex
import shutil
import sys
import tomllib
import types
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from croniter import croniter  # type: ignore[import-untyped]
from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, Strict,
                      ValidationError, model_validator)

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


# --- loading -------------------------------------------------------------------------------

_TOP_KEYS = ("supervisor", "defaults", "health", "alerts", "jobs", "api")


def load_config(path: str | Path) -> Config:
    """Read, merge and validate config.toml; raise ConfigError listing every problem."""
    given = Path(path)
    text = _read_text(given)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(given, [_syntax_problem(exc, text)]) from None
    config, issues = _validate(raw, Path(os.path.abspath(given.expanduser())))
    if config is None:
        index = _line_index(text)
        problems = [ConfigProblem(_dotted(loc), msg, _find_line(index, loc)) for loc, msg in issues]
        problems = list(dict.fromkeys(problems))
        problems.sort(key=lambda p: (p.line is None, p.line or 0))
        raise ConfigError(given, problems)
    return config


def _read_text(given: Path) -> str:
    def fail(message: str, line: int | None = None) -> ConfigError:
        return ConfigError(given, [ConfigProblem("", message, line)])

    try:
        data = given.expanduser().read_bytes()
    except FileNotFoundError:
        raise fail('no such file (create one with "proofwatch init")') from None
    except IsADirectoryError:
        raise fail("is a directory, not a config file") from None
    except OSError as exc:
        raise fail(f"cannot read it ({(exc.strerror or str(exc)).lower()})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise fail("is not UTF-8 text", data[: exc.start].count(b"\n") + 1) from None


_AT = re.compile(r"\s*\(at (?:line (\d+), column \d+|end of document)\)")


def _syntax_problem(exc: tomllib.TOMLDecodeError, text: str) -> ConfigProblem:
    message = str(exc)
    match = _AT.search(message)
    line = None if match is None else int(match[1]) if match[1] else max(1, len(text.splitlines()))
    detail = _AT.sub("", message)
    return ConfigProblem("", f"invalid TOML: {detail[:1].lower()}{detail[1:]}", line)


def _validate(raw: dict[str, Any], path: Path) -> tuple[Config | None, list[tuple[_Loc, str]]]:
    issues: list[tuple[_Loc, str]] = []
    data: dict[str, Any] = {"path": path, "base_dir": path.parent}
    for key, value in raw.items():
        if key not in _TOP_KEYS:
            issues.append(((key,), _unknown_key(key, _TOP_KEYS)))
        elif key != "defaults":
            data[key] = value
    defaults = raw.get("defaults", {})
    if not isinstance(defaults, dict):
        issues.append((("defaults",), f"expected a table, got {_show(defaults)}"))
        defaults = {}
    issues += _defaults_issues(defaults)
    if isinstance(data.get("jobs"), dict):
        data["jobs"] = {name: _merge(defaults, job) for name, job in data["jobs"].items()}
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raw_jobs = raw["jobs"] if isinstance(raw.get("jobs"), dict) else {}
        issues += [(loc, msg) for loc, msg in _messages(exc, Config)
                   if not _from_defaults(loc, raw_jobs, defaults)]
        return None, issues
    return (None if issues else config), issues


def _merge(defaults: dict[str, Any], job: object) -> object:
    """Lay a job's table over [defaults]; job keys win, env tables merge key by key."""
    if not isinstance(job, dict):
        return job
    merged = {**defaults, **job}
    if isinstance(defaults.get("env"), dict) and isinstance(job.get("env"), dict):
        merged["env"] = {**defaults["env"], **job["env"]}
    return merged


def _defaults_issues(defaults: dict[str, Any]) -> list[tuple[_Loc, str]]:
    try:
        JobSettings.model_validate({"command": ["placeholder"], **defaults})
    except ValidationError as exc:
        return [(("defaults", *loc), msg) for loc, msg in _messages(exc, JobSettings)]
    return []


def _from_defaults(loc: _Loc, raw_jobs: dict[str, Any], defaults: dict[str, Any]) -> bool:
    """Whether a job error comes from a [defaults] value (already reported under defaults.*)."""
    job = raw_jobs.get(str(loc[1])) if len(loc) > 2 and loc[0] == "jobs" else None
    if not isinstance(job, dict) or loc[2] not in defaults:
        return False
    if loc[2] not in job:
        return True
    return (loc[2] == "env" and len(loc) > 3 and isinstance(job["env"], dict)
            and loc[3] not in job["env"])


# --- pydantic errors in plain words ------------------------------------------------------------

_BOUNDS = {"greater_than": "more than", "greater_than_equal": "at least",
           "less_than": "less than", "less_than_equal": "at most"}


def _messages(exc: ValidationError, root: type[BaseModel]) -> list[tuple[_Loc, str]]:
    out: list[tuple[_Loc, str]] = []
    for error in exc.errors(include_url=False):
        cause = error.get("ctx", {}).get("error")
        if isinstance(cause, _JobGraphError):
            out += cause.issues
        else:
            out.append((tuple(error["loc"]), _message(error["type"], error, root)))
    return out


def _message(kind: str, error: Any, root: type[BaseModel]) -> str:
    loc, value, ctx = tuple(error["loc"]), error.get("input"), error.get("ctx", {})
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        model = _unwrap(_annotation_at(root, loc[:-1]))
        known = list(model.model_fields) if _is_model(model) else []
        return _unknown_key(str(loc[-1]), known)
    if kind in ("value_error", "assertion_error"):
        return str(ctx["error"])
    if kind == "literal_error":
        return f"{_show(value)} is not one of: " + ", ".join(re.findall(r"'([^']*)'", ctx["expected"]))
    if kind in _BOUNDS:
        limit = next(iter(ctx.values()))
        return f"must be {_BOUNDS[kind]} {limit:g}, got {_show(value)}"
    if kind in ("string_too_short", "too_short"):
        return "must not be empty"
    return f"expected {_describe(_annotation_at(root, loc))}, got {_show(value)}"


def _unknown_key(key: str, known: Any) -> str:
    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.7)
    hint = f'did you mean "{close[0]}"?' if close else "known keys: " + ", ".join(sorted(known))
    return f"unknown key ({hint})"


def _unwrap(tp: Any) -> Any:
    """Strip Annotated[...] and Optional[...] down to the type that matters."""
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin in (Union, types.UnionType):
            rest = [arg for arg in get_args(tp) if arg is not type(None)]
            if len(rest) != 1:
                return tp
            tp = rest[0]
        else:
            return tp


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _annotation_at(root: type[BaseModel], loc: _Loc) -> Any:
    tp: Any = root
    for part in loc:
        tp = _unwrap(tp)
        if _is_model(tp) and str(part) in tp.model_fields:
            tp = tp.model_fields[str(part)].annotation
        elif get_origin(tp) in (list, dict):
            tp = get_args(tp)[-1]
        else:
            return None
    return tp


_TYPE_NAMES: dict[Any, tuple[str, str]] = {
    str: ("a string", "strings"), int: ("a whole number", "whole numbers"),
    float: ("a number", "numbers"), bool: ("true or false", "booleans"),
    Path: ("a path (a string)", "paths"), datetime: ("a date-time", "date-times"),
}


def _describe(tp: Any) -> str:
    tp = _unwrap(tp)
    origin = get_origin(tp)
    if origin is list:
        item = _unwrap(get_args(tp)[0])
        return "a list of " + ("tables" if _is_model(item) else _TYPE_NAMES.get(item, ("", "values"))[1])
    if origin is dict or _is_model(tp):
        return "a table"
    if origin is Literal:
        return "one of: " + ", ".join(str(arg) for arg in get_args(tp))
    return _TYPE_NAMES.get(tp, ("a valid value", ""))[0]


def _dotted(loc: _Loc) -> str:
    parts = [f"[{p}]" if isinstance(p, int) else p if re.fullmatch(r"[A-Za-z0-9_-]+", p)
             else json.dumps(p) for p in loc]
    return "".join(p if p.startswith("[") or i == 0 else "." + p for i, p in enumerate(parts))


# --- finding the line of a key in the TOML text ------------------------------------------------

_KEY = r"""(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*')"""
_DOTTED_KEY = rf"{_KEY}(?:\s*\.\s*{_KEY})*"
_HEADER = re.compile(rf"\s*(\[\[?)\s*({_DOTTED_KEY})\s*\]\]?\s*(?:#.*)?")
_KEY_LINE = re.compile(rf"\s*({_DOTTED_KEY})\s*=(.*)")
_INLINE_KEY = re.compile(rf"[{{,]\s*({_DOTTED_KEY})\s*=")


def _split_key(dotted: str) -> tuple[str, ...]:
    return tuple(part[1:-1] if part[0] in "\"'" else part for part in re.findall(_KEY, dotted))


def _line_index(text: str) -> dict[_Loc, int]:
    """Map key paths (as pydantic locs) to the first line that defines them; best effort."""
    index: dict[_Loc, int] = {}
    table: _Loc = ()
    array_counts: dict[_Loc, int] = {}
    open_quote: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if open_quote is not None:
            open_quote = None if open_quote in line else open_quote
        elif header := _HEADER.fullmatch(line):
            table = _split_key(header[2])
            for end in range(1, len(table) + 1):  # [jobs.arb] also defines "jobs"
                index.setdefault(table[:end], number)
            if header[1] == "[[":
                array_counts[table] = array_counts.get(table, -1) + 1
                table = (*table, array_counts[table])
                index.setdefault(table, number)
        elif pair := _KEY_LINE.match(line):
            path = (*table, *_split_key(pair[1]))
            index.setdefault(path, number)
            for inner in _INLINE_KEY.findall(pair[2]):
                index.setdefault((*path, *_split_key(inner)), number)
            open_quote = next((q for q in ('"""', "'''") if pair[2].count(q) == 1), None)
    return index


def _find_line(index: dict[_Loc, int], loc: _Loc) -> int | None:
    for end in range(len(loc), 0, -1):
        if (line := index.get(loc[:end])) is not None:
            return line
    return None


# --- using the config ----------------------------------------------------------------------------

def resolve_command(command: list[str]) -> list[str]:
    """Return `command` with a bare "python"/"python3" replaced by the daemon's own interpreter."""
    if command and command[0] in ("python", "python3"):
        return [sys.executable, *command[1:]]
    return list(command)


def expand_env(env: Mapping[str, str], environ: Mapping[str, str]) -> dict[str, str]:
    """Expand ${VAR}, ${VAR:-default} (unset or empty) and $$ in each value; raise EnvError."""
    return {key: _expand(key, value, environ) for key, value in env.items()}


def _expand(key: str, value: str, environ: Mapping[str, str]) -> str:
    def substitute(match: re.Match[str]) -> str:
        if match[0] == "$$":
            return "$"
        current = environ.get(match[1])
        if match[2] is not None and not current:
            return match[2]
        if current is None:
            raise EnvError(key, match[1])
        return current

    return _REF.sub(substitute, value)


def check_config(config: Config, environ: Mapping[str, str]) -> list[CheckFinding]:
    """Check what validation cannot: programs, directories and variables exist. Reads only."""
    findings = [_dir_finding("supervisor.state_dir", config.state_dir),
                _dir_finding("supervisor.data_dir", config.data_dir)]
    if config.supervisor.status_file is not None:
        findings.append(_dir_finding("supervisor.status_file", config.status_file.parent))
    if not config.jobs:
        findings.append(CheckFinding("warning", "jobs", "no jobs defined"))
    for name in config.jobs:
        findings += _job_findings(config, name, environ)
    if not config.alerts.sinks:
        findings.append(CheckFinding("warning", "alerts.sinks",
                                     "no alert sinks: alerts reach only status.json and alerts.jsonl"))
    return findings


def _dir_finding(key: str, path: Path) -> CheckFinding:
    if path.exists():
        if not path.is_dir():
            return CheckFinding("error", key, f"{path} exists but is not a directory")
        if not os.access(path, os.W_OK | os.X_OK):
            return CheckFinding("error", key, f"{path} is not writable by this user")
        return CheckFinding("ok", key, f"{path} is writable")
    parent = next(p for p in path.parents if p.exists())
    if parent.is_dir() and os.access(parent, os.W_OK | os.X_OK):
        return CheckFinding("ok", key, f"{path} will be created")
    return CheckFinding("error", key, f"{path} cannot be created ({parent} is not a writable directory)")


def _job_findings(config: Config, name: str, environ: Mapping[str, str]) -> list[CheckFinding]:
    job, key = config.jobs[name], _dotted(("jobs", name))
    cwd = config.job_cwd(name)
    findings: list[CheckFinding] = []
    if job.cwd is not None:
        ok = cwd.is_dir()
        findings.append(CheckFinding("ok" if ok else "error", f"{key}.cwd",
                                     f"{cwd} {'exists' if ok else 'is not an existing directory'}"))
    env: dict[str, str] = {}
    for var, value in job.env.items():
        try:
            env.update(expand_env({var: value}, environ))
        except EnvError as exc:
            findings.append(CheckFinding("error", f"{key}.env.{var}",
                                         f"${{{exc.var}}} is not set in the supervisor's environment"))
    search_path = env.get("PATH") or environ.get("PATH") or os.defpath
    findings.append(_executable_finding(f"{key}.command", resolve_command(job.command)[0], cwd,
                                        search_path))
    if job.schedule is not None and (reason := _cron_problem(job.schedule)) is not None:
        findings.append(CheckFinding("error", f"{key}.schedule", reason))
    if job.kind == "task" and not job.proofs:
        findings.append(CheckFinding("warning", f"{key}.proofs",
                                     "no proofs declared: success will rest on exit code 0 alone"))
    return findings


def _executable_finding(key: str, program: str, cwd: Path, search_path: str) -> CheckFinding:
    if os.sep in program or (os.altsep is not None and os.altsep in program):
        candidate = cwd / program
        if not candidate.is_file():
            return CheckFinding("error", key, f'"{program}" not found (looked for {candidate})')
        if not os.access(candidate, os.X_OK):
            return CheckFinding("error", key, f"{candidate} is not executable (chmod +x it)")
        return CheckFinding("ok", key, f"runs {candidate}")
    found = shutil.which(program, path=search_path)
    if found is None:
        return CheckFinding("error", key, f'"{program}" is not on PATH ({search_path})')
    return CheckFinding("ok", key, f"runs {found}")
