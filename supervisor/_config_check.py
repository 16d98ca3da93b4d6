"""Using a loaded config: command resolution, env expansion, and the environment checks of
`proofwatch check`. Re-exported by supervisor.config.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

from supervisor.config import _REF, CheckFinding, Config, EnvError, _cron_problem, _dotted

__all__ = ["check_config", "expand_env", "resolve_command"]


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
