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
import ipaddress
import json
import os
import re
import shlex
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, SecretStr,
                      Strict, ValidationError, ValidatorFunctionWrapHandler, model_validator)
from pydantic_core import InitErrorDetails

from supervisor.durations import not_a_duration, parse_duration

__all__ = [
    "AlertSink", "AlertsSettings", "ApiSettings", "CheckFinding", "Config", "ConfigError",
    "ConfigProblem", "EnvError", "HealthSettings", "JobSettings", "ProofSpec", "Seconds",
    "SupervisorSettings", "check_config", "expand_env", "is_loopback", "load_config",
    "resolve_command",
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
_Int = Annotated[int, Strict(), Field(le=10**18)]  # beyond: an OverflowError in a deque or SQLite
_Float = Annotated[float, Strict()]

_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]i?b|b)?", re.IGNORECASE)
_SIZE_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
               "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


def _to_bytes(value: object) -> object:
    if isinstance(value, str) and (match := _SIZE.fullmatch(value.strip())):
        size = float(match[1]) * _SIZE_UNITS[(match[2] or "b").lower()]
        if size < float("inf"):  # not hundreds of digits
            return int(size)
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
    from croniter import croniter  # type: ignore[import-untyped]  # with a schedule only (~2 MB)

    if expr.startswith("@"):
        return None if croniter.is_valid(expr) else "unknown @-alias"
    fields = expr.split()
    if len(fields) not in (5, 6):
        return f"expected 5 fields (minute hour day month weekday) or 6 (plus seconds), got {len(fields)}"
    for i, ((name, low, high), field) in enumerate(zip(_CRON_FIELDS, fields)):
        for step in re.findall(r"/(\d+)", field):
            if len(step) > 3 or not 0 < int(step) <= high - low + 1:
                return f"{name} step /{step[:8]} is outside 1-{high - low + 1}"
        probe = ["*"] * len(fields)
        probe[i] = field
        if not croniter.is_valid(" ".join(probe), strict=True):
            return f'{name} field {_show(field)} is not valid (values {low}-{high})'
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

def _kind_of(value: object) -> str:
    """What a value is, without showing it (for secrets given with the wrong type)."""
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, (int, float)):
        return "a number"
    return {dict: "a table", list: "a list"}.get(type(value), "a " + type(value).__name__)


def _to_secret(value: object) -> object:
    if isinstance(value, (str, SecretStr)):
        return value
    raise ValueError(f"expected a string, got {_kind_of(value)}")  # never the value: a secret


_Secret = Annotated[SecretStr, BeforeValidator(_to_secret)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SupervisorSettings(_Model):
    state_dir: Path = Path("var")
    data_dir: Path = Path("data")
    status_file: Path | None = None
    log_max_bytes: Annotated[_Int, BeforeValidator(_to_bytes), Field(gt=0)] = 10_485_760
    log_backups: _Int = Field(default=3, ge=0)
    rescan_every: Seconds = parse_duration("5s")
    # status.json is rewritten at once on a state change; otherwise (heartbeats: progress, ages)
    # at most this often. The API, dashboard and metrics read the daemon's memory, always live.
    status_min_interval: Seconds = parse_duration("1s")
    recent_runs: _Int = Field(default=20, ge=0)
    keep_runs: _Int = Field(default=50, ge=1)
    host: Annotated[str, AfterValidator(_check_host)] | None = None  # default: the hostname
    # jobs as root: refused when the daemon runs as root, unless a job sets `user` or this is true
    allow_root: bool = False
    # on SIGTERM/SIGINT: "stop" every job, or "leave" them running for the next daemon to re-adopt
    on_exit: Literal["stop", "leave"] = "stop"
    deadman_url: _Secret | None = None  # pinged every deadman_every (Healthchecks.io style)
    deadman_every: Annotated[Seconds, Field(gt=0)] = parse_duration("60s")


ProofKind = Literal["file", "text", "log", "json", "jsonl", "png", "jpeg", "parquet", "sqlite",
                    "command", "http", "git"]

FILE_PROOF_KINDS = frozenset({"file", "text", "log", "json", "jsonl", "png", "jpeg", "parquet",
                              "sqlite"})
_PROOF_FILE_KEYS = ("path", "min_count", "min_bytes", "max_age")
_PROOF_KIND_KEYS: dict[str, tuple[str, ...]] = {
    "file": (), "text": ("contains", "not_contains"), "log": ("contains", "not_contains"),
    "json": ("required_keys", "schema"), "jsonl": ("min_lines",),
    "png": ("min_width", "min_height"), "jpeg": ("min_width", "min_height"),
    "parquet": ("min_rows", "columns"), "sqlite": ("table", "min_rows"),
    "command": ("command", "timeout"), "http": ("url", "timeout", "contains"),
    "git": ("repo", "branch", "min_commits"),
}
_PROOF_REQUIRED = {"command": "command", "http": "url", "git": "repo"}
_PROOF_TIMEOUTS = {"command": 60.0, "http": 10.0}


def _proof_keys(kind: str) -> tuple[str, ...]:
    return ("kind", *(_PROOF_FILE_KEYS if kind in FILE_PROOF_KINDS else ()), *_PROOF_KIND_KEYS[kind])


def unknown_key(key: str, known: Iterable[str]) -> str:
    """The message for a key the config does not know: the closest known key, or all of them.
    (difflib is imported here: the daemon needs it only for a config that has a typo.)"""
    import difflib

    names = sorted(known)
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.7)
    hint = f'did you mean "{close[0]}"?' if close else "known keys: " + ", ".join(names)
    return f"unknown key ({hint})"


