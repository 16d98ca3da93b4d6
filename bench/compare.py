"""proofwatch against supervisord and Monit, side by side, in one invocation.

For each N (50, 200, 1,000 jobs of the same trivial child, see `_procs.CHILD_SH`):

  block 1   proofwatch alone:      spawn, steady state without heartbeats
            supervisord (proofwatch idle beside it, which does not touch supervisord):
                                   spawn, steady state
            both:                  crash, kills alternating proofwatch / supervisord (A/B)
            proofwatch alone again (supervisord stopped): heartbeats written for every child
                                   (`_beater`): steady state at 1/s, ingest at 10 Hz, then the
                                   hang: every child stops progressing, stall_after = 5 s
  block 2   Monit alone:           spawn, steady state, crash
            Monit (file checks):   hang, `if timestamp > 5 seconds` on one file per job

Order within a size and the choice of which child is killed come from a fixed seed. Every
process started is in a process group the bench kills, and every child carries the run's
token in its command line, so a final sweep of /proc removes anything left (also on Ctrl-C).
"""

from __future__ import annotations

import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import _procs
from bench._daemon import BenchError, wait_for
from bench._targets import Monit, Proofwatch, Supervisord, Target, monit_exe, supervisord_exe

SUPERVISORS = ("proofwatch", "supervisord", "monit")
WORKLOADS = ("spawn", "crash", "hang", "steady", "ingest", "status")
SIZES = (50, 200, 1000)
REPO = Path(__file__).resolve().parent.parent
STALL_AFTER = 5.0
KILL_TIMEOUT = 30.0


@dataclass
class Plan:
    """What to run, and for how long (seconds)."""

    sizes: list[int] = field(default_factory=lambda: list(SIZES))
    only: list[str] = field(default_factory=lambda: list(SUPERVISORS))
    workloads: list[str] = field(default_factory=lambda: list(WORKLOADS))
    # kills per N: proofwatch's are cheap; the peers' take their 1-s tick or cycle each, so
    # fewer of them keep `make bench` under 10 minutes
    kills: dict[int, int] = field(default_factory=lambda: {50: 20, 200: 20, 1000: 20})
    peer_kills: dict[int, int] = field(default_factory=lambda: {50: 10, 200: 10, 1000: 10})
    # steady-state windows: 60 s where the targets are defined (N = 200), shorter elsewhere
    window: dict[int, float] = field(default_factory=lambda: {50: 8.0, 200: 60.0, 1000: 8.0})
    peer_window: dict[int, float] = field(default_factory=lambda: {50: 6.0, 200: 15.0, 1000: 6.0})
    ingest_window: float = 8.0
    warmup: float = 2.0
    # Monit starts services one after another (~0.2 s each here); above this N the bench starts
    # the children itself and lets Monit adopt them (spawn not measured there)
    monit_spawn_max: int = 50
    # launches whose spawn is measured, for proofwatch and supervisord (the median is reported,
    # as the reference figures are medians of 3); Monit's spawn (~10 s at N = 50): one
    spawn_runs: int = 3
    hang_wait: float = 15.0  # seconds past the deadline after which an unflagged stall counts as missed
    seed: int = 1
    keep: bool = False

    @classmethod
    def quick(cls) -> Plan:
        return cls(sizes=[50], kills={50: 5}, peer_kills={50: 5}, window={50: 5.0}, peer_window={50: 5.0},
                   ingest_window=4.0, warmup=1.5, spawn_runs=1)

    def get(self, table: dict[int, Any], n: int) -> Any:
        if n in table:
            return table[n]
        return table[min(table, key=lambda k: abs(k - n))]


