"""The jobs proofwatch ships, and the one module a worker needs to talk to it (workers.sdk).

workers never import supervisor or status: a job runs standalone.
"""
