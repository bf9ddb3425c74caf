"""The wheel and sdist build, install into a fresh virtual environment and import with their data files."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(*command: str | Path, cwd: Path) -> str:
    result = subprocess.run([str(part) for part in command], cwd=cwd, capture_output=True, text=True)
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def test_wheel_and_sdist_install_and_import(tmp_path: Path) -> None:
    pytest.importorskip("setuptools")
    dist = tmp_path / "dist"
    _run(sys.executable, "-m", "pip", "wheel", ROOT, "--no-deps", "--no-build-isolation", "-w", dist, cwd=tmp_path)
    wheels = list(dist.glob("wrim-*.whl"))
    assert len(wheels) == 1
    sdist_dir = tmp_path / "sdist"
    _run(sys.executable, "-c", f"from setuptools import build_meta as b; b.build_sdist({str(sdist_dir)!r})", cwd=ROOT)
    assert len(list(sdist_dir.glob("wrim-*.tar.gz"))) == 1
    # a fresh environment that borrows torch & co. from this interpreter, with wrim only from the wheel
    env_dir = tmp_path / "env"
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = tmp_path / "site"
    _run(python, "-m", "pip", "install", "--no-deps", "--no-index", wheels[0], "--target", site, cwd=tmp_path)
    probe = (
        "import sys; sys.path.insert(0, {site!r}); "
        "import wrim, wrim.engine; from wrim import MIIM, GRI, ModalityMIIM; "
        "from importlib import resources; "
        "assert wrim.__file__.startswith({site!r}), wrim.__file__; "
        "assert resources.files('wrim').joinpath('py.typed').is_file(); "
        "assert resources.files('wrim').joinpath('configs', 'synthetic.yaml').is_file(); "
        "print(wrim.__version__)"
    ).format(site=str(tmp_path / "site"))
    assert _run(python, "-c", probe, cwd=tmp_path).strip() == "0.1.0"
