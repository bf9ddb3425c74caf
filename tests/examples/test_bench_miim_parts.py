"""examples/benchmarks/bench_miim_parts.py runs and prints one row per MIIM, a total and the GEMM table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.repo  # runs the scripts in examples/

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "benchmarks" / "bench_miim_parts.py"


def test_tiny_run_prints_every_miim_and_the_gemm_rates() -> None:
    args = ["--device", "cpu", "--model", "wrimnet_resnet18", "--size", "64x32", "--batch", "8", "--iters", "1"]
    result = subprocess.run([sys.executable, str(SCRIPT), *args, "--warmup", "0"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert [line.split("|")[1].strip() for line in lines if line.startswith("| stage")] == [
        f"stage{i}" for i in (1, 2, 3, 4)
    ]
    assert any(line.startswith("| all |") for line in lines)
    assert sum(line.startswith("| 1296 x ") for line in lines) == 5  # 8 x 162 tokens, five products


def test_ab_token_linear_prints_both_paths_for_training_and_inference() -> None:
    script = SCRIPT.parent / "ab_token_linear.py"
    args = ["--model", "wrimnet_resnet18", "--size", "64x32", "--batch", "8", "--infer-batch", "8"]
    result = subprocess.run(
        [sys.executable, str(script), *args, "--iters", "1", "--warmup", "0"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert [line.split(":")[0].split()[-3] for line in lines] == ["train", "infer"]
    assert all("F.linear" in line and "TokenLinear" in line for line in lines)
