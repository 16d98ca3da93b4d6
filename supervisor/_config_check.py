"""Using a loaded config: command resolution, env expansion, and the environment checks of
`proofwatch check`. Re-exported by supervisor.config.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import shutil
import stat
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

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


def check_config(config: Config, environ: Mapping[str, str], *, euid: int | None = None) -> list[CheckFinding]:
    """Check what validation cannot: programs, directories and variables exist, and who each
    job runs as (`euid`: the daemon's user; default this process's). Reads only."""
    euid = os.geteuid() if euid is None else euid
    findings = [_dir_finding("supervisor.state_dir", config.state_dir),
                _dir_finding("supervisor.data_dir", config.data_dir)]
    if config.supervisor.status_file is not None:
        findings.append(_dir_finding("supervisor.status_file", config.status_file.parent))
    if not config.jobs:
        findings.append(CheckFinding("warning", "jobs", "no jobs defined"))
    for name in config.jobs:
        findings += _job_findings(config, name, environ)
        findings += _identity_findings(config, name, euid)
    if config.shared_store:
        findings.append(_store_finding(config))
    if not config.alerts.sinks:
        findings.append(CheckFinding("warning", "alerts.sinks",
                                     "no alert sinks: alerts reach only status.json and alerts.jsonl"))
    return findings


def _store_finding(config: Config) -> CheckFinding:
    """Whether the shared store answers, and at which schema revision (reads only: a store
    that is behind is migrated by the daemon at start, not here)."""
    from sqlalchemy import text

    from status.history import make_engine
    from status.migrate import HEAD, current

    try:
        url = config.store_url
    except EnvError as exc:
        return CheckFinding("error", "store.url", str(exc).removeprefix("env.store.url: "))
    except ValueError as exc:
        return CheckFinding("error", "store.url", str(exc).removeprefix("store.url: "))
    engine = make_engine(url)
    shown = engine.url.render_as_string(hide_password=True)
    try:
        with engine.connect() as conn:
            server = conn.execute(text("SELECT version()")).scalar() if engine.dialect.name == "postgresql" else "SQLite"
            rev = current(conn)
    except Exception as exc:  # noqa: BLE001 - reported as the finding
        first = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        return CheckFinding("warning", "store.url", f"{shown}: cannot connect now ({first}); a daemon "
                            "starting now starts without it (restored from its status.json), one running "
                            "keeps supervising; both write the history when it returns")
    finally:
        engine.dispose()
    where = str(server).split(" on ")[0]
    if rev == HEAD:
        state = f"schema {rev} (current)"
    elif rev is None:
        state = "no proofwatch schema yet: the daemon creates it at start"
    else:
        state = f"schema {rev}: the daemon migrates it to {HEAD} at start"
    return CheckFinding("ok", "store.url", f"{shown}: {where}, {state}")


def _dir_finding(key: str, path: Path) -> CheckFinding:
    try:
        return _dir_state(key, path)
    except OSError as exc:  # e.g. ENAMETOOLONG: exists() lets more than "not found" through
        return CheckFinding("error", key, f"{path} cannot be used ({(exc.strerror or str(exc)).lower()})")


def _dir_state(key: str, path: Path) -> CheckFinding:
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
        try:
            ok = cwd.is_dir()
        except OSError:  # a name too long, a loop of symlinks
            ok = False
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
    try:
        findings.append(_executable_finding(f"{key}.command", resolve_command(job.command)[0], cwd,
                                            search_path))
    except OSError as exc:
        findings.append(CheckFinding("error", f"{key}.command", f"{job.command[0]!r} cannot be run "
                                     f"({(exc.strerror or str(exc)).lower()})"))
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


def _identity_findings(config: Config, name: str, euid: int) -> list[CheckFinding]:
    """Whom the job runs as: refused as root, or another user who must reach its directories."""
    job, key = config.jobs[name], _dotted(("jobs", name))
    if job.user is None:
        if euid == 0 and not (job.allow_root or config.supervisor.allow_root):
            return [CheckFinding("warning", f"{key}.user",
                                 f'a daemon started as root refuses to run job "{name}" as root: '
                                 'set user = "<name>" for the job, or allow_root = true (see README "Security")')]
        return []
    pw = pwd.getpwnam(job.user) if not job.user.isdigit() else pwd.getpwuid(int(job.user))
    if pw.pw_uid == euid:
        return []
    if euid != 0:
        return [CheckFinding("error", f"{key}.user", f'runs as "{job.user}", but only a daemon started '
                                                      f"as root can switch users (this is uid {euid})")]
    groups = set(os.getgrouplist(pw.pw_name, pw.pw_gid))
    findings = []
    # the daemon opens state_dir itself to the user (0711) when the job starts: its parents count
    for what, path, need in (("the state_dir's parent", config.state_dir.parent, os.X_OK),
                             ("the data_dir", config.data_dir, os.W_OK | os.X_OK),
                             ("its cwd", config.job_cwd(name), os.X_OK)):
        blocked = _denied(path, pw.pw_uid, groups, need)
        if blocked is not None:
            findings.append(CheckFinding("warning", f"{key}.user",
                                         f'user "{job.user}" cannot {"write to" if need & os.W_OK else "reach"} '
                                         f"{what} {path}: {blocked}"))
    if not findings:
        findings.append(CheckFinding("ok", f"{key}.user", f'runs as "{job.user}" (uid {pw.pw_uid})'))
    return findings


def _denied(path: Path, uid: int, groups: set[int], need: int) -> str | None:
    """Why `uid` cannot traverse to `path` and use it as `need` says, or None when it can
    (from the permission bits; a directory not created yet is judged by its parent)."""
    path = Path(os.path.abspath(path))
    chain = [p for p in (*reversed(path.parents), path) if p.exists()]
    for i, part in enumerate(chain):
        st, last = part.stat(), i == len(chain) - 1
        want = need if last and part == path else os.X_OK
        bits = (stat.S_IMODE(st.st_mode) >> (6 if st.st_uid == uid else 3 if st.st_gid in groups else 0)) & 7
        if want & ~bits & 7:
            owner = _name_of(st.st_uid, pwd.getpwuid)
            return f"{part} is {stat.filemode(st.st_mode)} {owner}:{_name_of(st.st_gid, grp.getgrgid)}"
    return None


def _name_of(ident: int, lookup: Any) -> str:
    try:
        return str(lookup(ident)[0])
    except KeyError:
        return str(ident)
