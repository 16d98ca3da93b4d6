"""List the example jobs."""

print("examples: prove, stall, crash, tick, mute  (python -m workers.examples.NAME)")
