"""Smoke test of examples/benchmarks/bench_losses.py: it runs and prints a markdown row per batch size."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

pytestmark = pytest.mark.repo  # runs examples/benchmarks/bench_losses.py

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "benchmarks" / "bench_losses.py"


def test_bench_losses_prints_a_table(capsys):
    main = runpy.run_path(str(SCRIPT))["main"]
    main(["--batch-sizes", "16", "32", "--dim", "8", "--repeats", "1", "--loop-repeats", "1", "--devices", "cpu"])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| cpu |")]
    assert [row.split("|")[2].strip() for row in rows] == ["16", "32"]
    assert all(float(row.split("|")[7]) < 1e-5 for row in rows)  # vectorised == loop reference
