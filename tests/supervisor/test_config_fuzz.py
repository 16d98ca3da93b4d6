"""Property-based fuzzing of config.toml (issue 11): a valid config, mutated (unknown keys, wrong
types, bad durations, cron and after-graphs, unknown kinds) and sometimes damaged as text
(invalid TOML, non-UTF-8), loads into a `Config` or fails with a `ConfigError` whose every
problem names its key path (and line); never another exception. `proofwatch check` says the
same on stderr with exit code 2 and no traceback."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import BaseModel

import supervisor.config as config_module
from supervisor.config import Config, ConfigError, check_config, load_config
from tests._fuzz import fuzz_settings

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
FILE_LEVEL = ("invalid TOML: ", "is not UTF-8 text")

BASE: dict[str, Any] = {
    "supervisor": {"state_dir": "var", "data_dir": "data", "log_max_bytes": "10MB", "rescan_every": "5s"},
    "defaults": {"stall_after": "20m", "startup_grace": "60s"},
    "health": {"interval": "10s", "cpu_temp_max": 85, "mounts": ["/"],
               "checks": [{"name": "web", "kind": "http", "url": "http://127.0.0.1:8080/"}]},
    "alerts": {"repeat_every": "1h", "sinks": [{"kind": "file", "path": "var/n.jsonl"}]},
    "api": {"port": 8765},
    "jobs": {
        "feed": {"kind": "service", "command": ["python", "-m", "feed"], "max_restarts": 4},
        "build": {"kind": "task", "command": "python -m build", "after": ["feed"], "max_runtime": "30m",
                  "env": {"TOKEN": "${TOKEN:-x}"},
                  "proofs": [{"path": "out.json", "kind": "json", "required_keys": ["a.b"]},
                             {"kind": "command", "command": ["true"], "timeout": "10s"}]},
        "nightly": {"command": ["true"], "schedule": "0 3 * * *", "not_before": date(2026, 1, 1)},
    },
}

# --- writing TOML ------------------------------------------------------------------------------

def _key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else _string(key)


def _string(text: str) -> str:
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return {"nan": "nan", "inf": "inf", "-inf": "-inf"}.get(str(value), repr(value))
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    assert isinstance(value, dict)
    return "{" + ", ".join(f"{_key(str(k))} = {_value(v)}" for k, v in value.items()) + "}"


def to_toml(doc: dict[str, Any], headers: bool) -> str:
    """TOML for `doc`: tables as [headers] and lists of tables as [[arrays]] (or all inline)."""
    lines: list[str] = []

    def table(path: list[str], body: dict[str, Any], array: bool = False) -> None:
        if path:
            dotted = ".".join(_key(p) for p in path)
            lines.append(f"[[{dotted}]]" if array else f"[{dotted}]")
        nested = []
        for k, v in body.items():
            if headers and not array and isinstance(v, dict) and v:
                nested.append((k, v, False))
            elif headers and not array and isinstance(v, list) and v and all(isinstance(i, dict) for i in v):
                nested.append((k, v, True))
            else:
                lines.append(f"{_key(str(k))} = {_value(v)}")
        for k, v, is_array in nested:
            for item in (v if is_array else [v]):
                table([*path, str(k)], item, is_array)

    table([], doc)
    return "\n".join(lines) + "\n"


# --- mutating a valid config -------------------------------------------------------------------

TEXT = st.text(max_size=20) | st.sampled_from(["", " ", "\x00", "\u2028", "../..", "\ufeff", "x" * 300])
DURATIONS = st.sampled_from(["20m", "0s", "1h30m", "250ms", "20 minutes", "5", "-1s", "1m1m", "30m1h", "",
                             "36500d", "36501d", "99999999999999d", "9" * 400 + "s", "1.5h", "١٢s"])
CRON = st.sampled_from(["0 3 * * *", "*/15 * * * *", "@hourly", "@reboot", "0 0 31 2 *", "61 * * * *",
                        "*/0 * * * *", "*/" + "9" * 5000 + " * * * *", "* * * *", "L W # ? *", "0 0 * * 8",
                        "1-" + "9" * 50 + " * * * *", "\u00a0* * * * *", ""])
NUMBERS = st.one_of(st.integers(-(2**70), 2**70), st.floats(), st.sampled_from([10**18, 10**18 + 1, 10**40, 10**400, -(10**400)]))
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, TEXT, DURATIONS, CRON,
                    st.datetimes(timezones=st.none() | st.just(timezone.utc)), st.dates(), st.times())
VALUES = st.recursive(SCALARS.filter(lambda v: v is not None),
                      lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
                      max_leaves=8)
KEYS = st.sampled_from(["kind", "command", "after", "schedule", "stall_after", "startup_grace", "env",
                        "proofs", "max_restarts", "start", "cwd", "not_before", "on_stall", "user",
                        "min_count", "min_bytes", "path", "contains", "url", "timeout", "listen", "token",
                        "port", "sinks", "checks", "state_dir", "log_max_bytes", "recent_runs",
                        "log_backups", "interval", "jobs", "defaults", "for_samples"]) | TEXT
SPECIAL = {
    "after": st.lists(st.sampled_from(["feed", "build", "nightly", "nosuch", ""]), max_size=3),
    "kind": st.sampled_from(["service", "task", "builder", "cron", "file", "png", "command", "http",
                             "git", "webhook", "apprise", "tcp", "systemd", "nope"]),
    "schedule": CRON,
    "contains": st.sampled_from(["^ok", "(?", "a{99999999999}", "(" * 3000 + ")" * 3000, "[[a]", "\\"]),
    "command": st.one_of(st.sampled_from(["", "   ", "'unclosed", "python -m x", "a\x00b"]),
                         st.lists(TEXT, max_size=3)),
}


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


@st.composite
def mutated_configs(draw: st.DrawFn) -> dict[str, Any]:
    doc = json.loads(json.dumps(BASE, default=str))  # a deep copy (dates as text: still valid)
    doc["jobs"]["nightly"]["not_before"] = date(2026, 1, 1)
    for _ in range(draw(st.integers(0, 4))):
        paths = _paths(doc)
        where = draw(st.sampled_from(paths)) if paths else ()
        parent: Any = doc
        for part in where[:-1]:
            parent = parent[part]
        action = draw(st.sampled_from(["set", "set", "add", "delete", "rename"]))
        last = where[-1] if where else None
        if action == "delete" and last is not None:
            del parent[last]
        elif action == "rename" and isinstance(last, str):
            parent[draw(st.sampled_from(["feed", "build", "job name", "a.b", "-x", "ok_2"]) | TEXT)] = parent.pop(last)
        elif action == "add" and isinstance(parent, dict):
            key = draw(KEYS)
            parent[key] = draw(SPECIAL.get(key, VALUES))
        elif last is not None:
            parent[last] = draw(SPECIAL.get(str(last), VALUES))
    return doc


@st.composite
def config_bytes(draw: st.DrawFn) -> bytes:
    text = to_toml(draw(mutated_configs()), headers=draw(st.booleans()))
    raw = text.encode()
    damage = draw(st.sampled_from(["none"] * 6 + ["truncate", "splice", "latin1", "nest", "bigint", "dup"]))
    if damage == "truncate":
        raw = raw[:draw(st.integers(0, len(raw)))]
    elif damage == "splice":
        at = draw(st.integers(0, len(raw)))
        raw = raw[:at] + draw(st.binary(min_size=1, max_size=6) | st.sampled_from([b"[", b"]]", b"=", b'"', b"\n[jobs]\n"])) + raw[at:]
    elif damage == "latin1":
        raw = raw.replace(b"\n", "\n# caf\u00e9\n".encode("latin-1"), 1)
    elif damage == "nest":
        raw += b"deep = " + b"[" * 3000 + b"]" * 3000 + b"\n"
    elif damage == "bigint":
        raw = b"[supervisor]\nlog_backups = " + b"1" * 5000 + b"\n" + raw
    elif damage == "dup":
        lines = raw.splitlines(keepends=True)
        raw += lines[draw(st.integers(0, len(lines) - 1))] if lines else b""
    return raw


# --- the properties ----------------------------------------------------------------------------

def _durations_and_ints(model: BaseModel, where: str) -> list[tuple[str, Any, bool]]:
    """(key, value, is_duration) of every number in a loaded config."""
    out = []
    for name, info in type(model).model_fields.items():
        value = getattr(model, name)
        is_duration = any(getattr(m, "func", None) is config_module._to_seconds for m in info.metadata) or \
            "_to_seconds" in repr(info.annotation)
        items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else [(None, value)]
        for key, item in items:
            at = f"{where}.{name}" + ("" if key is None else f"[{key}]")
            if isinstance(item, BaseModel):
                out += _durations_and_ints(item, at)
            elif isinstance(item, (int, float)) and not isinstance(item, bool):
                out.append((at, item, is_duration))
    return out


def _check_usable(config: Config) -> None:
    """A config that loads can be used: every duration can be added to a date, every integer
    fits SQLite, and the environment check runs."""
    for key, value, is_duration in _durations_and_ints(config, "config"):
        if is_duration:
            assert T0 - timedelta(seconds=value) <= T0 + timedelta(seconds=value), key  # no OverflowError
        assert -(2**63) <= value < 2**63 or isinstance(value, float), key
    check_config(config, {"PATH": os.defpath})
    for name in config.jobs:
        config.job_cwd(name)


def _check_error(error: ConfigError, raw: bytes) -> None:
    assert error.problems, "a ConfigError with no problem in it"
    lines = raw.count(b"\n") + 1
    for problem in error.problems:
        assert problem.message and "\n" not in problem.message, problem
        assert problem.key or problem.message.startswith(FILE_LEVEL), problem
        assert problem.line is None or 1 <= problem.line <= lines, problem
        assert len(problem.message) < 1000, problem
    assert "Traceback" not in str(error)


def _load(tmp_path: Path, raw: bytes) -> Config | ConfigError:
    path = tmp_path / "config.toml"
    path.write_bytes(raw)
    try:
        return load_config(path)
    except ConfigError as exc:
        return exc


# Found by this test: each crashed load_config, `proofwatch check` or the daemon with a traceback.
REGRESSIONS = {
    "deep-nesting": b"a = " + b"[" * 5000 + b"]" * 5000 + b"\n",  # RecursionError
    "huge-int": b"[supervisor]\nlog_backups = " + b"9" * 5000 + b"\n",  # ValueError: 4300 digits
    "infinite-size": b'[supervisor]\nlog_max_bytes = "' + b"9" * 400 + b'TB"\n',  # OverflowError
    "huge-regex-repeat": b'[jobs.x]\ncommand = "true"\n[[jobs.x.proofs]]\npath = "a"\nkind = "text"\n'
                         b'contains = "a{99999999999}"\n',  # OverflowError from re.compile
    "deep-regex": b'[jobs.x]\ncommand = "true"\n[[jobs.x.proofs]]\npath = "a"\nkind = "text"\ncontains = "'
                  + b"(" * 5000 + b")" * 5000 + b'"\n',  # RecursionError from re.compile
    "huge-cron-step": b'[jobs.x]\ncommand = "true"\nschedule = "*/' + b"9" * 5000 + b' * * * *"\n',
    "endless-duration": b'[jobs.x]\ncommand = "true"\nstall_after = "99999999999999d"\n',  # OverflowError later
    "huge-count": b"[supervisor]\nrecent_runs = 99999999999999999999\n",  # OverflowError in a deque
    "nul-in-a-path": b'[jobs.x]\ncommand = ["tr\\u0000ue"]\n',  # ValueError when spawned
    "after-from-defaults": b'[defaults]\nafter = ["y"]\n[jobs.x]\ncommand = "true"\n',  # no problem named
}


@fuzz_settings(250)
@given(raw=config_bytes())
@example(raw=to_toml(BASE, headers=True).encode())
@example(raw=REGRESSIONS["deep-nesting"])
@example(raw=REGRESSIONS["huge-int"])
@example(raw=REGRESSIONS["infinite-size"])
@example(raw=REGRESSIONS["huge-regex-repeat"])
@example(raw=REGRESSIONS["deep-regex"])
@example(raw=REGRESSIONS["huge-cron-step"])
@example(raw=REGRESSIONS["endless-duration"])
@example(raw=REGRESSIONS["huge-count"])
@example(raw=REGRESSIONS["nul-in-a-path"])
@example(raw=REGRESSIONS["after-from-defaults"])
def test_a_mutated_config_loads_or_fails_with_problems_naming_key_and_line(tmp_path: Path, raw: bytes) -> None:
    got = _load(tmp_path, raw)
    if isinstance(got, ConfigError):
        _check_error(got, raw)
    else:
        _check_usable(got)


def test_the_base_config_is_valid(tmp_path: Path) -> None:
    for headers in (True, False):
        config = _load(tmp_path, to_toml(BASE, headers).encode())
        assert isinstance(config, Config), config
        assert sorted(config.jobs) == ["build", "feed", "nightly"]


EXPECTED = {
    "deep-nesting": "invalid TOML: tables or arrays nested too deeply",
    "huge-int": ":2: invalid TOML: a number with thousands of digits",
    "infinite-size": ':2: supervisor.log_max_bytes: "999',
    "huge-regex-repeat": ':6: jobs.x.proofs[0].contains: "a{99999999999}" is not a valid regex '
                         "(the repetition number is too large)",
    "deep-regex": "is not a valid regex (nested too deeply)",
    "huge-cron-step": ":3: jobs.x.schedule: \"*/999999999999999999999999999999999999999999999999999999... "
                      "is not a cron expression (minute step /99999999 is outside 1-60)",
    "endless-duration": ':3: jobs.x.stall_after: "99999999999999d" is too long (at most "36500d", 100 years)',
    "huge-count": ":2: supervisor.recent_runs: must be at most 1e+18, got 99999999999999999999",
    "nul-in-a-path": ':2: jobs.x.command[0]: contains a NUL character ("\\u0000")',
    "after-from-defaults": ':3: jobs.x.after: unknown job "y" (defined: none)',
}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_regressions_found_by_fuzzing_get_one_clear_line(tmp_path: Path, name: str) -> None:
    expected = EXPECTED[name]
    got = _load(tmp_path, REGRESSIONS[name])
    assert isinstance(got, ConfigError)
    assert len(got.problems) == 1 and expected in str(got), str(got)


def test_proofwatch_check_reports_the_nastiest_configs_with_exit_2_and_no_traceback(tmp_path: Path) -> None:
    cases = {**REGRESSIONS, "not-utf8": b"[jobs.x]\ncommand = \"caf\xe9\"\n",
             "unknown-kind": b'[jobs.x]\ncommand = "true"\nkind = "builder"\n',
             "cycle": b'[jobs.a]\ncommand = "true"\nafter = ["b"]\n[jobs.b]\ncommand = "true"\nafter = ["a"]\n'}
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROOFWATCH_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])  # this tree, whatever is installed
    children = {}
    for name, raw in cases.items():
        (tmp_path / f"{name}.toml").write_bytes(raw)
        children[name] = subprocess.Popen(
            [sys.executable, "-m", "supervisor.cli", "check", "--config", f"{name}.toml"],
            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for name, child in children.items():
        out, err = child.communicate(timeout=60)
        assert child.returncode == 2, (name, out, err)
        assert "Traceback" not in out + err, (name, err)
        lines = err.splitlines()
        assert lines and all(line.startswith(f"{name}.toml") for line in lines), (name, err)