def _proof_key_issues(raw: dict[Any, Any]) -> list[tuple[str, str]]:
    """(key, message) for keys that are unknown, do not fit the kind, or are missing for it."""
    known = sorted({key for kind in _PROOF_KIND_KEYS for key in _proof_keys(kind)})
    kind = raw.get("kind", "file")
    fits = _proof_keys(kind) if isinstance(kind, str) and kind in _PROOF_KIND_KEYS else None
    issues: list[tuple[str, str]] = []
    for key in raw:
        if str(key) not in known:
            issues.append((str(key), unknown_key(str(key), known)))
        elif fits is not None and key not in fits:
            issues.append((key, f"{key} does not apply to kind {kind} "
                                f"({kind} takes: {', '.join(sorted(set(fits) - {'kind'}))})"))
    if fits is None:
        return issues
    required = "path" if kind in FILE_PROOF_KINDS else _PROOF_REQUIRED[kind]
    if required not in raw:
        issues.append((required, f"is required for kind {kind}"))
    if kind == "sqlite" and "min_rows" in raw and "table" not in raw:
        issues.append(("min_rows", "min_rows needs table (the table whose rows to count)"))
    return issues


def _one_or_many(value: object) -> object:
    return [value] if isinstance(value, str) else value


def _check_regexes(patterns: list[str]) -> list[str]:
    for pattern in patterns:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a FutureWarning ("possible nested set") is no error
                re.compile(pattern)
        except (re.error, OverflowError) as exc:  # OverflowError: a{99999999999}
            raise ValueError(f"{_show(pattern)} is not a valid regex ({exc})") from None
        except RecursionError:
            raise ValueError(f"{_show(pattern)} is not a valid regex (nested too deeply)") from None
    return patterns


def _check_key_paths(paths: list[str]) -> list[str]:
    for path in paths:
        if not path or "" in path.split("."):
            raise ValueError(f'{_show(path)} is not a key path (use e.g. "model.metrics.auc" or "items.0.id")')
    return paths


def _check_url(url: str) -> str:
    if not re.match(r"https?://[^/\s]", url):
        raise ValueError(f'{_show(url)} is not an http(s) URL (use e.g. "http://127.0.0.1:8080/health")')
    return url


def _check_branch(branch: str) -> str:
    if branch.startswith("-") or any(c.isspace() for c in branch):
        raise ValueError(f"{_show(branch)} is not a branch name")
    return branch


_Regexes = Annotated[list[str], BeforeValidator(_one_or_many), AfterValidator(_check_regexes)]
_Text = Annotated[str, Field(min_length=1)]


