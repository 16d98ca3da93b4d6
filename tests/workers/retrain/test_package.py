"""workers/retrain: the public names, and what the package may import."""

from __future__ import annotations

import workers.retrain as retrain


def test_all_is_sorted_and_every_name_exists() -> None:
    assert retrain.__all__ == sorted(retrain.__all__)
    for name in retrain.__all__:
        assert hasattr(retrain, name), name


def test_importing_the_package_does_not_load_the_heavy_libraries() -> None:
    import subprocess
    import sys

    code = ("import sys, workers.retrain, workers.retrain.__main__; "
            "print(sorted(m for m in ('sklearn', 'matplotlib', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"  # --help and bad flags answer at once
