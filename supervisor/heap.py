"""Keeping Python's cyclic garbage collector off the daemon's long-lived heap.

Most of the daemon's heap is what its start built and keeps until exit: the imported modules,
the config's models, each job's state. A full (generation-2) collection walks all of it. With
1,000 jobs that walk took 49-64 ms every 20-40 s and found nothing to collect (measured with
`gc.callbacks` in the daemon during `python -m bench --workloads steady,crash --sizes 1000`);
for those milliseconds the event loop can neither notice a death nor start its replacement.

`settle()` collects the start's garbage once and moves everything that survives into the
permanent generation (`gc.freeze()`), which collections skip. Objects made later are collected
as before, and reference counting still frees frozen objects that stop being used; only a
reference cycle among frozen objects would stay, so after a config reload, which replaces part
of the frozen heap, `resettle()` unfreezes and collects before freezing again.
"""

from __future__ import annotations

import gc
import time


def settle() -> tuple[int, float]:
    """Collect, then freeze what survives: (objects now frozen, milliseconds it took)."""
    started = time.perf_counter()
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count(), (time.perf_counter() - started) * 1000


def resettle() -> tuple[int, float]:
    """Unfreeze (so replaced, cyclic parts of the old heap can be collected), then settle."""
    gc.unfreeze()
    return settle()
