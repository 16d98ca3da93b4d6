"""Decisions as pure functions of (state, settings, now) -> verdict.

No I/O, no clock reads, no async: callers pass `now`. May import: status (models only),
workers.protocol. Never imports supervisor, anyio, httpx or psutil.
"""
