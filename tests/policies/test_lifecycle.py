"""policies/lifecycle.py: the explicit transition table of a job's state."""

from __future__ import annotations

import pytest

from policies.lifecycle import TRANSITIONS, is_allowed
from status.models import ACTIVE_STATES, FINAL_STATES, JobState as S


def test_lifecycle_every_state_has_a_row_and_targets_are_states() -> None:
    assert set(TRANSITIONS) == set(S)
    for old, targets in TRANSITIONS.items():
        assert targets, f"{old} is a dead end"
        assert targets <= set(S)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (S.PENDING, S.STARTING),
        (S.STARTING, S.RUNNING),
        (S.STARTING, S.CRASHED),
        (S.STARTING, S.SILENT),
        (S.SILENT, S.RUNNING),
        (S.RUNNING, S.STALLED),
        (S.STALLED, S.RUNNING),
        (S.RUNNING, S.BLOCKED),
        (S.BLOCKED, S.RUNNING),
        (S.RUNNING, S.VERIFYING),
        (S.VERIFYING, S.SUCCEEDED),
        (S.VERIFYING, S.FAILED),
        (S.FAILED, S.BACKOFF),
        (S.BACKOFF, S.STARTING),
        (S.CRASHED, S.FATAL),
        (S.FATAL, S.STARTING),
        (S.SUCCEEDED, S.STARTING),
    ],
    ids=lambda s: s.value,
)
def test_lifecycle_allows(old: S, new: S) -> None:
    assert is_allowed(old, new)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (S.SUCCEEDED, S.STALLED),
        (S.FAILED, S.STALLED),
        (S.SUCCEEDED, S.RUNNING),
        (S.VERIFYING, S.STALLED),
        (S.VERIFYING, S.RUNNING),
        (S.PENDING, S.RUNNING),
        (S.PENDING, S.SUCCEEDED),
        (S.STARTING, S.SUCCEEDED),
        (S.RUNNING, S.SUCCEEDED),
        (S.STALLED, S.SUCCEEDED),
        (S.FATAL, S.RUNNING),
        (S.BACKOFF, S.RUNNING),
        (S.STOPPED, S.FATAL),
    ],
    ids=lambda s: s.value,
)
def test_lifecycle_refuses(old: S, new: S) -> None:
    assert not is_allowed(old, new)


@pytest.mark.parametrize("final", sorted(FINAL_STATES), ids=str)
def test_lifecycle_finished_runs_are_never_stall_checked(final: S) -> None:
    # walk every path out of a finished state that does not spawn a new run (STARTING):
    # none may reach a live state such as STALLED
    seen: set[S] = set()
    todo = [final]
    while todo:
        state = todo.pop()
        for nxt in TRANSITIONS[state]:
            if nxt is not S.STARTING and nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    assert S.STALLED not in seen
    assert not (seen & ACTIVE_STATES), seen


def test_lifecycle_only_exits_lead_to_success() -> None:
    # SUCCEEDED is reached only through VERIFYING: exit 0 alone is never "done"
    assert {old for old, targets in TRANSITIONS.items() if S.SUCCEEDED in targets} == {S.VERIFYING}
