"""supervisor/control.py: the CLI's client for the daemon's API over its Unix socket."""

from __future__ import annotations

import gc
import socket
import warnings
from pathlib import Path

import pytest

from supervisor.control import ControlError, check_not_running, command_route, request


@pytest.mark.parametrize(
    ("cmd", "arg", "extra", "route"),
    [
        ("start", "ingest", None, ("POST", "/api/jobs/ingest/start", None)),
        ("stop", "a.b-c", None, ("POST", "/api/jobs/a.b-c/stop", None)),
        ("restart", "x", None, ("POST", "/api/jobs/x/restart", None)),
        ("ack", "host:disk:/", None, ("POST", "/api/alerts/host%3Adisk%3A%2F/ack", None)),
        ("reload", None, None, ("POST", "/api/reload", None)),
        ("silence", "svc", {"duration": "2h", "reason": "maint"},
         ("POST", "/api/silence", {"target": "svc", "duration": "2h", "reason": "maint"})),
        ("unsilence", "svc", None, ("POST", "/api/unsilence", {"target": "svc"})),
        ("ping", None, None, ("GET", "/healthz", None)),
    ],
    ids=["start", "stop", "restart", "ack-with-slash", "reload", "silence", "unsilence", "ping"],
)
def test_every_cli_command_maps_to_an_endpoint(cmd: str, arg: str | None, extra: dict[str, str] | None,
                                               route: tuple[str, str, object]) -> None:
    assert command_route(cmd, arg, extra) == route


def test_an_unknown_command_is_a_bug_not_a_request() -> None:
    with pytest.raises(ValueError, match="unknown command 'frobnicate'"):
        command_route("frobnicate", None)


def test_no_socket_means_the_daemon_is_not_running(tmp_path: Path) -> None:
    path = tmp_path / "proofwatch.sock"
    with pytest.raises(ControlError) as info:
        request(path, "ping")
    assert str(info.value) == f"the daemon is not running (no one listens on {path})"


def test_a_stale_socket_is_not_running_and_is_removed(tmp_path: Path) -> None:
    path = tmp_path / "proofwatch.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(str(path))  # bound, never listening: what a crashed daemon leaves
    with warnings.catch_warnings():
        # httpcore leaves the socket of a refused connect to the garbage collector
        warnings.simplefilter("ignore", ResourceWarning)
        with pytest.raises(ControlError) as info:
            request(path, "stop", "x")
        message = str(info.value)
        del info
        gc.collect()
    assert message == f"the daemon is not running (no one listens on {path})"
    check_not_running(path)
    assert not path.exists()


def test_a_live_socket_refuses_a_second_daemon(tmp_path: Path) -> None:
    path = tmp_path / "proofwatch.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as live:
        live.bind(str(path))
        live.listen(1)
        with pytest.raises(ControlError, match="another proofwatch daemon is already serving"):
            check_not_running(path)
