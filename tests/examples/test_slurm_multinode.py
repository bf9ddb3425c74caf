"""examples/slurm_multinode.sbatch: valid bash, and its wrim overrides build a config (the cluster part is not run)."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from wrim.engine import load_config

pytestmark = pytest.mark.repo  # runs the scripts in examples/

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "slurm_multinode.sbatch"


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_script_is_valid_bash():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


def test_overrides_build_a_config():
    text = SCRIPT.read_text()
    keys = re.findall(r"^\s+([a-z_]+\.[a-z_]+|[a-z_]+)=\"", text, flags=re.MULTILINE)
    assert {"data.root", "data.num_ids", "output_dir", "run_name"} <= set(keys)
    values = {"data.root": "/data", "data.num_ids": "2", "output_dir": "/tmp/runs", "run_name": "x"}
    cfg = load_config("sysu", [f"{k}={values[k]}" for k in keys])
    assert cfg.data.num_ids == 2 and cfg.model.sync_bn and cfg.loss.gather_across_ranks
