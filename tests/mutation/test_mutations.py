"""The mutation smoke check (run_mutations.py) as a slow test: every planted bug must make its tests fail.

Minutes on 2 cores (each mutant reruns a few test files in a copy of the tree): ``python -m pytest -m slow
tests/mutation``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.repo  # mutates a copy of the checkout

_SCRIPT = Path(__file__).with_name("run_mutations.py")


def _load():
    spec = importlib.util.spec_from_file_location("run_mutations", _SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["run_mutations"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_snippets_are_in_the_tree() -> None:
    """Cheap guard in the default suite: every planted bug's snippet still occurs exactly once."""
    module = _load()
    module.check_snippets(module.ROOT, module.MUTANTS)


@pytest.mark.slow
def test_every_planted_bug_is_caught() -> None:
    results = _load().run(verbose=False)
    survivors = [name for name, caught in results.items() if caught is None]
    assert not survivors, f"planted bugs no test catches: {survivors}"
