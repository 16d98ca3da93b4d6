"""The explicit state-transition table of a job (its latest run)."""

from __future__ import annotations

from status.models import JobState as S

_RUN_LIVE = {S.STARTING, S.RUNNING, S.STALLED, S.BLOCKED, S.SILENT}
_ENDINGS = {S.VERIFYING, S.FAILED, S.CRASHED, S.STOPPED}
_IDLE = {S.PENDING, S.SUCCEEDED, S.FAILED, S.CRASHED, S.STOPPED, S.BACKOFF, S.FATAL}

TRANSITIONS: dict[S, frozenset[S]] = {
    S.PENDING: frozenset({S.STARTING, S.STOPPED, S.PENDING}),
    S.STARTING: frozenset({S.RUNNING, S.BLOCKED, S.SILENT} | _ENDINGS),
    S.RUNNING: frozenset({S.STALLED, S.BLOCKED} | _ENDINGS),
    S.STALLED: frozenset({S.RUNNING, S.BLOCKED} | _ENDINGS),
    S.BLOCKED: frozenset({S.RUNNING, S.STALLED} | _ENDINGS),
    S.SILENT: frozenset({S.RUNNING, S.BLOCKED} | _ENDINGS),
    S.VERIFYING: frozenset({S.SUCCEEDED, S.FAILED, S.STOPPED}),
    S.SUCCEEDED: frozenset({S.STARTING, S.PENDING, S.BACKOFF, S.FATAL}),
    S.FAILED: frozenset({S.STARTING, S.PENDING, S.BACKOFF, S.FATAL}),
    S.CRASHED: frozenset({S.STARTING, S.PENDING, S.BACKOFF, S.FATAL}),
    S.STOPPED: frozenset({S.STARTING, S.PENDING}),
    S.BACKOFF: frozenset({S.STARTING, S.STOPPED, S.FATAL}),
    S.FATAL: frozenset({S.STARTING, S.STOPPED}),
}

assert set(TRANSITIONS) == set(S), "every state needs a row"
assert _RUN_LIVE | _IDLE | {S.VERIFYING} == set(S)


def is_allowed(old: S, new: S) -> bool:
    """Whether the table permits old -> new."""
    return new in TRANSITIONS[old]
