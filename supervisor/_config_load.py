"""Loading config.toml: TOML -> merged [defaults] -> `Config`, with every pydantic error put
in plain words at the file, line and key where it was written. Re-exported by supervisor.config.
"""

from __future__ import annotations

import os
import re
import tomllib
import types
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from supervisor.config import (Config, ConfigError, ConfigProblem, JobSettings, _JobGraphError, unknown_key,
                               _Loc, _dotted, _show)

__all__ = ["load_config"]

_TOP_KEYS = ("supervisor", "defaults", "health", "alerts", "jobs", "api", "store", "fleet")


def load_config(path: str | Path) -> Config:
    """Read, merge and validate config.toml; raise ConfigError listing every problem."""
    given = Path(path)
    text = _read_text(given)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(given, [_syntax_problem(exc, text)]) from None
    except RecursionError:
        raise ConfigError(given, [ConfigProblem("", "invalid TOML: tables or arrays nested too deeply")]) from None
    except ValueError:  # an integer of more than 4300 digits
        long = re.search(r"[0-9_]{4300}", text)
        line = None if long is None else text.count("\n", 0, long.start()) + 1
        raise ConfigError(given, [ConfigProblem("", "invalid TOML: a number with thousands of digits", line)]) from None
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
    line = None if match is None else int(match[1]) if match[1] else max(1, len(text.rstrip("\n").split("\n")))
    detail = _AT.sub("", message)
    return ConfigProblem("", f"invalid TOML: {detail[:1].lower()}{detail[1:]}", line)


def _validate(raw: dict[str, Any], path: Path) -> tuple[Config | None, list[tuple[_Loc, str]]]:
    issues = _nul_issues(raw, ())
    data: dict[str, Any] = {"path": path, "base_dir": path.parent}
    for key, value in raw.items():
        if key not in _TOP_KEYS:
            issues.append(((key,), unknown_key(key, _TOP_KEYS)))
        elif key != "defaults":
            data[key] = value
    defaults = raw.get("defaults", {})
    if not isinstance(defaults, dict):
        issues.append((("defaults",), f"expected a table, got {_show(defaults)}"))
        defaults = {}
    defaults_issues = _defaults_issues(defaults)
    issues += defaults_issues
    reported = {loc[1] for loc, _ in defaults_issues if len(loc) > 1}  # defaults.KEY already said
    if isinstance(data.get("jobs"), dict):
        data["jobs"] = {name: _merge(defaults, job) for name, job in data["jobs"].items()}
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raw_jobs = raw["jobs"] if isinstance(raw.get("jobs"), dict) else {}
        bad_defaults = {k: v for k, v in defaults.items() if k in reported}
        issues += [(loc, msg) for loc, msg in _messages(exc, Config)
                   if not _from_defaults(loc, raw_jobs, bad_defaults)]
        return None, issues
    return (None if issues else config), issues


def _nul_issues(value: object, loc: _Loc) -> list[tuple[_Loc, str]]:
    """NUL characters ("\\u0000"): valid TOML, but no path, argv or environment can hold one."""
    nul = 'contains a NUL character ("\\u0000")'
    if isinstance(value, str):
        return [(loc, nul)] if "\0" in value else []
    items: list[tuple[Any, Any]] = (list(value.items()) if isinstance(value, dict)
                                    else list(enumerate(value)) if isinstance(value, list) else [])
    issues: list[tuple[_Loc, str]] = []
    for key, item in items:
        if isinstance(key, str) and "\0" in key:
            issues.append(((*loc, key), f"the key {nul}"))
        issues += _nul_issues(item, (*loc, key))
    return issues


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
        return unknown_key(str(loc[-1]), known)
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
    for number, line in enumerate(text.split("\n"), start=1):  # not splitlines: U+2028 ends no TOML line
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