class Results:
    """Measurements, one record per (workload, supervisor, N, measurement)."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.notes: list[str] = []

    def add(self, key: str, supervisor: str, n_jobs: int, measurement: str, unit: str,
            samples: list[float], **extra: Any) -> None:
        """`key` ("workload.what") pairs a peer's row with proofwatch's for the ratio."""
        self.records.append({"key": key, "workload": key.split(".")[0], "supervisor": supervisor,
                             "n_jobs": n_jobs, "measurement": measurement, "unit": unit, "samples": samples,
                             "summary": summary(samples), **extra})

    def unsupported(self, key: str, supervisor: str, n_jobs: int, measurement: str, why: str) -> None:
        self.records.append({"key": key, "workload": key.split(".")[0], "supervisor": supervisor,
                             "n_jobs": n_jobs, "measurement": measurement, "unit": "", "samples": [],
                             "summary": summary([]), "unsupported": why})

    def note(self, text: str) -> None:
        print(f"bench: note: {text}", file=sys.stderr, flush=True)
        self.notes.append(text)


def summary(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "median": None, "min": None, "max": None, "mean": None, "p99": None}
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, max(0, int(round(0.99 * len(ordered) + 0.5)) - 1))]
    return {"n": len(values), "median": statistics.median(values), "min": ordered[0], "max": ordered[-1],
            "mean": statistics.fmean(values), "p99": p99}


def say(text: str) -> None:
    print(f"bench: {text}", file=sys.stderr, flush=True)


# ---- the beater (heartbeats / file touches on behalf of the children) ---------------------

class BeaterClient:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
        self.proc = subprocess.Popen([sys.executable, "-m", "bench._beater"], cwd=REPO, env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True)
        self._n = 0

    def cmd(self, line: str) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write((line + "\n").encode())
        self.proc.stdin.flush()
        reply = self.proc.stdout.readline()
        if not reply:
            raise BenchError(f"the beater exited (code {self.proc.poll()}) on {line!r}")
        return json.loads(reply)  # type: ignore[no-any-return]

    def load(self, mapping: dict[str, str], kind: str) -> None:
        self._n += 1
        f = self.workdir / f"beater-{self._n}.json"
        f.write_text(json.dumps(mapping))
        self.cmd(f"load {f} {kind}")

    def rate(self, hz: float) -> None:
        self.cmd(f"rate {hz}")

    def stall(self) -> float:
        return float(self.cmd("stall")["at"])

    def stats(self) -> dict[str, Any]:
        return self.cmd("stats")

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.cmd("quit")
            except (BenchError, OSError, ValueError):
                pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


# ---- the workloads -------------------------------------------------------------------------

class Compare:
    def __init__(self, plan: Plan, results: Results) -> None:
        self.plan = plan
        self.res = results
        self.token = f"{os.getpid():x}{random.Random().randrange(16**6):06x}"
        self.rng = random.Random(plan.seed)
        self.workdir = Path(tempfile.mkdtemp(prefix="pwbench-cmp-"))
        self.live: list[Target] = []
        self.beater: BeaterClient | None = None

    def wants(self, *workloads: str) -> bool:
        return any(w in self.plan.workloads for w in workloads)

    def run(self) -> None:
        _procs.become_subreaper()
        if "supervisord" in self.plan.only and self.wants("spawn", "crash", "steady"):
            supervisord_exe()
        if "monit" in self.plan.only and self.wants("spawn", "crash", "steady", "hang"):
            monit_exe()
        try:
            for n in self.plan.sizes:
                t = time.monotonic()
                self.size(n)
                say(f"N = {n} done in {time.monotonic() - t:.0f} s")
        finally:
            self.cleanup()

    def cleanup(self) -> None:
        if self.beater is not None:
            self.beater.close()
            self.beater = None
        for t in self.live:
            try:
                t.stop()
            except Exception as exc:  # keep cleaning up the rest
                say(f"stopping {t.name}: {exc}")
            t.cleanup()
        self.live.clear()
        _procs.sweep(f"pwb-{self.token}-")
        time.sleep(0.05)
        _procs.reap_orphans()
        if not self.plan.keep:
            import shutil

            shutil.rmtree(self.workdir, ignore_errors=True)

    def _start(self, t: Target) -> Target:
        self.live.append(t)
        t.start()
        return t

    def _stop(self, t: Target) -> None:
        try:
            t.stop()
        finally:
            t.cleanup()
            if t in self.live:
                self.live.remove(t)

    def size(self, n: int) -> None:
        names = [f"j{i:04d}" for i in range(n)]
        kills = min(n, self.plan.get(self.plan.kills, n))
        peer_kills = min(kills, self.plan.get(self.plan.peer_kills, n))
        kill_names = self.rng.sample(names, kills)  # the peers kill the first peer_kills of the same list
        only = self.plan.only
        pw = sd = None
        # block 1: proofwatch and supervisord
        if "proofwatch" in only:
            samples = self._spawn_only(lambda: Proofwatch(self.token, names, keep=self.plan.keep), n)
            pw = self._start(Proofwatch(self.token, names, keep=self.plan.keep))
            say(f"N = {n}: proofwatch started")
            self.spawn(pw, n, earlier=samples)
            if self.wants("steady"):
                self.steady(pw, n, self.plan.get(self.plan.window, n), mode="no heartbeats")
        if "supervisord" in only and self.wants("spawn", "crash", "steady"):
            samples = self._spawn_only(lambda: Supervisord(self.token, names, keep=self.plan.keep), n)
            sd = self._start(Supervisord(self.token, names, keep=self.plan.keep))
            say(f"N = {n}: supervisord started")
            self.spawn(sd, n, earlier=samples)
            if self.wants("steady"):
                self.steady(sd, n, self.plan.get(self.plan.peer_window, n), mode="idle")
        if self.wants("crash"):
            self.crash([t for t in (pw, sd) if t is not None], n, kill_names, peer_kills)
        if sd is not None:
            self._stop(sd)
        if pw is not None:
            if self.wants("steady", "ingest", "hang", "status"):
                self.heartbeats(pw, n)
            self._stop(pw)
        if "supervisord" in only and self.wants("hang"):
            self.res.unsupported("hang.e2e", "supervisord", n, "stall flagged past its deadline",
                                 "cannot detect a hang: supervisord only sees whether the process exists "
                                 "(no heartbeat, progress or file-age check)")
        # block 2: Monit
        if "monit" in only and self.wants("spawn", "crash", "steady"):
            self.monit_block(n, names, kill_names[:peer_kills])
        if "monit" in only and self.wants("hang"):
            self.monit_hang(n)

    # -- spawn -----------------------------------------------------------------------------------

    def _spawn_only(self, make: Callable[[], Target], n: int) -> list[tuple[float, float]]:
        """Launch, time the spawn, stop: `spawn_runs - 1` times (the last launch is the one the
        other workloads use). Returns (all running, first running) per launch, from its launch."""
        out: list[tuple[float, float]] = []
        if not self.wants("spawn"):
            return out
        for _ in range(self.plan.spawn_runs - 1):
            t = self._start(make())
            try:
                out.append(self._spawn_times(t, n))
                say(f"{t.name}: {n} children running {out[-1][0]:.2f} s after launch (spawn-only launch)")
            finally:
                self._stop(t)
        return out

    @staticmethod
    def _spawn_times(t: Target, n: int) -> tuple[float, float]:
        """(all N running, first running), in seconds from `t`'s launch, once all N are in the
        process table."""
        recs = t.wait_all_started(timeout=60 + n * 0.5)
        starts = sorted(r.started for r in recs.values())
        wait_for(lambda: t.alive_children() >= n, 30, f"{n} children of {t.name} in the process table",
                 check=t.check_alive, interval=0.05)
        return starts[-1] - t.t_launch, starts[0] - t.t_launch

    def spawn(self, t: Target, n: int, *, measured: bool = True,
              earlier: list[tuple[float, float]] | None = None) -> None:
        all_s, first_s = self._spawn_times(t, n)
        if not measured or not self.wants("spawn"):
            return
        earlier = earlier or []
        extra: dict[str, Any] = {"first_child_s": first_s, "spread_s": all_s - first_s}
        if isinstance(t, Proofwatch):
            ready = wait_for(t.ready_at, 30, "proofwatch's start event")
            starting = wait_for(t.all_starting_at, 60, "every job STARTING in proofwatch's history")
            extra.update(ready_s=ready - t.t_launch, all_starting_recorded_s=starting - t.t_launch)
        self.res.add("spawn.all", t.name, n, "all N children running, from the supervisor's launch", "s",
                     [a for a, _ in earlier] + [all_s], **extra)
        self.res.add("spawn.first", t.name, n, "first child running, from the launch (start-up cost)", "s",
                     [f for _, f in earlier] + [first_s])
        if isinstance(t, Proofwatch):
            self.res.add("spawn.recorded", t.name, n, "every job STARTING in history.db, from the launch", "s",
                         [extra["all_starting_recorded_s"]])
        say(f"{t.name}: {n} children running {all_s:.2f} s after launch (first {first_s:.2f} s)")

    # -- steady state ---------------------------------------------------------------------------

    def window(self, t: Target, seconds: float, watch: _procs.DirWatch | None = None) -> dict[str, Any]:
        s = _procs.Sampler(t.pid)
        w0 = time.time()
        end = time.monotonic() + seconds
        while True:
            s.sample_rss()
            t.check_alive()
            left = end - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(1.0, left))
        cpu, elapsed = s.cpu_pct()
        out: dict[str, Any] = {"cpu_pct": cpu, "elapsed_s": elapsed, "rss_mb": s.rss, "t0": w0, "t1": time.time()}
        if watch is not None:
            out["status_writes"] = watch.count("status.json", _procs.IN_MOVED_TO, w0, out["t1"])
        return out

    def steady(self, t: Target, n: int, seconds: float, *, mode: str,
               watch: _procs.DirWatch | None = None) -> dict[str, Any]:
        own_watch = None
        if isinstance(t, Proofwatch) and watch is None:
            watch = own_watch = _procs.DirWatch(t.daemon.state_dir)
        try:
            time.sleep(self.plan.warmup)
            w = self.window(t, seconds, watch)
        finally:
            if own_watch is not None:
                own_watch.close()
        extra = {"mode": mode, "window_s": w["elapsed_s"]}
        sub = "hb" if mode.startswith("heartbeating") else "idle"
        self.res.add(f"steady.cpu.{sub}", t.name, n, f"CPU, % of one core ({mode})", "%", [w["cpu_pct"]], **extra)
        self.res.add(f"steady.rss.{sub}", t.name, n, f"RSS ({mode})", "MB", w["rss_mb"], **extra)
        if "status_writes" in w:
            self.res.add(f"steady.writes.{sub}", t.name, n, f"status.json writes per second ({mode})", "/s",
                         [w["status_writes"] / w["elapsed_s"]], **extra)
        say(f"{t.name} N = {n} {mode}: CPU {w['cpu_pct']:.2f} %, RSS {statistics.median(w['rss_mb']):.1f} MB "
            f"over {w['elapsed_s']:.0f} s")
        return w

    # -- crash -------------------------------------------------------------------------------------

    def kill_one(self, t: Target, job: str) -> dict[str, Any]:
        rec = wait_for(lambda: _procs.read_record(t.rec, job), 10, f"{t.name} {job}'s record")
        wait_for(lambda: _procs.cmdline(rec.pid).startswith(t.tag(job)), 10, f"{t.name} {job} to exec")
        # a random phase against the supervisor's own 1-s tick (supervisord) or cycle (Monit):
        # a fixed short pause after the previous restart would hit every kill at the same phase
        time.sleep(self.rng.uniform(0.0, t.kill_phase))
        mark = t.mark()
        stalled0 = _procs.cpu_pressure_us()
        t_kill = time.time()
        os.kill(rec.pid, signal.SIGKILL)
        _procs.reap(rec.pid)  # only when it is ours (Monit's orphans): what a prompt init does
        deadline = time.monotonic() + KILL_TIMEOUT
        new: _procs.Record | None = None
        noticed: float | None = None
        t_seen, stalled1 = t_kill, stalled0
        while new is None or noticed is None:
            t.poll()
            if new is None:
                r = _procs.read_record(t.rec, job)
                if r is not None and r.pid != rec.pid:
                    new, t_seen, stalled1 = r, time.time(), _procs.cpu_pressure_us()
            if noticed is None and (new is not None or t.noticed_when_seen):
                # a timestamp of the supervisor's own (history, log) does not depend on when it is
                # read: read it once the replacement runs, not every 2 ms inside the measured interval
                noticed = t.noticed(job, mark, rec.pid)
            if time.monotonic() > deadline:
                raise BenchError(f"{t.name}: {job} killed at {t_kill:.3f}: noticed={noticed} replacement={new} "
                                 f"after {KILL_TIMEOUT:g} s\n{t.log_tail()}")
            t.check_alive()
            time.sleep(0.002)
        spawned = t.spawned(job, mark)
        return {"job": job, "pid": rec.pid, "new_pid": new.pid, "t_kill": t_kill,
                "noticed_ms": (noticed - t_kill) * 1000, "running_ms": (new.started - t_kill) * 1000,
                "spawned_ms": None if spawned is None else (spawned - t_kill) * 1000,
                # how long runnable tasks waited for a CPU, machine-wide, from the kill until the
                # bench saw the replacement (PSI "some"): what a slow restart competed with
                "window_ms": (t_seen - t_kill) * 1000,
                "cpu_pressure_ms": None if stalled0 is None or stalled1 is None else (stalled1 - stalled0) / 1000}

    def crash(self, targets: list[Target], n: int, kill_names: list[str], peer_kills: int) -> None:
        if not targets:
            return
        samples: dict[str, list[dict[str, Any]]] = {t.name: [] for t in targets}
        for k, job in enumerate(kill_names):
            order = targets if k % 2 == 0 else list(reversed(targets))  # A/B, B/A, ...
            for t in order:
                if isinstance(t, Proofwatch) or k < peer_kills:
                    samples[t.name].append(self.kill_one(t, job))
        for t in targets:
            self.record_crash(t.name, n, samples[t.name])

    def record_crash(self, name: str, n: int, samples: list[dict[str, Any]]) -> None:
        self.res.add("crash.noticed", name, n, "death noticed (SIGKILL -> the supervisor's record of the exit)", "ms",
                     [s["noticed_ms"] for s in samples], kills=samples)
        spawned = [s["spawned_ms"] for s in samples if s["spawned_ms"] is not None]
        if spawned:
            self.res.add("crash.spawned", name, n, "replacement started (SIGKILL -> the supervisor's spawn record)", "ms",
                         spawned)
        self.res.add("crash.running", name, n, "replacement running (SIGKILL -> the new child's own start stamp)", "ms",
                     [s["running_ms"] for s in samples])
        slow = max(samples, key=lambda s: s["running_ms"])
        pressure = "" if slow["cpu_pressure_ms"] is None else (
            f"; the machine's CPU pressure (PSI some) over its {slow['window_ms']:.0f} ms window: "
            f"{slow['cpu_pressure_ms']:.0f} ms")
        spawned_at = "" if slow["spawned_ms"] is None else f", spawn recorded at {slow['spawned_ms']:.1f} ms"
        self.res.note(f"{name} N = {n}: slowest kill: noticed at {slow['noticed_ms']:.1f} ms{spawned_at}, "
                      f"replacement running at {slow['running_ms']:.1f} ms{pressure}")
        med = statistics.median(s["running_ms"] for s in samples)
        say(f"{name} N = {n}: {len(samples)} kills, noticed median "
            f"{statistics.median(s['noticed_ms'] for s in samples):.1f} ms, replacement running median {med:.1f} ms")

    # -- heartbeats: steady 1/s, ingest 10 Hz, hang ---------------------------------------------

    def heartbeats(self, pw: Proofwatch, n: int) -> None:
        recs = pw.records()
        missing = [job for job in pw.names if job not in recs or not recs[job].heartbeat]
        if missing:
            raise BenchError(f"proofwatch children without a heartbeat path: {missing[:5]}")
        if self.beater is None:
            self.beater = BeaterClient(self.workdir)
        beater = self.beater
        hist = pw.daemon.history
        watch = _procs.DirWatch(pw.daemon.state_dir, _procs.IN_CREATE | _procs.IN_MOVED_TO)
        try:
            mark0 = pw.mark()
            beater.load({job: recs[job].heartbeat for job in pw.names}, "heartbeat")
            beater.rate(1.0)

            def all_running() -> bool:
                return len({e.job for e in hist.events(to_state="RUNNING", after_id=mark0)}) >= n

            pw.daemon.wait(all_running, 60 + n * 0.05, f"{n} jobs RUNNING on their first heartbeat")
            if self.wants("steady", "status"):
                w = self.steady(pw, n, self.plan.get(self.plan.window, n), mode="heartbeating 1/s",
                                watch=watch)
                if self.wants("status"):
                    self.status_cost(pw, n, watch, w["t0"], w["t1"])
            if self.wants("ingest"):
                self.ingest(pw, n, beater, watch)
            stalled_before = [e for e in hist.events(to_state="STALLED", after_id=mark0)]
            if stalled_before:
                self.res.note(f"proofwatch N = {n}: {len(stalled_before)} STALLED while every job was making "
                              f"progress (false stalls): {sorted({e.job for e in stalled_before})[:10]}")
            if self.wants("hang"):
                self.hang(pw, n, beater, lead_in=not self.wants("ingest"))
        finally:
            if beater.proc.poll() is None:
                beater.rate(0)
            watch.close()

    def ingest(self, pw: Proofwatch, n: int, beater: BeaterClient, watch: _procs.DirWatch) -> None:
        hist = pw.daemon.history
        mark = pw.mark()
        beater.rate(10.0)
        time.sleep(1.0)
        b0 = beater.stats()
        w = self.window(pw, self.plan.ingest_window, watch)
        b1 = beater.stats()
        beater.rate(1.0)
        time.sleep(STALL_AFTER + 1.0)  # a stall caused by a backlog would show within stall_after
        false = [e for e in hist.events(to_state="STALLED", after_id=mark)]
        beats = (b1["progress_beats"] - b0["progress_beats"]) / w["elapsed_s"]
        beater_cpu = (b1["cpu_s"] - b0["cpu_s"]) / w["elapsed_s"] * 100
        extra = {"window_s": w["elapsed_s"], "beats_per_s": beats, "beater_cpu_pct": beater_cpu}
        self.res.add("ingest.cpu", "proofwatch", n, "CPU, % of one core (every job heartbeating at 10 Hz)", "%",
                     [w["cpu_pct"]], **extra)
        self.res.add("ingest.writes", "proofwatch", n, "status.json writes per second", "/s",
                     [w["status_writes"] / w["elapsed_s"]], **extra)
        self.res.add("ingest.beats", "proofwatch", n, f"heartbeats written per second, all jobs (offered {n * 10}/s)",
                     "/s", [beats], **extra)
        self.res.add("ingest.false_stalls", "proofwatch", n, "false stalls (STALLED while progressing)", "",
                     [float(len(false))], stalled_jobs=sorted({e.job for e in false}), **extra)
        say(f"proofwatch N = {n} at 10 Hz ({beats:.0f} beats/s): CPU {w['cpu_pct']:.1f} %, "
            f"{w['status_writes'] / w['elapsed_s']:.1f} status writes/s, {len(false)} false stalls")

    def hang(self, pw: Proofwatch, n: int, beater: BeaterClient, *, lead_in: bool = True) -> None:
        hist = pw.daemon.history
        if lead_in:
            time.sleep(1.5)  # at 1 Hz: every job's last progress spread over the last second
        mark = pw.mark()
        t_stall = beater.stall()
        first: dict[str, Any] = {}

        def all_stalled() -> bool:
            for e in hist.events(to_state="STALLED", after_id=mark):
                first.setdefault(e.job, e)
            return len(first) >= n

        wait = self.plan.hang_wait
        try:
            pw.daemon.wait(all_stalled, STALL_AFTER + 1 + wait, f"{n} jobs STALLED")
        except BenchError:
            pass
        last = beater.stats()["last_progress"]
        beater.rate(0)  # no more writes into run directories that are about to be removed
        # The daemon records events in batches: an event may be decided in time (its ts) and
        # reach history.db later. A graceful stop flushes the recorder (a run being stopped is
        # never flagged STALLED afterwards), so every decision taken so far is read with its ts.
        visible = len(first)
        pw.stop(timeout=30)
        for e in hist.events(to_state="STALLED", after_id=mark):
            first.setdefault(e.job, e)
        runs = {}
        for r in hist.runs():
            runs.setdefault(r.job, r)  # newest first
        e2e, rel = [], []
        for job, ev in first.items():
            e2e.append((ev.ts - (last[job] + STALL_AFTER)) * 1000)
            r = runs.get(job)
            if r is not None and r.last_progress_at is not None:
                rel.append((ev.ts - (r.last_progress_at + STALL_AFTER)) * 1000)
        missing = n - len(first)
        if missing:
            self.res.note(f"proofwatch N = {n}: {missing} of {n} stalls not flagged within {wait:g} s of their "
                          "deadline (the daemon was then stopped; counted as missed)")
        if visible < len(first):
            self.res.note(f"proofwatch N = {n}: {len(first) - visible} of the {len(first)} STALLED events reached "
                          f"history.db only after the {wait:g}-s wait (their own timestamps are used)")
        self.res.add("hang.e2e", "proofwatch", n, "stall flagged past its deadline (worker's last progress + 5 s "
                     "-> STALLED)", "ms", e2e, missing=missing, censored_ms=max([wait * 1000, *e2e]), t_stall=t_stall)
        self.res.add("hang.daemon", "proofwatch", n, "stall flagged past the deadline by the daemon's own clock "
                     "(last_progress_at + 5 s -> STALLED)", "ms", rel)
        if e2e:
            say(f"proofwatch N = {n}: {len(first)} stalls, past deadline median {statistics.median(e2e):.0f} ms, "
                f"max {max(e2e):.0f} ms")

    def status_cost(self, pw: Proofwatch, n: int, watch: _procs.DirWatch, t0: float, t1: float) -> None:
        """Size of status.json and how long each atomic write takes, seen from outside: inotify
        shows the temp file created and then renamed over status.json."""
        events = [(t, m, name) for t, m, name in list(watch.events) if t0 <= t < t1]
        created: float | None = None
        durations = []
        for t, m, name in events:
            if m & _procs.IN_CREATE and "status" in name and name != "status.json":
                created = t
            elif m & _procs.IN_MOVED_TO and name == "status.json" and created is not None:
                durations.append((t - created) * 1000)
                created = None
        size = pw.daemon.status_path.stat().st_size
        self.res.add("status.size", "proofwatch", n, "status.json size", "KB", [size / 1000])
        self.res.add("status.write", "proofwatch", n, "atomic write, temp file created -> renamed (fsync included), "
                     "seen by inotify", "ms", durations)
        serialise, write = replay_status_write(pw.daemon.status_path, self.workdir)
        if serialise:
            self.res.add("status.serialise", "proofwatch", n, "serialise the document (status.store.dump_status, "
                         "replayed in the bench)", "ms", serialise)
        if write:
            self.res.add("status.replay_write", "proofwatch", n, "atomic write incl. directory fsync "
                         "(status.store.write_atomic, replayed in the bench)", "ms", write)

    # -- Monit ------------------------------------------------------------------------------------

    def monit_block(self, n: int, names: list[str], kill_names: list[str]) -> None:
        m = Monit(self.token, names, keep=self.plan.keep)
        self.live.append(m)
        try:
            if n <= self.plan.monit_spawn_max:
                m.start()
                say(f"N = {n}: monit started")
                self.spawn(m, n)
            else:
                m.prestart_children()
                m.wait_all_started(timeout=60 + n * 0.1)
                m.start()
                say(f"N = {n}: monit started on {n} children it did not start (adopted)")
                wait_for(lambda: m.alive_children() >= n, 30, "children alive")
                time.sleep(2 * Monit.CYCLE)
                self.res.note(f"monit N = {n}: spawn not measured: Monit starts services one at a time and "
                              f"waits for each (see the spawn rows at smaller N for its rate); the bench "
                              f"started the {n} children itself and Monit adopted them")
            if self.wants("steady"):
                self.steady(m, n, self.plan.get(self.plan.peer_window, n), mode="idle")
            if self.wants("crash") and kill_names:
                self.record_crash("monit", n, [self.kill_one(m, job) for job in kill_names])
        finally:
            self._stop(m)

    def monit_hang(self, n: int) -> None:
        d = self.workdir / f"hang-{n}"
        d.mkdir(exist_ok=True)
        files = {f"hb{i:04d}": d / f"hb{i:04d}" for i in range(n)}
        for p in files.values():
            p.touch()
        if self.beater is None:
            self.beater = BeaterClient(self.workdir)
        beater = self.beater
        beater.load({k: str(v) for k, v in files.items()}, "touch")
        beater.rate(1.0)
        m = Monit(self.token, [], keep=self.plan.keep, hang_files=files)
        self.live.append(m)
        try:
            m.start()
            time.sleep(2.5 * Monit.CYCLE)
            m.poll()
            mark = m.mark()
            early = [line for _, line in (m.tail.lines if m.tail else []) if "modify/change time for" in line]
            if early:
                self.res.note(f"monit hang N = {n}: {len(early)} timestamp failures before the stall")
            t_stall = beater.stall()
            seen: dict[str, float] = {}

            def all_seen() -> bool:
                assert m.tail is not None
                m.tail.poll()
                for ts, line in m.tail.lines[mark:]:
                    if "modify/change time for" in line and "failed" in line:
                        name = line.split("'", 2)[1]
                        seen.setdefault(name, ts)
                return len(seen) >= n

            wait = self.plan.hang_wait
            try:
                wait_for(all_seen, STALL_AFTER + 1 + wait, f"Monit to flag {n} stale files", check=m.check_alive,
                         interval=0.002)
            except BenchError:
                self.res.note(f"monit hang N = {n}: {n - len(seen)} of {n} stale files not flagged within "
                              f"{wait:g} s of their deadline (counted as missed)")
            last = beater.stats()["last_progress"]
            lat = [(seen[k] - (last[k] + STALL_AFTER)) * 1000 for k in seen]
            self.res.add("hang.e2e", "monit", n, "stall flagged past its deadline (last touch + 5 s -> the "
                         "timestamp failure in Monit's log)", "ms", lat, missing=n - len(seen),
                         censored_ms=wait * 1000, t_stall=t_stall)
            if lat:
                say(f"monit N = {n}: {len(lat)} stale files, past deadline median {statistics.median(lat):.0f} ms")
        finally:
            beater.rate(0)
            self._stop(m)


def replay_status_write(path: Path, workdir: Path, reps: int = 20) -> tuple[list[float], list[float]]:
    """Time the daemon's own serialiser and atomic writer on the real document (in this process,
    so it needs the proofwatch package; empty lists when its API is not the one expected)."""
    try:
        from status.models import StatusDocument
        from status.store import dump_status, write_atomic
    except ImportError:
        return [], []
    try:
        doc = StatusDocument.model_validate_json(path.read_bytes())
        serialise, write = [], []
        target = workdir / "status-replay" / "status.json"
        target.parent.mkdir(exist_ok=True)
        for _ in range(reps):
            t = time.perf_counter()
            data = dump_status(doc)
            serialise.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            write_atomic(target, data)
            write.append((time.perf_counter() - t) * 1000)
        return serialise, write
    except Exception as exc:  # the lead may be changing these: a missing replay is not a failure
        say(f"status replay skipped: {exc}")
        return [], []
