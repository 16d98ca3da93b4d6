"""Settings shared by the property-based fuzz tests (hypothesis, without its pytest plugin).

In CI every property runs a fixed, derandomized sequence of examples, so a failure reproduces.
A long local campaign explores new random inputs instead:

    PROOFWATCH_FUZZ_EXAMPLES=20000 .venv/bin/python -m pytest -q -p no:cacheprovider --timeout=0 \\
        tests/workers/test_heartbeat_fuzz.py tests/supervisor/test_config_fuzz.py \\
        tests/supervisor/test_api_body_fuzz.py

(roughly 5-20 s per 1000 examples of a property; --timeout=0 lifts pytest-timeout's
120 s per test).

A failure prints the falsifying example; add it as an `@example` (or a plain regression test).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_CAMPAIGN = int(os.environ.get("PROOFWATCH_FUZZ_EXAMPLES", "0") or 0)


def fuzz_settings(examples: int) -> settings:
    """`examples` derandomized examples, or PROOFWATCH_FUZZ_EXAMPLES random ones when set."""
    return settings(
        max_examples=_CAMPAIGN or examples,
        derandomize=not _CAMPAIGN,
        database=None,  # no .hypothesis/ directory in the tree
        deadline=None,  # timing varies on a shared 2-core runner; hangs are caught by pytest-timeout
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                               HealthCheck.filter_too_much],
        print_blob=True,
    )
