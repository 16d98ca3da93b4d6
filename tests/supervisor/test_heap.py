"""supervisor/heap.py: the daemon's long-lived heap leaves the garbage collector's walks;
garbage is still collected. Each case runs in its own interpreter: gc.freeze() is process-wide."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

SETTLE = """
import gc, json, weakref
from supervisor import heap

class Node:
    def __init__(self): self.peer = None

def cycle():
    a, b = Node(), Node()
    a.peer, b.peer = b, a
    return a

kept = [cycle() for _ in range(2000)]          # long-lived: survives, is frozen
dropped = cycle(); gone = weakref.ref(dropped); del dropped  # startup garbage: collected, not frozen
gc.collect(0)
before = len(gc.get_objects(generation=2))
frozen, ms = heap.settle()
out = {"before": before, "after": len(gc.get_objects(generation=2)), "frozen": frozen,
       "garbage_collected": gone() is None}
late = cycle(); late_ref = weakref.ref(late); del late  # garbage made after: collected as before
gc.collect()
out["late_collected"] = late_ref() is None
old = kept.pop(); old_ref = weakref.ref(old); del old  # a frozen cycle that became garbage (a reload)
gc.collect()
out["frozen_garbage_kept"] = old_ref() is not None
heap.resettle()
out["resettled_collected"] = old_ref() is None
out["refrozen"] = gc.get_freeze_count() > 0 and len(gc.get_objects(generation=2)) < 100
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def settled() -> dict[str, object]:
    out = subprocess.run([sys.executable, "-c", SETTLE], capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_settling_moves_the_survivors_out_of_the_full_collections_walk(settled: dict[str, object]) -> None:
    assert settled["before"] > 4000  # the 2,000 cycles (and the interpreter's own objects)
    assert settled["after"] < 100
    assert settled["frozen"] >= 4000


def test_garbage_from_before_and_after_settling_is_still_collected(settled: dict[str, object]) -> None:
    assert settled["garbage_collected"] is True
    assert settled["late_collected"] is True


def test_resettling_collects_a_frozen_cycle_that_became_garbage(settled: dict[str, object]) -> None:
    assert settled["frozen_garbage_kept"] is True  # why a reload resettles
    assert settled["resettled_collected"] is True
    assert settled["refrozen"] is True
