"""config.toml loading, validation messages, env expansion, checks, and duration text."""

from __future__ import annotations

import os
import stat
import sys
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Literal

import pytest
from pydantic import ValidationError

from supervisor.config import (
    CheckFinding,
    Config,
    ConfigError,
    EnvError,
    JobSettings,
    check_config,
    expand_env,
    load_config,
    resolve_command,
)
from supervisor.durations import format_duration, parse_duration


def write_config(directory: Path, text: str, name: str = "config.toml") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> ConfigError:
    write_config(tmp_path, text)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_config("config.toml")
    return info.value


def load(tmp_path: Path, text: str) -> Config:
    return load_config(write_config(tmp_path, text))


# --- durations -------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "seconds"), [
    ("250ms", 0.25), ("90s", 90.0), ("20m", 1200.0), ("2h", 7200.0), ("1d", 86400.0),
    ("1h30m", 5400.0), ("1.5s", 1.5), ("0s", 0.0), ("1d2h3m4s5ms", 93784.005), ("2m30s", 150.0),
], ids=lambda v: str(v))
def test_parse_duration_accepts_short_units(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(("text", "message"), [
    ("20 minutes", '"20 minutes" is not a duration (use e.g. "20m")'),
    ("5", '"5" is not a duration (use e.g. "5s")'),
    ("-5m", '"-5m" is not a duration (use e.g. "5m")'),
    ("1.5 hours", '"1.5 hours" is not a duration (use e.g. "1.5h")'),
    ("90 sec", '"90 sec" is not a duration (use e.g. "90s")'),
    ("soon", '"soon" is not a duration (use e.g. "20m")'),
    ("", '"" is not a duration (use e.g. "20m")'),
    ("20 m", '"20 m" is not a duration (use e.g. "20m")'),
    (" 20m", '" 20m" is not a duration (use e.g. "20m")'),
    ("20M", '"20M" is not a duration (use e.g. "20m")'),
    ("1.5", '"1.5" is not a duration (use e.g. "1.5s")'),
    (".5s", '".5s" is not a duration (use e.g. "20m")'),
    ("30m1h", '"30m1h" is not a duration (use e.g. "20m")'),
    ("1m1m", '"1m1m" is not a duration (use e.g. "20m")'),
    ("1w", '"1w" is not a duration (use e.g. "20m")'),
], ids=["words", "bare-number", "negative", "decimal-words", "sec", "no-number", "empty",
        "space-before-unit", "leading-space", "upper-case", "bare-decimal", "no-leading-digit",
        "units-out-of-order", "unit-repeated", "weeks"])
def test_parse_duration_rejects_with_a_fix(text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_duration(text)
    assert str(info.value) == message


@pytest.mark.parametrize(("seconds", "text"), [
    (0.25, "250ms"), (0.0, "0s"), (1.5, "1.5s"), (12.345, "12.345s"), (30, "30s"),
    (90, "1m30s"), (1200, "20m"), (7200, "2h"), (93600, "1d2h"), (93784, "1d2h3m4s"),
    (59.9996, "1m"), (1213.318, "20m13s"), (-5, "-5s"), (0.0004, "0s"),
], ids=lambda v: str(v))
def test_format_duration_gives_short_text(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize("text", ["250ms", "1.5s", "45s", "1m30s", "20m", "2h", "1d2h", "1d2h3m4s"])
def test_format_duration_round_trips_through_parse(text: str) -> None:
    assert format_duration(parse_duration(text)) == text


# --- one problem, one exact line -----------------------------------------------------------------

ARB = '[jobs.arb]\ncommand = ["python", "-m", "workers.arb"]\n'
TWO_JOBS = '[jobs.emulator]\ncommand = "true"\n[jobs.ingestor]\ncommand = "true"\n'

BAD_CONFIGS = [
    pytest.param(ARB + 'stall_after = "20 minutes"\n',
                 'config.toml:3: jobs.arb.stall_after: "20 minutes" is not a duration (use e.g. "20m")',
                 id="duration-words"),
    pytest.param(ARB + "stall_after = 5\n",
                 'config.toml:3: jobs.arb.stall_after: 5 is not a duration (use e.g. "5s")',
                 id="duration-toml-number"),
    pytest.param(ARB + 'stall_aftr = "5m"\n',
                 'config.toml:3: jobs.arb.stall_aftr: unknown key (did you mean "stall_after"?)',
                 id="unknown-key-suggestion"),
    pytest.param('[jobs.arb]\nstall_after = "5m"\n',
                 "config.toml:1: jobs.arb.command: is required", id="missing-command"),
    pytest.param(ARB + 'on_stall = "sometimes"\n',
                 'config.toml:3: jobs.arb.on_stall: "sometimes" is not one of: alert, restart, kill',
                 id="bad-literal"),
    pytest.param(ARB + 'schedule = "*/61 * * * *"\n',
                 'config.toml:3: jobs.arb.schedule: "*/61 * * * *" is not a cron expression '
                 "(minute step /61 is outside 1-60)", id="cron-step-too-big"),
    pytest.param(ARB + 'schedule = "61 * * * *"\n',
                 'config.toml:3: jobs.arb.schedule: "61 * * * *" is not a cron expression '
                 '(minute field "61" is not valid (values 0-59))', id="cron-out-of-range"),
    pytest.param(ARB + 'schedule = "* * * *"\n',
                 'config.toml:3: jobs.arb.schedule: "* * * *" is not a cron expression (expected 5 '
                 "fields (minute hour day month weekday) or 6 (plus seconds), got 4)",
                 id="cron-field-count"),
    pytest.param(ARB + 'schedule = "0 0 31 2 *"\n',
                 'config.toml:3: jobs.arb.schedule: "0 0 31 2 *" is not a cron expression '
                 "(it never matches a real date)", id="cron-never"),
    pytest.param(TWO_JOBS + ARB + 'after = ["emulatr"]\n',
                 'config.toml:7: jobs.arb.after: unknown job "emulatr" (defined: emulator, ingestor)',
                 id="unknown-after-job"),
    pytest.param('[jobs.a]\ncommand = "x"\nafter = ["b"]\n[jobs.b]\ncommand = "x"\nafter = ["a"]\n',
                 'config.toml:3: jobs.a.after: "after" forms a cycle: a -> b -> a', id="after-cycle"),
    pytest.param('[jobs.a]\ncommand = "x"\nafter = ["a"]\n',
                 'config.toml:3: jobs.a.after: "after" forms a cycle: a -> a', id="after-self"),
    pytest.param(ARB + "after = 3\n",
                 "config.toml:3: jobs.arb.after: expected a list of strings, got 3", id="type-list"),
    pytest.param(ARB + 'expected_load = ["qemu", 3]\n',
                 "config.toml:3: jobs.arb.expected_load[1]: expected a string, got 3", id="type-item"),
    pytest.param(ARB + 'max_restarts = "ten"\n',
                 'config.toml:3: jobs.arb.max_restarts: expected a whole number, got "ten"',
                 id="type-int"),
    pytest.param(ARB + "max_restarts = -1\n",
                 "config.toml:3: jobs.arb.max_restarts: must be at least 0, got -1", id="bound"),
    pytest.param(ARB + "env = { KEY = 3 }\n",
                 "config.toml:3: jobs.arb.env.KEY: expected a string, got 3", id="env-inline-type"),
    pytest.param(ARB + 'env = { KEY = "${1BAD}" }\n',
                 'config.toml:3: jobs.arb.env: env.KEY: "${1BAD}" has a malformed reference '
                 "(use ${NAME}, ${NAME:-default}, or $$ for a literal $)", id="env-bad-reference"),
    pytest.param('[jobs.arb]\ncommand = ""\n',
                 "config.toml:2: jobs.arb.command: must name a program to run (it is empty)",
                 id="command-empty"),
    pytest.param("[jobs.arb]\ncommand = \"python 'oops\"\n",
                 "config.toml:2: jobs.arb.command: \"python 'oops\" is not a valid command line "
                 "(no closing quotation)", id="command-unclosed-quote"),
    pytest.param('[jobs.arb]\ncommand = 3\n',
                 "config.toml:2: jobs.arb.command: expected a command line string or a list of "
                 "strings, got 3", id="command-type"),
    pytest.param(ARB + 'not_before = "next tuesday"\n',
                 'config.toml:3: jobs.arb.not_before: "next tuesday" is not a date-time '
                 '(use e.g. "2025-07-01T09:00")', id="not-before"),
    pytest.param('[jobs."bad name"]\ncommand = "x"\n',
                 'config.toml:1: jobs."bad name": bad job name (use letters, digits, "_", "." and '
                 '"-", starting with a letter or digit)', id="job-name"),
    pytest.param(ARB + '[[jobs.arb.proofs]]\npath = "a.json"\n[[jobs.arb.proofs]]\npath = "b"\n'
                 'kind = "jsn"\n',
                 'config.toml:7: jobs.arb.proofs[1].kind: "jsn" is not one of: file, text, log, '
                 "json, jsonl, png, jpeg, parquet, sqlite, command, http, git", id="proof-array-index"),
    pytest.param('[jobs]\narb.command = "x"\narb.on_stall = "never"\n',
                 'config.toml:3: jobs.arb.on_stall: "never" is not one of: alert, restart, kill',
                 id="dotted-key-line"),
    pytest.param('[jobs]\narb = { command = "x", kind = "daemon" }\n',
                 'config.toml:2: jobs.arb.kind: "daemon" is not one of: service, task',
                 id="inline-table-line"),
    pytest.param('[supervisor]\nstate_dri = "var"\n',
                 'config.toml:2: supervisor.state_dri: unknown key (did you mean "state_dir"?)',
                 id="supervisor-unknown-key"),
    pytest.param('[supervisor]\nlog_max_bytes = "10 megs"\n',
                 'config.toml:2: supervisor.log_max_bytes: "10 megs" is not a size '
                 '(use e.g. "10MB" or "512KiB")', id="bad-size"),
    pytest.param("[jobz.arb]\ncommand = 'x'\n",
                 'config.toml:1: jobz: unknown key (did you mean "jobs"?)', id="unknown-table"),
    pytest.param('path = "/elsewhere"\n',
                 "config.toml:1: path: unknown key (known keys: alerts, api, defaults, fleet, health, "
                 "jobs, store, supervisor)", id="reserved-top-key"),
    pytest.param('[health]\ndisk_max_pct = 150\n',
                 "config.toml:2: health.disk_max_pct: must be at most 100, got 150", id="health-pct"),
    pytest.param('[[alerts.sinks]]\nkind = "pager"\n',
                 'config.toml:2: alerts.sinks[0].kind: "pager" is not one of: webhook, command, '
                 "file, apprise", id="sink-kind"),
    pytest.param("defaults = 3\n", "config.toml:1: defaults: expected a table, got 3",
                 id="defaults-not-table"),
    pytest.param("[jobs]\narb = 3\n", "config.toml:2: jobs.arb: expected a table, got 3",
                 id="job-not-table"),
    pytest.param('[jobs.arb]\ncommand = "x"\nkind = "task"\nkind = "service"\n',
                 "config.toml:4: invalid TOML: cannot overwrite a value", id="toml-duplicate-key"),
    pytest.param('[jobs.arb]\ncommand = "x"\nstall_after\n',
                 "config.toml:3: invalid TOML: expected '=' after a key in a key/value pair",
                 id="toml-syntax"),
]


@pytest.mark.parametrize(("text", "expected"), BAD_CONFIGS)
def test_bad_config_gives_one_plain_line_with_file_line_and_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, expected: str
) -> None:
    error = config_error(tmp_path, monkeypatch, text)
    assert str(error) == expected
    assert error.path == Path("config.toml")
    assert len(error.problems) == 1
    for leak in ("pydantic", "https://", "Input should", "validation error", "Traceback"):
        assert leak not in str(error)


def test_problem_fields_carry_key_message_and_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    error = config_error(tmp_path, monkeypatch, ARB + 'stall_after = "20 minutes"\n')
    (problem,) = error.problems
    assert problem.key == "jobs.arb.stall_after"
    assert problem.message == '"20 minutes" is not a duration (use e.g. "20m")'
    assert problem.line == 3


def test_every_problem_is_listed_in_line_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = ('[jobs.b]\ncommand = "x"\non_stall = "never"\n'
            '[jobs.a]\ncommand = "x"\nstall_after = "soon"\nbogus = 1\n')
    error = config_error(tmp_path, monkeypatch, text)
    assert [(p.line, p.key) for p in error.problems] == [
        (3, "jobs.b.on_stall"), (6, "jobs.a.stall_after"), (7, "jobs.a.bogus")]
    assert str(error).count("\n") == 2


def test_bad_default_is_reported_once_under_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = '[defaults]\nstall_after = "20 minutes"\n' + TWO_JOBS
    error = config_error(tmp_path, monkeypatch, text)
    assert str(error) == (
        'config.toml:2: defaults.stall_after: "20 minutes" is not a duration (use e.g. "20m")')


def test_bad_default_is_reported_even_without_jobs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    error = config_error(tmp_path, monkeypatch, '[defaults]\non_stall = "nap"\n')
    assert str(error) == 'config.toml:2: defaults.on_stall: "nap" is not one of: alert, restart, kill'


def test_missing_file_says_how_to_create_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_config("missing.toml")
    assert str(info.value) == 'missing.toml: no such file (create one with "proofwatch init")'
    assert info.value.problems[0].line is None


def test_non_utf8_file_names_the_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "config.toml").write_bytes(b'[jobs.a]\ncommand = "\xff"\n')
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_config("config.toml")
    assert str(info.value) == "config.toml:2: is not UTF-8 text"


def test_unterminated_string_points_at_the_end_of_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    error = config_error(tmp_path, monkeypatch, '[jobs.a]\ncommand = "x\n')
    assert error.problems[0].line is not None
    assert error.problems[0].message.startswith("invalid TOML: ")


# --- valid configs ---------------------------------------------------------------------------------

FULL = """
[supervisor]
state_dir = "state"
log_max_bytes = "512KiB"

[defaults]
stall_after = "5m"
env = { SHARED = "1", LEVEL = "info" }

[health]
interval = "30s"
mounts = ["/", "/data"]

[[alerts.sinks]]
kind = "webhook"
url = "http://127.0.0.1:9999/hook"

[api]
port = 8765

[jobs.ingestor]
kind = "service"
command = "python -m workers.ingestor --feed 'local replay'"

[jobs.arb]
command = ["python3", "-m", "workers.arb"]
stall_after = "1m"
after = ["ingestor"]
env = { LEVEL = "debug" }
[[jobs.arb.proofs]]
path = "arbs.json"
kind = "json"
required_keys = ["opportunities"]
"""


def test_full_config_loads_with_defaults_merged_under_jobs(tmp_path: Path) -> None:
    config = load(tmp_path, FULL)
    ingestor, arb = config.jobs["ingestor"], config.jobs["arb"]
    assert ingestor.stall_after == 300.0
    assert arb.stall_after == 60.0
    assert ingestor.env == {"SHARED": "1", "LEVEL": "info"}
    assert arb.env == {"SHARED": "1", "LEVEL": "debug"}
    assert ingestor.command == ["python", "-m", "workers.ingestor", "--feed", "local replay"]
    assert arb.proofs[0].kind == "json"
    assert arb.proofs[0].required_keys == ["opportunities"]
    assert config.health.interval == 30.0
    assert config.health.mounts == ["/", "/data"]
    assert config.alerts.sinks[0].kind == "webhook"
    assert config.api.address == ("127.0.0.1", 8765)
    assert config.supervisor.log_max_bytes == 512 * 1024


def test_empty_config_gets_every_default(tmp_path: Path) -> None:
    config = load(tmp_path, "")
    assert config.jobs == {}
    assert config.supervisor.rescan_every == 5.0
    assert config.supervisor.status_min_interval == 1.0
    assert config.supervisor.log_max_bytes == 10_485_760
    assert config.health.cpu_temp_max == 85
    job = JobSettings(command=["x"])
    assert (job.stall_after, job.startup_grace, job.stop_grace, job.backoff_max) == (
        1200.0, 60.0, 10.0, 300.0)
    assert job.max_runtime is None


@pytest.mark.parametrize(("text", "size"), [
    ("1024", 1024), ("512KB", 512_000), ("512KiB", 524_288), ("10MB", 10_000_000),
    ("10MiB", 10_485_760), ("1GiB", 1_073_741_824), ("1.5kb", 1500), ("100 B", 100),
], ids=lambda v: str(v))
def test_log_max_bytes_accepts_size_strings(tmp_path: Path, text: str, size: int) -> None:
    config = load(tmp_path, f'[supervisor]\nlog_max_bytes = "{text}"\n')
    assert config.supervisor.log_max_bytes == size


@pytest.mark.parametrize(("value", "expected"), [
    ('"python -m x"', ["python", "-m", "x"]),
    ("\"sh -c 'echo hi; sleep 1'\"", ["sh", "-c", "echo hi; sleep 1"]),
    ('["python", "-m", "x y"]', ["python", "-m", "x y"]),
], ids=["string", "quoted-string", "list"])
def test_command_string_is_split_like_a_shell(tmp_path: Path, value: str, expected: list[str]) -> None:
    config = load(tmp_path, f"[jobs.a]\ncommand = {value}\n")
    assert config.jobs["a"].command == expected


@pytest.mark.parametrize(("start", "after", "schedule", "boots"), [
    (None, [], None, True),
    ("boot", [], None, True),
    ("manual", [], None, False),
    (None, ["b"], None, False),
    (None, [], "*/5 * * * *", False),
    ("boot", ["b"], None, True),
    ("boot", [], "*/5 * * * *", True),
    ("manual", ["b"], "0 3 * * *", False),
], ids=["default", "boot", "manual", "after", "schedule", "boot-and-after", "boot-and-schedule",
        "manual-with-triggers"])
def test_starts_at_boot(start: Literal["boot", "manual"] | None, after: list[str], schedule: str | None, boots: bool) -> None:
    job = JobSettings(command=["x"], start=start, after=after, schedule=schedule)
    assert job.starts_at_boot is boots


@pytest.mark.parametrize("expr", ["*/30 * * * *", "0 3 * * 1-5", "*/15 * * * * 30", "@daily",
                                  "0 0 29 2 *", "*/60 * * * *"])
def test_valid_schedules_are_accepted(expr: str) -> None:
    assert JobSettings(command=["x"], schedule=expr).schedule == expr


def test_paths_resolve_against_the_config_directory_not_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf_dir = tmp_path / "deploy"
    path = write_config(conf_dir, '[supervisor]\nstate_dir = "var"\ndata_dir = "../shared"\n'
                                  '[jobs.a]\ncommand = "x"\ncwd = "work"\n[jobs.b]\ncommand = "x"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    config = load_config(os.path.relpath(path, elsewhere))
    assert config.path == conf_dir / "config.toml"
    assert config.base_dir == conf_dir
    assert config.state_dir == conf_dir / "var"
    assert config.data_dir == conf_dir / "../shared"
    assert config.status_file == conf_dir / "var" / "status.json"
    assert config.runs_dir == conf_dir / "var" / "runs"
    assert config.history_db == conf_dir / "var" / "history.db"
    assert config.socket_path == conf_dir / "var" / "proofwatch.sock"
    assert config.alerts_log == conf_dir / "var" / "alerts.jsonl"
    assert config.job_cwd("a") == conf_dir / "work"
    assert config.job_cwd("b") == conf_dir


def test_absolute_paths_and_explicit_status_file_are_kept(tmp_path: Path) -> None:
    state = tmp_path / "abs-state"
    config = load(tmp_path / "c", f'[supervisor]\nstate_dir = "{state}"\nstatus_file = "out/s.json"\n')
    assert config.state_dir == state
    assert config.status_file == tmp_path / "c" / "out" / "s.json"
    assert config.runs_dir == state / "runs"


def test_not_before_forms(tmp_path: Path) -> None:
    config = load(tmp_path, "[jobs.naive]\ncommand = 'x'\nnot_before = 2030-07-01T09:00:00\n"
                            "[jobs.zoned]\ncommand = 'x'\nnot_before = '2030-07-01T09:00:00+02:00'\n"
                            "[jobs.day]\ncommand = 'x'\nnot_before = 2030-07-01\n")
    naive = config.jobs["naive"].not_before
    zoned = config.jobs["zoned"].not_before
    day = config.jobs["day"].not_before
    assert naive is not None and zoned is not None and day is not None
    assert naive.tzinfo is not None
    assert naive == datetime(2030, 7, 1, 9, 0).astimezone()
    assert zoned == datetime(2030, 7, 1, 7, 0, tzinfo=timezone.utc)
    assert day == datetime.combine(date(2030, 7, 1), datetime.min.time()).astimezone()


def test_models_are_frozen(tmp_path: Path) -> None:
    config = load(tmp_path, ARB)
    with pytest.raises(ValidationError):
        setattr(config.jobs["arb"], "stall_after", 1.0)


def test_seconds_accepts_timedelta_from_code_but_not_numbers() -> None:
    job = JobSettings.model_validate({"command": ["x"], "stall_after": timedelta(minutes=2)})
    assert job.stall_after == 120.0
    with pytest.raises(ValidationError, match="is not a duration"):
        JobSettings.model_validate({"command": ["x"], "stall_after": 5})


def test_config_built_in_code_still_checks_after_references(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match='unknown job "ghost"'):
        Config(path=tmp_path / "c.toml", base_dir=tmp_path,
               jobs={"a": JobSettings(command=["x"], after=["ghost"])})


# --- commands and environment ------------------------------------------------------------------

@pytest.mark.parametrize(("command", "expected"), [
    (["python", "-m", "x"], [sys.executable, "-m", "x"]),
    (["python3", "script.py"], [sys.executable, "script.py"]),
    (["python3.11", "-V"], ["python3.11", "-V"]),
    (["/usr/bin/python3", "-V"], ["/usr/bin/python3", "-V"]),
    (["bash", "python"], ["bash", "python"]),
    ([], []),
], ids=["python", "python3", "versioned", "absolute", "python-as-argument", "empty"])
def test_resolve_command(command: list[str], expected: list[str]) -> None:
    assert resolve_command(command) == expected


ENVIRON = {"HOME": "/home/op", "EMPTY": "", "KEY": "s3cret"}


@pytest.mark.parametrize(("value", "expected"), [
    ("${KEY}", "s3cret"),
    ("key=${KEY};home=${HOME}", "key=s3cret;home=/home/op"),
    ("${MISSING:-fallback}", "fallback"),
    ("${EMPTY:-fallback}", "fallback"),
    ("${KEY:-fallback}", "s3cret"),
    ("${MISSING:-}", ""),
    ("${EMPTY}", ""),
    ("price $$5", "price $5"),
    ("$${KEY}", "${KEY}"),
    ("lone $ and $KEY", "lone $ and $KEY"),
    ("plain", "plain"),
], ids=["var", "several", "default-unset", "default-empty", "default-set", "empty-default",
        "set-but-empty", "dollar-dollar", "escaped-reference", "no-braces", "plain"])
def test_expand_env(value: str, expected: str) -> None:
    assert expand_env({"X": value}, ENVIRON) == {"X": expected}


def test_expand_env_unset_variable_names_key_and_variable() -> None:
    with pytest.raises(EnvError) as info:
        expand_env({"OK": "${HOME}", "ODDS_API_KEY": "${ODDS_API_KEY}"}, ENVIRON)
    assert (info.value.key, info.value.var) == ("ODDS_API_KEY", "ODDS_API_KEY")
    assert str(info.value) == (
        "env.ODDS_API_KEY: ${ODDS_API_KEY} is not set in the supervisor's environment")
    assert isinstance(info.value, LookupError)


# --- check_config ------------------------------------------------------------------------------

def by_key(findings: list[CheckFinding]) -> dict[str, CheckFinding]:
    return {finding.key: finding for finding in findings}


def make_script(path: Path, executable: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexit 0\n")
    mode = path.stat().st_mode
    path.chmod(mode | stat.S_IXUSR if executable else mode & ~(stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH))


def test_check_config_passes_a_good_job(tmp_path: Path) -> None:
    config = load(tmp_path, '[jobs.good]\ncommand = "python -V"\nenv = { K = "${KEY}" }\n'
                            '[[jobs.good.proofs]]\npath = "out.txt"\n'
                            '[[alerts.sinks]]\nkind = "file"\npath = "alerts-out.jsonl"\n')
    findings = check_config(config, ENVIRON, euid=1000)  # a root daemon also warns about root
    assert [f for f in findings if f.level != "ok"] == []
    assert by_key(findings)["jobs.good.command"].message == f"runs {sys.executable}"
    assert by_key(findings)["supervisor.state_dir"].message == f"{tmp_path / 'var'} will be created"


@pytest.mark.parametrize(("job", "key", "message"), [
    ('command = "no-such-program-xyz"', "jobs.j.command", '"no-such-program-xyz" is not on PATH'),
    ('command = "./missing.sh"', "jobs.j.command", '"./missing.sh" not found'),
    ('command = "./plain.sh"', "jobs.j.command", "plain.sh is not executable"),
    ('command = "true"\ncwd = "nowhere"', "jobs.j.cwd", "is not an existing directory"),
    ('command = "true"\nenv = { ODDS = "${ODDS_API_KEY}" }', "jobs.j.env.ODDS",
     "${ODDS_API_KEY} is not set in the supervisor's environment"),
], ids=["not-on-path", "missing-script", "not-executable", "missing-cwd", "unset-env"])
def test_check_config_finds_errors(tmp_path: Path, job: str, key: str, message: str) -> None:
    make_script(tmp_path / "plain.sh", executable=False)
    config = load(tmp_path, f"[jobs.j]\n{job}\n")
    finding = by_key(check_config(config, ENVIRON))[key]
    assert finding.level == "error"
    assert message in finding.message


def test_check_config_finds_scripts_relative_to_the_job_cwd(tmp_path: Path) -> None:
    make_script(tmp_path / "jobs" / "run.sh", executable=True)
    config = load(tmp_path, '[jobs.j]\ncommand = "./run.sh"\ncwd = "jobs"\n')
    findings = by_key(check_config(config, ENVIRON))
    assert findings["jobs.j.command"] == CheckFinding("ok", "jobs.j.command",
                                                      f"runs {tmp_path / 'jobs' / './run.sh'}")
    assert findings["jobs.j.cwd"].level == "ok"


def test_check_config_uses_the_job_path_for_lookups(tmp_path: Path) -> None:
    make_script(tmp_path / "bin" / "mytool", executable=True)
    config = load(tmp_path, f'[jobs.j]\ncommand = "mytool"\nenv = {{ PATH = "{tmp_path / "bin"}" }}\n')
    assert by_key(check_config(config, ENVIRON))["jobs.j.command"].level == "ok"


def test_check_config_state_dir_blocked_by_a_file(tmp_path: Path) -> None:
    (tmp_path / "var").write_text("not a directory")
    config = load(tmp_path, "")
    finding = by_key(check_config(config, ENVIRON))["supervisor.state_dir"]
    assert finding.level == "error"
    assert finding.message == f"{tmp_path / 'var'} exists but is not a directory"


def test_check_config_warns_about_unproven_tasks_and_missing_sinks(tmp_path: Path) -> None:
    config = load(tmp_path, '[jobs.t]\ncommand = "true"\n[jobs.s]\nkind = "service"\ncommand = "true"\n')
    warnings = {f.key for f in check_config(config, ENVIRON, euid=1000) if f.level == "warning"}
    assert warnings == {"jobs.t.proofs", "alerts.sinks"}
