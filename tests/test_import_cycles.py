"""No import cycle between wrim's modules or sub-packages, deferred imports inside functions counted, and no private
name imported across sub-packages (tests/_import_cycles.py measures them; ``python tests/_import_cycles.py`` prints
them)."""

from pathlib import Path

import pytest

from tests._import_cycles import analyse

pytestmark = pytest.mark.repo  # reads the wrim/ source tree

ROOT = Path(__file__).resolve().parents[1]


def _in_models(cycle: list[str]) -> bool:
    return all(module.startswith("wrim.models.") for module in cycle)


def test_no_import_cycle_and_no_private_import_across_subpackages() -> None:
    module_cycles, package_cycles, private = analyse(ROOT)
    outside_models = [cycle for cycle in module_cycles if not _in_models(cycle)]
    assert outside_models == [] and package_cycles == [], (outside_models, package_cycles)
    assert private == [], private


def test_no_import_cycle_inside_models() -> None:
    module_cycles, _, _ = analyse(ROOT)
    assert [cycle for cycle in module_cycles if _in_models(cycle)] == []


def test_a_deferred_import_closes_a_cycle(tmp_path: Path) -> None:
    """An import inside a function counts: ``a`` imports ``b`` at the top, ``b`` imports ``a`` in a function."""
    package = tmp_path / "wrim" / "pkg"
    package.mkdir(parents=True)
    for init in (tmp_path / "wrim" / "__init__.py", package / "__init__.py"):
        init.write_text("")
    (package / "a.py").write_text("from wrim.pkg.b import g\n")
    (package / "b.py").write_text("def g():\n    from wrim.pkg.a import g as f\n    return f\n")
    module_cycles, _, _ = analyse(tmp_path)
    assert module_cycles == [["wrim.pkg.a", "wrim.pkg.b"]]
