"""proofwatch's mechanisms: config loading, the daemon, spawning, heartbeat intake, alerts, CLI.

The only package with effects (processes, signals, sockets, file and store writes).
May import: policies, status, workers.protocol. Nothing imports supervisor.
"""
