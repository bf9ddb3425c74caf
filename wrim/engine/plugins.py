"""User code for the command line: modules that register models (``@wrim.register_model``) and datasets
(``@wrim.data.register_dataset``) before ``wrim train``, ``wrim eval`` or ``wrim check-data`` runs.

Two ways in:

- ``--import MODULE`` (repeatable): a module name on ``PYTHONPATH`` (``my_project.wrim_parts``) or the path of a
  ``.py`` file (``./my_parts.py``);
- a Python entry point in the group ``wrim.plugins`` whose value is a module, so that a pip-installed plugin needs
  no flag. In the plugin's ``pyproject.toml``:

```toml
[project.entry-points."wrim.plugins"]
my_parts = "my_project.wrim_parts"
```

A plugin that fails to import is one ``ValueError`` line naming the module and its error.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

__all__ = ["ENTRY_POINT_GROUP", "import_module_or_file", "load_plugins"]

#: The entry-point group whose entries (modules) every ``wrim`` command that builds parts imports.
ENTRY_POINT_GROUP = "wrim.plugins"


def import_module_or_file(name: str) -> ModuleType:
    """Imports a module by name, or a ``.py`` file by path (registered in ``sys.modules`` under its stem).

    Raises:
        ValueError: the module cannot be found or raises while importing (one line: the module and its error).
    """
    try:
        if name.endswith(".py"):
            path = Path(name).expanduser()
            if not path.is_file():
                raise FileNotFoundError(f"no such file {str(path)!r}")
            loaded = sys.modules.get(path.stem)
            if loaded is not None and Path(getattr(loaded, "__file__", "") or "").resolve() == path.resolve():
                return loaded  # imported before (a repeated --import)
            spec = importlib.util.spec_from_file_location(path.stem, path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[path.stem] = module
            spec.loader.exec_module(module)
            return module
        return importlib.import_module(name)
    except Exception as err:
        sys.modules.pop(Path(name).stem if name.endswith(".py") else name, None)
        detail = " ".join(str(err).split())
        raise ValueError(f"plugin {name!r} failed to import: {type(err).__name__}: {detail}") from err


def load_plugins(modules: list[str] | tuple[str, ...] = ()) -> list[str]:
    """Imports every ``wrim.plugins`` entry point, then ``modules`` (``--import``), in that order.

    Returns:
        The names imported (entry points as ``entry name (module)``).

    Raises:
        ValueError: a plugin that fails to import.
    """
    loaded = []
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        import_module_or_file(entry.module)
        loaded.append(f"{entry.name} ({entry.value})")
    for name in modules:
        import_module_or_file(name)
        loaded.append(name)
    return loaded
