"""`proofwatch run` builds its pydantic models without pydantic's plugin lookup, and so
without importlib.metadata and what it imports (zipfile, email, csv, tempfile, bz2, lzma)."""

from __future__ import annotations

import importlib
import inspect
import json
import subprocess
import sys
from pathlib import Path

from supervisor import pydantic_plugins

LEAN = """
import json, sys
from supervisor.pydantic_plugins import skip_lookup
first = skip_lookup()
again = skip_lookup()
from supervisor.config import load_config
cfg = load_config(sys.argv[1])
import pydantic.plugin._loader as loader
print(json.dumps({"first": first, "again": again, "jobs": sorted(cfg.jobs),
                  "plugins": list(loader.get_plugins()),
                  "loaded": sorted(m for m in ("importlib.metadata", "zipfile", "email", "csv", "lzma", "bz2")
                                   if m in sys.modules)}))
"""


def test_pydantic_still_imports_get_plugins_from_the_loader_we_replace() -> None:
    """The pin's guard: a pydantic that moved its loader would make skip_lookup a no-op."""
    validator = importlib.import_module("pydantic.plugin._schema_validator")
    assert "from ._loader import get_plugins" in inspect.getsource(validator.create_schema_validator)
    real = importlib.import_module(pydantic_plugins.LOADER)
    assert callable(real.get_plugins)


def test_a_loaded_pydantic_loader_is_left_alone() -> None:
    importlib.import_module(pydantic_plugins.LOADER)
    assert pydantic_plugins.skip_lookup() is False
    assert sys.modules[pydantic_plugins.LOADER].__file__.endswith("_loader.py")


def test_models_build_and_validate_with_no_plugins_and_no_importlib_metadata(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text('[jobs.a]\ncommand = ["true"]\n[jobs.b]\ncommand = ["true"]\nkind = "service"\n')
    out = subprocess.run([sys.executable, "-c", LEAN, str(cfg)], capture_output=True, text=True, timeout=60,
                         cwd=tmp_path, check=False)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got == {"first": True, "again": False, "jobs": ["a", "b"], "plugins": [], "loaded": []}, got


def test_without_it_pydantic_imports_importlib_metadata() -> None:
    """The cost the module exists to avoid is real (else it is dead code)."""
    code = "import sys, pydantic\nclass M(pydantic.BaseModel):\n    a: int = 0\nprint('importlib.metadata' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "True"
