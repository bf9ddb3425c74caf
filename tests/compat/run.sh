#!/usr/bin/env bash
# The floor job (CI, after the main run): in a fresh virtualenv on Python 3.10, the oldest versions wrim declares
# (pyproject.toml; the tested range is in README and docs/index.md), then the default test suite. The main run
# tests the newest versions.
# The floor wheels (torch's CUDA build: about 2.5 GB) are kept in WRIM_FLOOR_WHEELS (default
# ~/.cache/wrim/floor-wheels), so a second run on the same machine downloads nothing.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo="$PWD"
floor=(torch==2.3.1 torchvision==0.18.1 timm==1.0.10 numpy==1.26.4 pytorch-metric-learning==2.0.0)
wheels="${WRIM_FLOOR_WHEELS:-$HOME/.cache/wrim/floor-wheels}"

python_floor=python3.10
if ! python3.10 --version >/dev/null 2>&1; then  # not on PATH (or a pyenv shim of another version)
    python_floor="$(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.10*/bin/python3.10 2>/dev/null | tail -n 1)"
fi
if [[ -z "$python_floor" ]]; then
    echo "floor job: no Python 3.10 interpreter found (python3.10 or pyenv's versions/3.10*)" >&2
    exit 2
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT  # the venv holds about 5 GB
"$python_floor" -m venv "$work/venv"
# shellcheck disable=SC1091
source "$work/venv/bin/activate"
mkdir -p "$wheels"
stamp="$wheels/.complete-$(echo "${floor[*]}" | md5sum | cut -c1-12)"
if [[ ! -e "$stamp" ]]; then
    pip download --quiet -d "$wheels" "${floor[@]}" && touch "$stamp"
fi
pip install --quiet --no-index --find-links "$wheels" "${floor[@]}"
pip install --quiet -e ".[test,pml,train]" "setuptools>=77"  # the build requirement, for test_packaging's build
python - <<'EOF'
import sys, numpy, timm, torch, torchvision, pytorch_metric_learning as pml
print(f"floor job: Python {sys.version.split()[0]}, torch {torch.__version__}, torchvision {torchvision.__version__}, "
      f"timm {timm.__version__}, numpy {numpy.__version__}, pytorch-metric-learning {pml.__version__}")
EOF
# the default suite, which includes the main job (tests/engine/test_synthetic_default.py: README's `wrim train`)
python -m pytest -p no:cacheprovider
echo "floor job: passed (the default suite at the floor versions; $repo)"
