"""A job's environment: the daemon's own, minus its secrets, plus the job's env table."""

from __future__ import annotations

from pathlib import Path

import pytest

from supervisor.config import Config, EnvError, load_config
from supervisor.jobenv import config_secrets, job_environment, secret_refs, secret_values

CONFIG = """
[supervisor]
deadman_url = "${DEADMAN_URL}"

[api]
listen = "127.0.0.1:0"
token = "${PROOFWATCH_API_TOKEN:-}"

[[alerts.sinks]]
kind = "webhook"
url = "https://hooks.example.com/services/${HOOK_TOKEN}"
secret = "${HOOK_SECRET}"

[jobs.plain]
command = "true"
heartbeat_token = "${PLAIN_HB_TOKEN}"

[jobs.needs_token]
command = "true"
env = { UPSTREAM_AUTH = "Bearer ${HOOK_TOKEN}", PROOFWATCH_API_TOKEN = "${PROOFWATCH_API_TOKEN}" }
"""

ENVIRON = {
    "PATH": "/usr/bin:/bin",
    "LANG": "C.UTF-8",
    "DEADMAN_URL": "https://hc-ping.example.com/deadman-uuid-1234",
    "PROOFWATCH_API_TOKEN": "api-token-0123456789",
    "HOOK_TOKEN": "hook-token-abcdef",
    "HOOK_SECRET": "hmac-secret-xyz123",
    "PLAIN_HB_TOKEN": "hb-token-42424242",
    "PROOFWATCH_HEARTBEAT_TOKEN": "remote-hb-token",  # a well-known name, unused by this config
    "PROOFWATCH_WEBHOOK_SECRET": "whsec-unused",
    "SAME_AS_API": "api-token-0123456789",  # the API token again, under another name
    "PROOFWATCH_CONFIG": "/etc/proofwatch/config.toml",  # not a secret
    "SHORT": "1",
    "ODDS_API_KEY": "sk-live-abcdef123456",  # meant for one job (which names it), not all
}


@pytest.fixture
def config(tmp_path: Path) -> Config:
    (tmp_path / "config.toml").write_text(CONFIG)
    return load_config(tmp_path / "config.toml")


def test_every_secretstr_in_the_config_is_found_with_its_key(config: Config) -> None:
    assert dict(config_secrets(config)) == {
        "supervisor.deadman_url": "${DEADMAN_URL}",
        "alerts.sinks[0].url": "https://hooks.example.com/services/${HOOK_TOKEN}",
        "alerts.sinks[0].secret": "${HOOK_SECRET}",
        "jobs.plain.heartbeat_token": "${PLAIN_HB_TOKEN}",
        "api.token": "${PROOFWATCH_API_TOKEN:-}",
    }
    assert secret_refs(config) == {"DEADMAN_URL", "HOOK_TOKEN", "HOOK_SECRET", "PLAIN_HB_TOKEN",
                                   "PROOFWATCH_API_TOKEN"}


def test_secret_values_are_the_expanded_values_and_the_variables_behind_them(config: Config) -> None:
    values = secret_values(config, ENVIRON)
    assert "https://hooks.example.com/services/hook-token-abcdef" in values
    assert {"hook-token-abcdef", "hmac-secret-xyz123", "api-token-0123456789", "hb-token-42424242",
            "https://hc-ping.example.com/deadman-uuid-1234"} <= values


def test_a_job_gets_none_of_the_daemons_secrets(config: Config) -> None:
    env = job_environment(config, "plain", ENVIRON)
    assert env == {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8",
                   "PROOFWATCH_CONFIG": "/etc/proofwatch/config.toml", "SHORT": "1"}


def test_a_job_gets_a_secret_its_env_table_names(config: Config) -> None:
    env = job_environment(config, "needs_token", ENVIRON)
    assert env["UPSTREAM_AUTH"] == "Bearer hook-token-abcdef"
    assert env["HOOK_TOKEN"] == "hook-token-abcdef"  # referenced by its env table: kept
    assert env["PROOFWATCH_API_TOKEN"] == "api-token-0123456789"  # named as a key
    for gone in ("DEADMAN_URL", "HOOK_SECRET", "PLAIN_HB_TOKEN", "PROOFWATCH_HEARTBEAT_TOKEN",
                 "PROOFWATCH_WEBHOOK_SECRET", "SAME_AS_API"):
        assert gone not in env


def test_without_secrets_in_the_config_only_names_secrets_go_by_are_dropped(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text('[jobs.x]\ncommand = "true"\n'
                                     '[jobs.arb]\ncommand = "true"\nenv = { ODDS_API_KEY = "${ODDS_API_KEY}" }\n')
    config = load_config(tmp_path / "c.toml")
    env = job_environment(config, "x", ENVIRON)
    assert set(ENVIRON) - set(env) == {"PROOFWATCH_API_TOKEN", "PROOFWATCH_HEARTBEAT_TOKEN",
                                       "PROOFWATCH_WEBHOOK_SECRET", "HOOK_TOKEN", "HOOK_SECRET",
                                       "PLAIN_HB_TOKEN", "ODDS_API_KEY"}
    assert job_environment(config, "arb", ENVIRON)["ODDS_API_KEY"] == "sk-live-abcdef123456"


def test_an_unset_variable_in_the_env_table_is_an_env_error(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text('[jobs.x]\ncommand = "true"\nenv = { A = "${PW_TEST_UNSET}" }\n')
    with pytest.raises(EnvError, match=r"env\.A: \$\{PW_TEST_UNSET\} is not set"):
        job_environment(load_config(tmp_path / "c.toml"), "x", ENVIRON)
