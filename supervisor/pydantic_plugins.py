"""The daemon builds its pydantic models without pydantic's plugin lookup.

When pydantic builds its first model it looks up plugins (entry points of the "pydantic"
group), and for that its loader imports `importlib.metadata` at the top of the module, which
brings zipfile, email, csv, tempfile, shutil, bz2 and lzma with it: 2.2 MiB of the daemon's
RSS (`python -m bench.memory`) for a lookup the daemon has no use for; a plugin would
instrument the supervisor itself. `PYDANTIC_DISABLE_PLUGINS=1` skips the lookup but still pays
for the import. `skip_lookup()` puts in a loader that finds no plugin, as that variable does,
before pydantic imports the real one. Only `proofwatch run` calls it (`supervisor.entry`);
the CLI, the workers and the tests build their models with pydantic's own loader.

pydantic is pinned (constraints.txt); `tests/supervisor/test_pydantic_plugins.py` checks that
the loader's module name and `get_plugins()` are still the ones pydantic imports.
"""

from __future__ import annotations

import sys
import types

LOADER = "pydantic.plugin._loader"


def _no_plugins() -> tuple[()]:
    """pydantic's `get_plugins()` when plugins are disabled: none."""
    return ()


def skip_lookup() -> bool:
    """Make pydantic find no plugins without importing importlib.metadata. False (and nothing
    changed) when pydantic's own loader was already imported."""
    if LOADER in sys.modules:
        return False
    loader = types.ModuleType(LOADER, "pydantic's plugin loader for the daemon: no plugins, no lookup")
    loader.get_plugins = _no_plugins  # type: ignore[attr-defined]
    sys.modules[LOADER] = loader
    return True
