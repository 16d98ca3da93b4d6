"""The ingestor's exceptions: one small tree, each naming what failed and where.

    IngestError             Raised for anything the ingestor cannot do (`permanent`: retrying won't help)
    ├── ConfigError         Raised when the command line or the data dir is unusable (exit 2)
    ├── ExchangeError       Raised when BloFin answers an error (fields: where, http_status, code, msg)
    │   └── RateLimited     Raised on HTTP 429 (field: retry_after seconds, or None)
    ├── StreamError         Raised when the WebSocket fails, is closed or stalls (field: reason)
    ├── MalformedMessage    Raised when a pushed or fetched record does not parse (field: inst or None)
    └── StoreError          Raised when a Parquet part or the manifest cannot be read or written (field: path)
"""

from __future__ import annotations

# BloFin codes that no retry will fix (api-reference A.2): the operator must change the config.
PERMANENT_CODES = frozenset({"152014", "152002", "152015"})
BAN_STATUSES = frozenset({401, 403})


class IngestError(Exception):
    """Raised for anything the ingestor cannot do; `permanent` says retrying cannot help."""

    permanent: bool = False


class ConfigError(IngestError):
    """Raised when the command line or the data directory is unusable."""

    permanent = True


class ExchangeError(IngestError):
    """Raised when BloFin answers with an error envelope or an HTTP error status."""

    def __init__(self, where: str, *, http_status: int, code: str, msg: str) -> None:
        self.where = where
        self.http_status = http_status
        self.code = code
        self.msg = msg
        self.permanent = code in PERMANENT_CODES
        super().__init__(self.words)

    @property
    def words(self) -> str:
        """The exchange's own words, with where they came from."""
        status = "" if self.http_status == 200 else f"HTTP {self.http_status} "
        return f"{self.where}: {status}code {self.code}: {self.msg}"

    @property
    def banned(self) -> bool:
        """True for 401/403: the firewall or auth refused us (BloFin bans ~5 min)."""
        return self.http_status in BAN_STATUSES


class RateLimited(ExchangeError):
    """Raised on HTTP 429; `retry_after` is the server's hint in seconds, when it gave one."""

    def __init__(self, where: str, *, msg: str, retry_after: float | None) -> None:
        super().__init__(where, http_status=429, code="429", msg=msg)
        self.retry_after = retry_after


class StreamError(IngestError):
    """Raised when the WebSocket connection fails, is closed by the peer, or stalls."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class MalformedMessage(IngestError):
    """Raised when a pushed or fetched record does not parse; `inst` is set when known."""

    def __init__(self, why: str, inst: str | None = None) -> None:
        self.inst = inst
        super().__init__(why)


class StoreError(IngestError):
    """Raised when a Parquet part or the manifest cannot be read or written."""

    def __init__(self, path: object, why: str) -> None:
        self.path = str(path)
        super().__init__(f"{self.path}: {why}")
