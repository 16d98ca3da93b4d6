"""`python -m bench._beater`: writes the heartbeats of N bench children from one process.

The children the supervisors run are sleeping processes (see `_procs.CHILD_SH`); the progress
they "make" is written here, on their behalf, so that 1,000 heartbeating jobs do not mean
1,000 Python interpreters (40 ms of CPU and 14 MB each to start) competing with the daemon for
two cores. What a supervisor sees is exactly what N workers would produce:

- kind `heartbeat` (proofwatch): `workers.sdk.Run(path).beat({"ticks": i}, force=True)` on
  each child's own $PROOFWATCH_HEARTBEAT, i.e. the SDK's atomic temp-file + rename;
- kind `touch` (Monit's file-timestamp test): `os.utime(path)`.

Beats are spread evenly: at R Hz each of the N paths is written once per 1/R s, one path every
1/(R*N) s, in a fixed round-robin order. Commands, one per line on stdin, each answered with one
JSON line on stdout:

    load FILE KIND   FILE: JSON {name: path}; KIND: heartbeat | touch
    rate HZ          beat every path HZ times a second, each beat with progress (a rising counter)
    stall            from each path's next beat on: no more progress. heartbeat: liveness-only
                     beats go on at 1 Hz ("alive, not working"); touch: the file is no longer touched
    stats            {"beats", "progress_beats", "late", "cpu_s", "last_progress": {name: epoch}}
    quit
"""

from __future__ import annotations

import atexit
import json
import os
import select
import sys
import time
from pathlib import Path
from typing import Any


class Beater:
    def __init__(self) -> None:
        self.names: list[str] = []
        self.paths: list[str] = []
        self.kind = "heartbeat"
        self.runs: list[Any] = []
        self.ticks: list[int] = []
        self.rate = 0.0
        self.stalled = False
        self.i = 0
        self.next_t = 0.0
        self.beats = 0
        self.progress_beats = 0
        self.late = 0
        self.last_progress: dict[str, float] = {}

    def load(self, file: str, kind: str) -> dict[str, Any]:
        mapping = json.loads(Path(file).read_text())
        self.names, self.paths, self.kind = list(mapping), list(mapping.values()), kind
        if kind == "heartbeat":
            from workers.sdk import Run

            self.runs = [Run(Path(p), min_interval=0.0) for p in self.paths]
            for run in self.runs:  # the run directories are gone when the beater quits
                atexit.unregister(run.flush)
        self.ticks = [0] * len(self.names)
        self.rate, self.stalled, self.i = 0.0, False, 0
        self.last_progress = {}
        return {"ok": True, "n": len(self.names)}

    def set_rate(self, hz: float) -> dict[str, Any]:
        self.rate = hz
        self.stalled = False
        self.next_t = time.monotonic()
        return {"ok": True, "rate": hz}

    def stall(self) -> dict[str, Any]:
        self.stalled = True
        if self.kind == "heartbeat":
            # liveness at 1 Hz, continuing the round-robin where it is
            self.rate = 1.0
        return {"ok": True, "at": time.time()}

    def stats(self) -> dict[str, Any]:
        t = os.times()
        return {"beats": self.beats, "progress_beats": self.progress_beats, "late": self.late,
                "cpu_s": t.user + t.system, "last_progress": self.last_progress}

    def _beat(self, k: int) -> None:
        name = self.names[k]
        if self.kind == "touch":
            if self.stalled:
                return
            self.last_progress[name] = time.time()
            try:
                os.utime(self.paths[k])
            except FileNotFoundError:
                Path(self.paths[k]).touch()
            self.progress_beats += 1
        else:
            run = self.runs[k]
            if self.stalled:
                try:
                    run.beat(None, message="waiting for a lock", force=True)
                except OSError:  # the run ended (its directory may be gone): nothing to beat
                    pass
            else:
                self.ticks[k] += 1
                self.last_progress[name] = time.time()
                try:
                    run.beat({"ticks": self.ticks[k]}, message=f"tick {self.ticks[k]}", force=True)
                except OSError:
                    pass
                self.progress_beats += 1
        self.beats += 1

    def due(self) -> float | None:
        """Write every beat that is due; return seconds until the next one (None: idle)."""
        if not self.names or self.rate <= 0 or (self.stalled and self.kind == "touch"):
            return None
        step = 1.0 / (self.rate * len(self.names))
        now = time.monotonic()
        if now - self.next_t > 1.0:  # more than a second behind: count it, do not try to catch up
            self.late += 1
            self.next_t = now
        while self.next_t <= now:
            self._beat(self.i)
            self.i = (self.i + 1) % len(self.names)
            self.next_t += step
        return max(0.0, self.next_t - time.monotonic())


def main() -> int:
    b = Beater()
    stdin = sys.stdin.buffer
    buf = b""
    while True:
        wait = b.due()
        ready, _, _ = select.select([stdin], [], [], wait)
        if not ready:
            continue
        chunk = os.read(stdin.fileno(), 65536)
        if not chunk:
            return 0
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            cmd, *args = line.decode().split()
            if cmd == "load":
                reply = b.load(args[0], args[1])
            elif cmd == "rate":
                reply = b.set_rate(float(args[0]))
            elif cmd == "stall":
                reply = b.stall()
            elif cmd == "stats":
                reply = b.stats()
            elif cmd == "quit":
                return 0
            else:
                reply = {"ok": False, "error": f"unknown command {cmd!r}"}
            sys.stdout.write(json.dumps(reply) + "\n")
            sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
