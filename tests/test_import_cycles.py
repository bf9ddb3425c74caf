"""No import cycle between wrim's modules or sub-packages, and no private name imported across sub-packages
(tests/_import_cycles.py measures them; ``python tests/_import_cycles.py`` prints them)."""

from pathlib import Path

import pytest

from tests._import_cycles import analyse

pytestmark = pytest.mark.repo  # reads the wrim/ source tree

ROOT = Path(__file__).resolve().parents[1]


def test_no_import_cycle_and_no_private_import_across_subpackages() -> None:
    module_cycles, package_cycles, private = analyse(ROOT)
    assert module_cycles == [] and package_cycles == [], (module_cycles, package_cycles)
    assert private == [], private
