"""Benchmarks of the real proofwatch daemon, alone and against its peers (docs/PERFORMANCE.md).

    python -m bench [compare] [--quick] [--only SUP,..] [--workloads W,..] [--sizes N,..] [--kills K]
    python -m bench core|stall|death|overhead [--runs N] [--jobs N] [--duration S]

`compare` (the default; `make bench`) runs the same workloads — spawn, crash, hang, steady state,
heartbeat ingest, status write cost — at N = 50, 200 and 1,000 jobs through proofwatch,
supervisord (PyPI, bench/.venv-supervisord) and Monit (Debian), and prints one table per
workload with each peer's ratio to proofwatch and the targets. `core` measures proofwatch alone.

Every supervisor is a real subprocess in its own temp directory; results come from its own
records (proofwatch's history.db and status.json, the peers' logs), the children's own start
stamps and the process table — never from in-process hooks.

Modules: `compare` (the peer comparison), `_targets` (the three supervisors), `_procs` (the
shared child, process sweeps, sampling, inotify), `_beater` (heartbeats written on the
children's behalf), `_compare_report` (tables and targets); `stall`, `death`, `overhead` with
`_daemon` and `_report` for `core`.
"""