class ProofSpec(_Model):
    """One declared proof (`[[jobs.NAME.proofs]]`); which keys apply depends on `kind`."""

    path: _Text | None = None  # glob, relative to the run dir or "data:..." (file kinds)
    kind: ProofKind = "file"
    min_count: _Int = Field(default=1, ge=0)
    min_bytes: Annotated[_Int, BeforeValidator(_to_bytes), Field(ge=0)] = 0
    max_age: Seconds | None = None
    contains: _Regexes = []  # text, log, http
    not_contains: _Regexes = []
    required_keys: Annotated[list[str], AfterValidator(_check_key_paths)] = []
    schema_: Path | None = Field(default=None, alias="schema")  # relative to the config's dir
    min_lines: _Int | None = Field(default=None, ge=0)
    min_width: _Int | None = Field(default=None, ge=1)
    min_height: _Int | None = Field(default=None, ge=1)
    min_rows: _Int | None = Field(default=None, ge=0)
    columns: list[_Text] = []
    table: _Text | None = None
    command: Annotated[list[str], BeforeValidator(_to_command)] | None = None
    timeout: Annotated[Seconds, Field(gt=0)] | None = None
    url: Annotated[str, AfterValidator(_check_url)] | None = None
    repo: _Text | None = None  # relative to the run dir, "data:...", or absolute
    branch: Annotated[str, AfterValidator(_check_branch)] | None = None
    min_commits: _Int = Field(default=1, ge=1)

    @model_validator(mode="wrap")
    @classmethod
    def _check_keys(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> ProofSpec:
        """Report keys foreign to the kind (or missing for it) together with the field errors."""
        issues = _proof_key_issues(data) if isinstance(data, dict) else []
        if not issues:
            return handler(data)  # type: ignore[no-any-return]
        bad = {key for key, _ in issues}
        errors = [InitErrorDetails(type="value_error", loc=(key,), input=data.get(key),
                                   ctx={"error": ValueError(message)}) for key, message in issues]
        try:
            handler({k: v for k, v in data.items() if k not in bad})
        except ValidationError as exc:
            errors += [InitErrorDetails(type=e["type"], loc=e["loc"], input=e["input"],
                                        ctx=e.get("ctx", {})) for e in exc.errors(include_url=False)
                       if e["type"] != "missing"]
        raise ValidationError.from_exception_data(cls.__name__, errors)

    @property
    def is_file_kind(self) -> bool:
        """Whether this proof is about files matched by `path` (not command, http or git)."""
        return self.kind in FILE_PROOF_KINDS

    @property
    def timeout_seconds(self) -> float:
        """The verifier or request timeout: `timeout`, else 60 s for command and 10 s for http."""
        return self.timeout if self.timeout is not None else _PROOF_TIMEOUTS.get(self.kind, 60.0)

    @property
    def label(self) -> str:
        """What status.json calls this proof: its path, URL, "git:REPO" or "command: ..."."""
        if self.kind == "http":
            return self.url or ""
        if self.kind == "git":
            return f"git:{self.repo}"
        if self.kind == "command":
            text = "command: " + shlex.join(self.command or [])
            return text if len(text) <= 80 else text[:77] + "..."
        return self.path or ""


def _to_token(value: object) -> object:
    if isinstance(value, (str, SecretStr)):
        return value
    raise ValueError(f'expected a string (a literal, or "${{VAR}}" read from the environment), '
                     f"got {_kind_of(value)}")  # never the value: it may be the secret itself


_Token = Annotated[SecretStr, BeforeValidator(_to_token)]  # "${VAR}" expands when used


def _check_user(name: str) -> str:
    import pwd  # the accounts of this host; looked up once, when the config is loaded

    try:
        pwd.getpwuid(int(name)) if name.isdigit() else pwd.getpwnam(name)
    except (KeyError, OverflowError):
        raise ValueError(f"no such user {_show(name)} on this host (create it, e.g. "
                         f"useradd --system --no-create-home {name}, or fix the name)") from None
    return name


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
    prove_every: Seconds | None = None  # also verify the proofs this often while a run is live
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
    heartbeat_token: _Token | None = None  # remote heartbeats over HTTP must carry it
    user: Annotated[_Text, AfterValidator(_check_user)] | None = None  # run as this Unix user
    allow_root: bool = False  # run as root even though the daemon runs as root

    @property
    def starts_at_boot(self) -> bool:
        """Whether the daemon starts this job itself when it boots."""
        if self.start is not None:
            return self.start == "boot"
        return not self.after and self.schedule is None


_CHECK_TARGETS: dict[str, tuple[str, ...]] = {"http": ("url",), "tcp": ("host", "port"),
                                              "systemd": ("unit",)}


def _unique_check_names(checks: list[HealthCheck]) -> list[HealthCheck]:
    names = [check.name for check in checks]
    if dupes := sorted({name for name in names if names.count(name) > 1}):
        raise ValueError("each check needs its own name (repeated: " + ", ".join(dupes) + ")")
    return checks


class HealthCheck(_Model):
    """One `[[health.checks]]` entry: a service that must answer (http 2xx, tcp connect, or an
    active systemd unit) within `timeout`."""

    name: str = Field(min_length=1)
    kind: Literal["http", "tcp", "systemd"]
    url: str | None = None
    host: str | None = None
    port: _Int | None = Field(default=None, ge=1, le=65535)
    unit: str | None = None
    timeout: Seconds = Field(default=parse_duration("2s"), gt=0)

    @model_validator(mode="after")
    def _targets_match_kind(self) -> HealthCheck:
        need = _CHECK_TARGETS[self.kind]
        if missing := [key for key in need if getattr(self, key) is None]:
            raise ValueError(f'kind = "{self.kind}" needs {" and ".join(missing)}')
        stray = [key for keys in _CHECK_TARGETS.values() for key in keys
                 if key not in need and getattr(self, key) is not None]
        if stray:
            raise ValueError(f'{", ".join(stray)} is not used by kind = "{self.kind}" '
                             f'(it takes {" and ".join(need)})')
        if self.url is not None and not re.match(r"https?://[^/\s]", self.url):
            raise ValueError(f"url {_show(self.url)} is not an http:// or https:// URL")
        return self


class HealthSettings(_Model):
    """`[health]`: sampling interval, thresholds (each must hold for `for_samples` consecutive
    samples before it fires or clears), mounts to watch and optional service checks."""

    interval: Seconds = Field(default=parse_duration("10s"), gt=0)
    cpu_temp_max: _Float = Field(default=85.0, gt=0)
    disk_max_pct: _Float = Field(default=90.0, gt=0, le=100)
    mem_max_pct: _Float = Field(default=90.0, gt=0, le=100)
    swap_max_pct: _Float = Field(default=80.0, gt=0, le=100)
    cpu_busy_pct: _Float = Field(default=90.0, gt=0, le=100)
    load_per_core_max: _Float = Field(default=2.0, gt=0)
    for_samples: _Int = Field(default=3, ge=1)
    top_n: _Int = Field(default=5, ge=1)
    mounts: list[str] = ["/"]
    checks: Annotated[list[HealthCheck], AfterValidator(_unique_check_names)] = []


from pydantic import SecretStr, ValidationError  # noqa: E402  (the alert sink models' own imports)
from pydantic_core import InitErrorDetails  # noqa: E402

_SinkKind = Literal["webhook", "command", "file", "apprise"]
_SINK_NEEDS: dict[str, str] = {"webhook": "url", "apprise": "url", "command": "command", "file": "path"}
_SINK_HINTS: dict[str, str] = {
    "webhook": ' (e.g. url = "https://example.com/hook")',
    "apprise": ' (an Apprise URL, e.g. url = "tgram://BOT_TOKEN/CHAT_ID")',
    "command": ' (e.g. command = ["notify-send", "proofwatch"])',
    "file": ' (e.g. path = "var/notifications.jsonl")',
}


def _field_errors(model: str, issues: list[tuple[_Loc, str]], data: Any = None) -> ValidationError:
    return ValidationError.from_exception_data(model, [
        InitErrorDetails(type="value_error", loc=loc, input=data, ctx={"error": ValueError(msg)})
        for loc, msg in issues])


class AlertSink(_Model):
    """One notifier (`[[alerts.sinks]]`). URLs and secrets are SecretStr: never printed."""

    kind: _SinkKind
    name: str = ""  # "" -> "<kind><index>" (e.g. "webhook0"), set by AlertsSettings
    url: _Secret | None = None  # webhook: http(s) URL; apprise: any Apprise URL
    secret: _Secret | None = None  # webhook: HMAC-SHA256 key for X-Proofwatch-Signature
    command: Annotated[list[str], BeforeValidator(_to_command)] | None = None  # JSON on stdin
    path: Path | None = None  # file: JSON lines appended; relative to the config's directory
    timeout: Annotated[Seconds, Field(gt=0)] = parse_duration("10s")
    min_severity: Literal["info", "warning", "critical"] = "info"
    jobs: list[str] = []  # only alerts of these jobs (empty: every alert, host ones included)

    @model_validator(mode="after")
    def _check_kind(self) -> AlertSink:
        needed = _SINK_NEEDS[self.kind]
        issues: list[tuple[_Loc, str]] = []
        if getattr(self, needed) is None:
            issues.append(((needed,), f"is required for kind {self.kind}{_SINK_HINTS[self.kind]}"))
        url = self.url.get_secret_value() if self.url is not None else None
        if url is not None and self.kind == "webhook" and not re.match(r"https?://[^/\s]", url):
            issues.append((("url",), "is not an http(s) URL (it must start with http:// or https://)"))
        if url is not None and self.kind == "apprise" and not re.match(r"[A-Za-z][\w+.-]*://\S", url):
            issues.append((("url",), 'is not an Apprise URL (use e.g. "tgram://BOT_TOKEN/CHAT_ID")'))
        if self.secret is not None and self.kind != "webhook":
            issues.append((("secret",), f"applies to kind webhook only, not {self.kind}"))
        if issues:
            raise _field_errors(type(self).__name__, issues)
        return self


def _named_sink(sink: object, index: int) -> object:
    if isinstance(sink, dict) and not sink.get("name"):
        return {**sink, "name": f"{sink.get('kind')}{index}"}
    if isinstance(sink, AlertSink) and not sink.name:
        return sink.model_copy(update={"name": f"{sink.kind}{index}"})
    return sink


class AlertsSettings(_Model):
    """`[alerts]`: notification timing and the sinks."""

    repeat_every: Annotated[Seconds, Field(gt=0)] = parse_duration("1h")
    escalate_after: Annotated[Seconds, Field(gt=0)] | None = None
    group_wait: Seconds = parse_duration("10s")
    sinks: list[AlertSink] = []

    @model_validator(mode="before")
    @classmethod
    def _name_sinks(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("sinks"), list):
            data = {**data, "sinks": [_named_sink(s, i) for i, s in enumerate(data["sinks"])]}
        return data

    @model_validator(mode="after")
    def _unique_names(self) -> AlertsSettings:
        first: dict[str, int] = {}
        issues: list[tuple[_Loc, str]] = []
        for i, sink in enumerate(self.sinks):
            if sink.name in first:
                issues.append((("sinks", i, "name"),
                               f'{_show(sink.name)} is already the name of alerts.sinks[{first[sink.name]}]'))
            first.setdefault(sink.name, i)
        if issues:
            raise _field_errors(type(self).__name__, issues)
        return self


def _split_listen(text: str) -> tuple[str, int]:
    """'127.0.0.1:8765' -> ('127.0.0.1', 8765); '[::1]:8765' -> ('::1', 8765)."""
    match = re.fullmatch(r"\[([^\]]+)\]:(\d{1,5})|([^:\[\]\s]+):(\d{1,5})", text.strip())
    hint = '(use HOST:PORT with an IP address, e.g. "127.0.0.1:8765" or "[::1]:8765")'
    if match is None:
        raise ValueError(f"{_show(text)} is not an address {hint}")
    host, port = (match[1], match[2]) if match[1] is not None else (match[3], match[4])
    if host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"{_show(text)}: {host!r} is not an IP address {hint}") from None
    if int(port) > 65535:
        raise ValueError(f"{_show(text)}: port {port} is above 65535")
    return host, int(port)


