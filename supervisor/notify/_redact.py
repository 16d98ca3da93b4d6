"""Keep notifier secrets (webhook keys, Apprise tokens, HMAC secrets) out of logs and output.

`redact(text)` rewrites every URL in the text (credentials, sensitive query values, token-like
path segments; everything after the scheme of a non-HTTP Apprise URL) and masks every value
registered with `register_secret`. `install_log_filter()` applies it to the loggers of the
libraries that print URLs themselves (httpx, httpcore, apprise).
"""

from __future__ import annotations

import logging
import re
import threading
from urllib.parse import parse_qsl, urlsplit

MASK = "***"

_HTTP_SCHEMES = {"http", "https", "json", "jsons", "xml", "xmls", "form", "forms"}
_SENSITIVE = re.compile(r"(?i)(token|key|secret|pass|pwd|auth|sig|signature|credential|session|code)")
_URL = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s\"'<>]+")
_PAIR = re.compile(r"(?i)\b(authorization|x-api-key|api[_-]?key|token|secret|password|passwd)"
                   r"(\s*[:=]\s*)(bearer\s+|basic\s+)?([^\s,;&\"']+)")
_lock = threading.Lock()
_secrets: set[str] = set()


def _tokenish(segment: str) -> bool:
    """A path segment that looks like a credential (webhook ids, API tokens)."""
    if len(segment) >= 24:
        return True
    return (len(segment) >= 12 and re.search(r"\d", segment) is not None
            and re.search(r"[A-Za-z]", segment) is not None)


def _redact_url(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        return MASK
    scheme = parts.scheme.lower()
    if scheme not in _HTTP_SCHEMES:
        return f"{parts.scheme}://{MASK}"
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    if parts.username is not None or parts.password is not None:
        host = f"{MASK}@{host}"
    path = "/".join(MASK if _tokenish(seg) else seg for seg in parts.path.split("/"))
    query = "&".join(f"{k}={MASK if _SENSITIVE.search(k) else v}"
                     for k, v in parse_qsl(parts.query, keep_blank_values=True))
    return f"{parts.scheme}://{host}{path}" + (f"?{query}" if query else "")


def _url_secrets(url: str) -> set[str]:
    """The parts of a sink URL that are secret, for exact masking anywhere in text."""
    found = {url}
    try:
        parts = urlsplit(url)
    except ValueError:
        return found
    if parts.password:
        found.add(parts.password)
    found.update(v for k, v in parse_qsl(parts.query) if _SENSITIVE.search(k))
    if parts.scheme.lower() not in _HTTP_SCHEMES:
        found.update(p for p in re.split(r"[/@:?&=#]", url.split("://", 1)[-1]) if len(p) >= 6)
    else:
        found.update(seg for seg in parts.path.split("/") if _tokenish(seg))
    return {s for s in found if len(s) >= 4}


def register_secret(value: str | None, *, url: bool = False) -> None:
    """Mask `value` (and, for a URL, its credential parts) wherever it appears in redacted text."""
    if not value:
        return
    with _lock:
        _secrets.update(_url_secrets(value) if url else {value} if len(value) >= 4 else set())


def redact(text: object) -> str:
    """`text` with credentials in URLs and every registered secret masked."""
    out = str(text)
    with _lock:
        known = sorted(_secrets, key=len, reverse=True)
    for secret in known:
        out = out.replace(secret, MASK)
    out = _URL.sub(lambda m: _redact_url(m[0]), out)
    return _PAIR.sub(lambda m: f"{m[1]}{m[2]}{m[3] or ''}{MASK}", out)


class RedactFilter(logging.Filter):
    """A logging filter that redacts the formatted message of every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave the record to logging's own report
            return True
        record.msg, record.args = redact(message), None
        return True


_FILTER = RedactFilter()
# Filters apply only to records of the very logger they are added to, so name each one.
_THIRD_PARTY = ("httpx", "httpcore.connection", "httpcore.http11", "httpcore.http2",
                "httpcore.proxy", "apprise", "urllib3.connectionpool", "urllib3.util.retry")


def install_log_filter(*names: str) -> None:
    """Redact every record of the libraries that log URLs (and of `names`)."""
    for name in (*_THIRD_PARTY, *names):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
