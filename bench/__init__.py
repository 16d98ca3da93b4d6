"""Benchmarks of the real proofwatch daemon (results in docs/PERFORMANCE.md).

Every workload starts `proofwatch run --config <tmp>/config.toml` as a subprocess in its own
temporary directory, with real worker processes (small scripts using workers.sdk), and reads
what happened from the daemon's own records: the history database (`<state_dir>/history.db`)
and `status.json`. Nothing is measured through in-process hooks.

    python -m bench [core|stall|death|overhead] [--runs N] [--jobs N] [--duration S] [--out FILE]

One module per workload (stall, death, overhead); `_daemon` starts/stops a daemon and reads its
history, `_report` renders the Markdown. Peer supervisors (supervisord, Monit) can be added as
further targets for the same workloads.
"""
