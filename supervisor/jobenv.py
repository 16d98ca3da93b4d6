"""The daemon's secrets (config values typed SecretStr) and what a job's environment holds.

A job starts from the daemon's environment plus its own `env` table, minus the daemon's
secrets: every variable a secret config value refers to (`token = "${PROOFWATCH_API_TOKEN}"`),
every variable whose value *is* a secret, and every name secrets go by (`*TOKEN*`,
`*SECRET*`, `*PASSWORD*`, `*API_KEY*`, `*ACCESS_KEY*`, ...). A job gets one of them only when its own
`env` table names it, as a key or in a `${VAR}` reference. Pure: no I/O, no clock.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, SecretStr

from supervisor.config import _REF, Config, EnvError, _dotted, expand_env

__all__ = ["SECRET_NAME", "config_secrets", "job_environment", "secret_refs", "secret_values"]

# Names secrets go by (the daemon's own, or one meant for a single job, e.g. ODDS_API_KEY in the
# daemon's EnvironmentFile): a job gets one only when its `env` table names it.
SECRET_NAME = re.compile(r"\w*(TOKEN|SECRET|PASSWORD|PASSWD|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|CREDENTIAL)\w*",
                         re.IGNORECASE)
_MIN_SECRET = 6  # shorter values ("1", "true") are no evidence that a variable holds a secret
# the daemon's own systemd channel: a job must not report for the daemon (or ping its watchdog)
DAEMON_ONLY = frozenset({"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"})
_last: tuple[Config, list[tuple[str, str]]] | None = None  # config_secrets of the latest config


def config_secrets(config: Config) -> list[tuple[str, str]]:
    """(dotted key, value as written) of every SecretStr in the config, in field order."""
    found: list[tuple[str, str]] = []

    def walk(value: Any, loc: tuple[str | int, ...]) -> None:
        if isinstance(value, SecretStr):
            found.append((_dotted(loc), value.get_secret_value()))
        elif isinstance(value, BaseModel):
            for name in type(value).model_fields:
                walk(getattr(value, name), (*loc, name))
        elif isinstance(value, Mapping):
            for key, item in value.items():
                walk(item, (*loc, str(key)))
        elif isinstance(value, (list, tuple)):
            for index, item in enumerate(value):
                walk(item, (*loc, index))

    walk(config, ())
    return found


def _refs(text: str) -> set[str]:
    return {match[1] for match in _REF.finditer(text) if match[1]}


def _secrets_of(config: Config) -> list[tuple[str, str]]:
    """config_secrets, walked once per config (not once per spawn of each of N jobs)."""
    global _last
    if _last is None or _last[0] is not config:
        _last = (config, config_secrets(config))
    return _last[1]


def secret_refs(config: Config) -> frozenset[str]:
    """The environment variables that secret config values refer to (`${VAR}`, `${VAR:-x}`)."""
    return frozenset(var for _, raw in _secrets_of(config) for var in _refs(raw))


def secret_values(config: Config, environ: Mapping[str, str]) -> frozenset[str]:
    """What the secrets stand for in `environ`: each expanded value and each referenced
    variable's own value (empty and unresolvable ones left out)."""
    values: set[str] = set()
    for _, raw in _secrets_of(config):
        try:
            values.add(expand_env({"v": raw}, environ)["v"])
        except EnvError:
            pass  # an unset variable: nothing to hide (the feature using it says so)
        values.update(environ[var] for var in _refs(raw) if environ.get(var))
    return frozenset(v for v in values if v)


def job_environment(config: Config, job_name: str, base_env: Mapping[str, str]) -> dict[str, str]:
    """`base_env` without the daemon's secrets, plus the job's `env` table expanded against
    `base_env`; raise EnvError when the table refers to an unset variable with no default."""
    js = config.jobs[job_name]
    named = set(js.env) | {var for value in js.env.values() for var in _refs(value)}
    hidden = {v for v in secret_values(config, base_env) if len(v) >= _MIN_SECRET}
    refs = secret_refs(config)
    env = {key: value for key, value in base_env.items()
           if key in named or not (key in refs or key in DAEMON_ONLY or SECRET_NAME.fullmatch(key)
                                   or value in hidden)}
    env.update(expand_env(js.env, base_env))
    return env