def _check_listen(text: str) -> str:
    _split_listen(text)
    return text


def is_loopback(host: str) -> bool:
    """Whether `host` (an IP address or "localhost") is only reachable from this machine."""
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


class ApiSettings(_Model):
    """`[api]`: the HTTP API, dashboard and /metrics. Always served on the daemon's Unix socket
    (owner-only); also on TCP when `listen` (or `port`, meaning 127.0.0.1:PORT) is set. Over
    TCP, `token` is required by every write and, when set, by every read; a non-loopback
    address needs it. Changing `listen` takes a daemon restart; tokens follow a reload."""

    listen: Annotated[str, AfterValidator(_check_listen)] | None = None
    port: _Int | None = Field(default=None, ge=0, le=65535)
    token: _Token | None = None
    allowed_hosts: list[str] = []  # Host names accepted over TCP besides the address itself

    @model_validator(mode="after")
    def _check_exposure(self) -> ApiSettings:
        if self.listen is not None and self.port is not None:
            raise _field_errors(type(self).__name__, [(("port",), 'give listen or port, not both '
                                                      '(port = 8765 means listen = "127.0.0.1:8765")')])
        address = self.address
        if address is not None and not is_loopback(address[0]) and self.token is None:
            raise _field_errors(type(self).__name__, [(("listen",), (
                f"{_show(self.listen)} is not a loopback address: set api.token as well "
                '(e.g. token = "${PROOFWATCH_API_TOKEN}"); every request over TCP then needs it'))])
        return self

    @property
    def address(self) -> tuple[str, int] | None:
        """(host, port) to serve on over TCP, or None for the Unix socket alone."""
        if self.listen is not None:
            return _split_listen(self.listen)
        if self.port is not None:
            return "127.0.0.1", self.port
        return None


