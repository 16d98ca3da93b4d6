"""The sandbox's exceptions.

    SandboxError                 Raised for any sandbox-specific failure (base class).
    +-- UnknownInstrument        Raised when an instId is not one the sandbox serves.
    +-- BadParameter             Raised when a request parameter is missing or invalid.
    +-- RemoteHostRefused        Raised when asked to listen on a non-loopback host without
                                 allow_remote.
    +-- SandboxStartError        Raised when the server did not start accepting connections.
"""

from __future__ import annotations


class SandboxError(Exception):
    """Raised for any sandbox-specific failure."""


class UnknownInstrument(SandboxError):
    """Raised when an instId is not one the sandbox serves."""

    def __init__(self, inst_id: str, known: tuple[str, ...]) -> None:
        super().__init__(f"instId {inst_id!r} does not exist (sandbox serves {', '.join(known)})")
        self.inst_id = inst_id
        self.known = known


class BadParameter(SandboxError):
    """Raised when a request parameter is missing or invalid; `param` names it."""

    def __init__(self, param: str, detail: str) -> None:
        super().__init__(f"parameter {param}: {detail}")
        self.param = param
        self.detail = detail


class RemoteHostRefused(SandboxError):
    """Raised when asked to listen on a non-loopback host without allow_remote."""

    def __init__(self, host: str) -> None:
        super().__init__(
            f"--host {host}: not a loopback address; the sandbox serves 127.0.0.1 only "
            "(pass --allow-remote to override)"
        )
        self.host = host


class SandboxStartError(SandboxError):
    """Raised when the server did not start accepting connections."""
