"""``wrim eval --gate-maps N`` writes the gate-map PNG of N queries into the checkpoint's run folder (slow)."""

import pytest

from tests.engine._tiny import DATASET_ARGS, tiny_overrides
from wrim.cli import main


@pytest.mark.slow  # trains a tiny model first: ~35 s on 2 cores; tests/test_visualize.py covers the PNG by default
def test_eval_gate_maps_writes_a_png(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    overrides = tiny_overrides(tmp_path, "gates", "epochs=1", "data.num_workers=0", "eval.every=0")
    assert main(["train", "--config", "synthetic", *overrides]) == 0
    checkpoint = tmp_path / "gates" / "last.safetensors"
    args = ["eval", "--checkpoint", str(checkpoint), "--dataset", "synthetic", *DATASET_ARGS, "--trials", "0"]
    assert main([*args, "--num-workers", "0", "--gate-maps", "3"]) == 0
    out = capsys.readouterr().out
    path = tmp_path / "gates" / "gate_maps.png"
    assert f"gate maps of 3 queries: {path}" in out
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main([*args, "--num-workers", "0", "--gate-maps", "-1"]) == 2
    assert "--gate-maps must be a number of queries >= 1" in capsys.readouterr().err