_HOST_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,252}")


def _check_host(value: str) -> str:
    if not _HOST_NAME.fullmatch(value):
        raise ValueError(f'{_show(value)} is not a host name (letters, digits, "_", "." and "-", '
                         "starting with a letter or digit)")
    return value


def store_url_problem(url: str) -> str | None:
    """Why `url` is not a history store proofwatch speaks (None: it is). Never shows a password."""
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme not in ("sqlite", "postgresql", "postgresql+psycopg"):
        shown = scheme or url.split("@")[-1][:40]
        return (f"{_show(shown)}: not a store URL proofwatch speaks (use "
                '"postgresql+psycopg://user@host:5432/db" or "sqlite:////path/history.db")')
    from sqlalchemy.engine import make_url  # only with a [store] url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
        parsed.port  # noqa: B018 - parsed on access
    except (ArgumentError, ValueError):
        where = url.split("://", 1)[1].rsplit("@", 1)[-1][:60]  # after the credentials
        return f"{_show(scheme + '://…' + where)}: not a valid URL (host[:port]/database; the port a number)"
    return None


def _check_store_url(value: SecretStr) -> SecretStr:
    url = value.get_secret_value()
    if not url.startswith("${") and (problem := store_url_problem(url)):  # "${VAR}": checked at use
        raise ValueError(problem)
    return value


