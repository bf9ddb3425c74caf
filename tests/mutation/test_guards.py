"""Guard deletion (guards.py) as tests: each guard of the readers of other people's files, neutralised, must make a
hostile-input test fail.

The check itself is slow (each guard reruns one hostile test in a copy of the tree): ``python -m pytest -m slow
tests/mutation/test_guards.py``, or ``python tests/mutation/guards.py``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_SCRIPT = Path(__file__).with_name("guards.py")


def _load():
    spec = importlib.util.spec_from_file_location("mutation_guards", _SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["mutation_guards"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.repo  # the wrim/ source of the checkout
def test_guard_snippets_are_in_the_tree() -> None:
    """Cheap, in the default suite: every guard's snippet still occurs exactly once (moved code must be followed)."""
    guards = _load()
    sys.modules["run_mutations"].check_snippets(guards.ROOT, guards.GUARDS)
    assert len({g.name for g in guards.GUARDS}) == len(guards.GUARDS)


@pytest.mark.slow
def test_every_guard_deleted_is_caught() -> None:
    guards = _load()
    results = guards.run(verbose=False, mutants=guards.GUARDS)
    survivors = [name for name, caught in results.items() if caught is None]
    assert not survivors, f"guards whose deletion no test notices: {survivors}"
