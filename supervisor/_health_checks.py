"""Service checks from `[[health.checks]]`: an HTTP endpoint answering 2xx, a TCP port accepting
connections, a systemd unit that is active. Blocking; they run in parallel threads, each bounded
by its own timeout. Re-exported by supervisor.health."""

from __future__ import annotations

import logging
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor


from policies.health import CheckResult
from supervisor.config import HealthCheck

__all__ = ["check_http", "check_systemd", "check_tcp", "run_checks"]

log = logging.getLogger(__name__)

# systemctl exists but cannot reach a systemd instance (a container, a chroot)
_NO_SYSTEMD = ("not been booted with systemd", "failed to connect to bus", "no such file")


def _ms(start: float) -> str:
    return f"{(time.monotonic() - start) * 1000:.0f} ms"


def _why(exc: BaseException) -> str:
    """'connection refused', 'name or service not known': the OS's words, without '[Errno N]'."""
    if isinstance(exc, TimeoutError):
        return "timed out"
    text = re.sub(r"^\[Errno -?\d+\] ", "", str(exc)) or type(exc).__name__
    return text[:1].lower() + text[1:]


def check_http(url: str, timeout: float) -> CheckResult:
    """GET `url`: ok when the (redirect-followed) answer is 2xx within `timeout` seconds."""
    start = time.monotonic()
    import httpx  # lazily: httpx (with ssl, click, rich) costs ~15 MB of RSS

    try:
        with httpx.Client(timeout=timeout, follow_redirects=True) as client:
            response = client.get(url)
    except httpx.TimeoutException:
        return CheckResult(False, f"GET {url}: no answer within {timeout:g}s")
    except httpx.HTTPError as exc:
        root: BaseException = exc
        while root.__cause__ is not None:  # httpx -> httpcore -> the OSError that says why
            root = root.__cause__
        return CheckResult(False, f"GET {url}: {_why(root)}")
    if 200 <= response.status_code < 300:
        return CheckResult(True, f"HTTP {response.status_code} in {_ms(start)}")
    reason = f" {response.reason_phrase}" if response.reason_phrase else ""
    return CheckResult(False, f"GET {url}: HTTP {response.status_code}{reason}")


def check_tcp(host: str, port: int, timeout: float) -> CheckResult:
    """Connect to host:port: ok when it accepts within `timeout` seconds."""
    start = time.monotonic()
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        return CheckResult(False, f"{host}:{port}: {_why(exc)}")
    return CheckResult(True, f"{host}:{port} accepted in {_ms(start)}")


def check_systemd(unit: str, timeout: float) -> CheckResult:
    """`systemctl is-active UNIT`: ok when active; unavailable (ok None) without systemd."""
    systemctl = shutil.which("systemctl")
    if systemctl is None:
        return CheckResult(None, "systemctl not found")
    try:
        done = subprocess.run([systemctl, "is-active", unit], capture_output=True, text=True,
                              timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return CheckResult(False, f"systemctl is-active {unit}: no answer within {timeout:g}s")
    except OSError as exc:
        return CheckResult(None, f"cannot run systemctl: {exc}")
    state = done.stdout.strip() or "unknown"
    if done.returncode == 0 and state == "active":
        return CheckResult(True, f"{unit} is active")
    stderr = done.stderr.strip()
    if not done.stdout.strip() and any(s in stderr.lower() for s in _NO_SYSTEMD):
        return CheckResult(None, stderr.splitlines()[0])
    return CheckResult(False, f"{unit} is {state}" + (f" ({stderr})" if stderr else ""))


def _run_one(check: HealthCheck) -> CheckResult:
    try:
        if check.kind == "http":
            assert check.url is not None
            return check_http(check.url, check.timeout)
        if check.kind == "tcp":
            assert check.host is not None and check.port is not None
            return check_tcp(check.host, check.port, check.timeout)
        assert check.unit is not None
        return check_systemd(check.unit, check.timeout)
    except Exception as exc:  # a broken check must not take the sampler down with it
        log.warning("check=%s crashed", check.name, exc_info=True)
        return CheckResult(False, f"check crashed: {type(exc).__name__}: {exc}")


def run_checks(checks: Sequence[HealthCheck]) -> dict[str, CheckResult]:
    """Run every check in parallel; results by check name, in config order."""
    if not checks:
        return {}
    with ThreadPoolExecutor(max_workers=min(8, len(checks)),
                            thread_name_prefix="health-check") as pool:
        results = list(pool.map(_run_one, checks))
    return {check.name: result for check, result in zip(checks, results)}