class StoreSettings(_Model):
    """`[store]`: where the history lives. Default: the embedded SQLite file state_dir/history.db.
    A PostgreSQL URL makes it the fleet's shared history (several daemons, one database). The
    password belongs in ~/.pgpass or PGPASSWORD (libpq reads both), or in the URL through
    "${VAR}"; it is never logged or written to status.json."""

    url: Annotated[_Secret, AfterValidator(_check_store_url)] | None = None


class FleetSettings(_Model):
    """`[fleet]`: how hosts sharing a store report to each other."""

    report_every: Annotated[Seconds, Field(gt=0)] = parse_duration("10s")
    host_stale_after: Annotated[Seconds, Field(gt=0)] = parse_duration("60s")

    @model_validator(mode="after")
    def _stale_after_reports(self) -> FleetSettings:
        if self.host_stale_after < 2 * self.report_every:
            raise _field_errors(type(self).__name__, [(("host_stale_after",), (
                f"must be at least twice report_every ({self.report_every:g}s), or one late "
                "report would call a live host stale"))])
        return self


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
    api: ApiSettings = Field(default_factory=ApiSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    fleet: FleetSettings = Field(default_factory=FleetSettings)

    @model_validator(mode="after")
    def _check_job_graph(self) -> Config:
        issues = _job_graph_issues(self.jobs, self.host)
        if self.store.url is None:
            for name, job in self.jobs.items():
                for dep in job.after:
                    if "@" in dep and split_dep(dep, self.host)[1] is not None:
                        issues.append((("jobs", name, "after"), (
                            f'"{dep}" names a job on another host: that needs the shared history '
                            '([store] url = "postgresql+psycopg://...")')))
        if issues:
            raise _JobGraphError(issues)
        return self

    @property
    def host(self) -> str:
        """This daemon's identity in the history (`[supervisor] host`, default the hostname)."""
        return self.supervisor.host or _default_host()

    @property
    def store_url(self) -> str:
        """The history's SQLAlchemy URL (secret: may hold a password). Raises EnvError for an
        unset "${VAR}" in it, ValueError for a URL proofwatch does not speak."""
        if self.store.url is None:
            return f"sqlite:///{self.history_db}"
        from supervisor._config_check import expand_env  # "${VAR}" (a password) expands here

        url = expand_env({"store.url": self.store.url.get_secret_value()}, os.environ)["store.url"]
        if problem := store_url_problem(url):
            raise ValueError(f"store.url: {problem}")
        return url

    @property
    def shared_store(self) -> bool:
        """Whether the history is a store named in [store] (shared by a fleet), not state_dir's."""
        return self.store.url is not None

    @property
    def outbox_db(self) -> Path:
        """The notification outbox: local to the host always, so alerts go out while a shared
        store is unreachable (in history.db itself when that is the local store)."""
        return self.state_dir / ("outbox.db" if self.shared_store else "history.db")

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


def _default_host() -> str:
    import socket

    return socket.gethostname() or "localhost"


def split_dep(dep: str, own_host: str) -> tuple[str, str | None]:
    """An `after` entry as (job, host): host None for a job of this daemon ("job" or
    "job@<own host>"), else the other host's name ("job@host")."""
    job, at, host = dep.partition("@")
    return (job, None) if not at or host == own_host else (job, host)


def _job_graph_issues(jobs: Mapping[str, JobSettings], own_host: str) -> list[tuple[_Loc, str]]:
    issues: list[tuple[_Loc, str]] = []
    for name, job in jobs.items():
        if not _JOB_NAME.fullmatch(name):
            issues.append((("jobs", name), 'bad job name (use letters, digits, "_", "." and "-", '
                                           "starting with a letter or digit)"))
        for entry in job.after:
            dep, host = split_dep(entry, own_host)
            if host is not None:
                if not _JOB_NAME.fullmatch(dep) or not _HOST_NAME.fullmatch(host):
                    issues.append((("jobs", name, "after"), f'"{entry}" is not "job" or "job@host"'))
                continue
            if dep not in jobs:
                defined = ", ".join(sorted(n for n in jobs if n != name)) or "none"
                issues.append((("jobs", name, "after"), f'unknown job "{dep}" (defined: {defined})'))
    for cycle in _after_cycles(jobs, own_host):
        issues.append((("jobs", cycle[0], "after"), '"after" forms a cycle: ' + " -> ".join(cycle)))
    return issues


def _after_cycles(jobs: Mapping[str, JobSettings], own_host: str) -> list[list[str]]:
    cycles: list[list[str]] = []
    done: set[str] = set()
    stack: list[str] = []

    def visit(name: str) -> None:
        stack.append(name)
        for entry in jobs[name].after:
            dep = entry.partition("@")[0] if entry.partition("@")[2] in ("", own_host) else entry
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
