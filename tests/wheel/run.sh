#!/usr/bin/env bash
# The wheel job (CI, after the floor job): wrim as a user gets it, built and installed, never the source tree.
#  1. builds the sdist and the wheel (`python -m build`: the sdist, then a wheel from the sdist) and a wheel
#     directly from the tree, each from a copy of the files git sees (no build/ or *.egg-info leftovers);
#  2. `twine check --strict` on all three; lists the sdist and checks it and both wheels file by file
#     (tests/wheel/check_dist.py: nothing missing, nothing stray, the two wheels equal);
#  3. installs the wheel, with the test extras, into a fresh virtualenv (torch and torchvision at the versions of
#     README's test command);
#  4. from a folder outside the checkout: a one-epoch `wrim train` of the main job, `wrim check-data` on a small
#     list dataset this script writes, and the default test suite of the sdist's tests/ against the installed
#     package (WRIM_TEST_INSTALLED=1: the session stops unless wrim comes from site-packages; tests marked
#     `repo`, which read docs/, examples/ and the rest of the checkout, skip).
# Each step prints its elapsed seconds.
set -euo pipefail
unset PYTHONPATH  # the installed wheel, whatever the caller's environment points at
cd "$(dirname "$0")/../.."
repo="$PWD"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT  # the virtualenv holds about 5 GB
start=$SECONDS
step() { echo "wheel job [$((SECONDS - start)) s]: $*"; }
check_dist=(python3 "$repo/tests/wheel/check_dist.py")

step "build tools in a virtualenv of their own"
python3 -m venv "$work/tools"
"$work/tools/bin/pip" install --quiet build twine

step "sdist and wheel from the sdist; the direct wheel"
"${check_dist[@]}" copy-tree "$repo" "$work/src"
"${check_dist[@]}" copy-tree "$repo" "$work/src-direct"
"$work/tools/bin/python" -m build --outdir "$work/dist" "$work/src" >"$work/build.log" 2>&1 || { cat "$work/build.log"; exit 1; }
"$work/tools/bin/python" -m build --wheel --outdir "$work/direct" "$work/src-direct" >>"$work/build.log" 2>&1 \
    || { cat "$work/build.log"; exit 1; }
sdist=("$work"/dist/wrim-*.tar.gz)
wheel=("$work"/dist/wrim-*.whl)
direct=("$work"/direct/wrim-*.whl)
"$work/tools/bin/twine" check --strict "${sdist[0]}" "${wheel[0]}" "${direct[0]}"
"${check_dist[@]}" check "$work/src" "${sdist[0]}" "${wheel[0]}" "${direct[0]}"

step "install the wheel into a fresh virtualenv"
python3 -m venv "$work/venv"
# shellcheck disable=SC1091
source "$work/venv/bin/activate"
pip install --quiet torch==2.14.1 torchvision==0.29.1 "${wheel[0]}[test,onnx,pml,train]"
outside="$work/outside"
mkdir -p "$outside"
cd "$outside"
python -c "import wrim, sys; print(f'wrim {wrim.__version__} from {wrim.__file__}'); \
sys.exit(0 if '/site-packages/wrim/' in wrim.__file__ else 'wrim is not the installed wheel')"

step "the main job, shortened: wrim train epochs=1"
wrim train epochs=1 eval.every=1 eval.final_trials=[0] data.num_workers=0 output_dir="$outside/runs" run_name=main
test -s "$outside/runs/main/final_metrics.json"

step "wrim check-data on a small list dataset"
python - "$outside/listdata" <<'EOF'
"""4 identities x 2 modalities x 2 images of 16x8 random pixels: ids 0-1 train, ids 2-3 query (infrared) and
gallery (visible)."""
import sys
from pathlib import Path

import numpy as np
from PIL import Image

root = Path(sys.argv[1])
rng = np.random.default_rng(0)
rows = ["path,pid,camera,modality,split"]
for pid in range(4):
    for modality, camera in (("visible", 1), ("infrared", 3)):
        split = "train" if pid < 2 else ("gallery" if modality == "visible" else "query")
        for shot in range(2):
            path = f"{modality}/{pid:04d}_{shot}.png"
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (16, 8, 3), dtype=np.uint8)).save(root / path)
            rows.append(f"{path},{pid},{camera},{modality},{split}")
(root / "list.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
EOF
wrim check-data --dataset list --root "$outside/listdata"

step "the test suite against the installed package, from the sdist's tests"
mkdir -p "$work/suite"
tar -xzf "${sdist[0]}" -C "$work/suite"
suite=("$work"/suite/wrim-*)
rm -rf "${suite[0]}/wrim"  # the tests must import the installed wrim, not the sdist's copy
cd "${suite[0]}"
WRIM_TEST_INSTALLED=1 python -m pytest -p no:cacheprovider
step "passed (${wheel[0]##*/} from ${sdist[0]##*/})"
