"""``wrim export``: a tiny finished run becomes a folder that loads in one line, with its metrics and recipe in the
card and ONNX checked against torch; an unfinished run or a folder that is no run is one line and exit 2."""

from __future__ import annotations

import json
import os
import shutil

import pytest
import torch

import wrim
from tests.engine._tiny import FAULT, wrimnet_test_tiny
from wrim.cli import main
from wrim.engine.checkpoint import load_checkpoint
from wrim.models import _registry, create_model

MODALITIES = torch.tensor([0, 1, 1, 0])


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """A 2-epoch run of the 0.5 M-parameter tiny model (evaluated after each epoch), registered while the module
    runs."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(_registry._ENTRYPOINTS, "wrimnet_test_tiny", wrimnet_test_tiny)
        root = tmp_path_factory.mktemp("export")
        assert main(["train", *FAULT, f"output_dir={root}", "run_name=tiny"]) == 0
        yield root / "tiny"


def _checkpoint_model(run_dir, tag: str) -> torch.nn.Module:
    info = json.loads((run_dir / "model.json").read_text())
    model = create_model(info["model"], num_classes=info["num_classes"], img_size=tuple(info["img_size"]))
    load_checkpoint(run_dir, tag, model)
    return model.eval()


def test_export_best_loads_with_metrics_and_recipe(finished_run, tmp_path, capsys) -> None:
    out = tmp_path / "shared"
    assert main(["export", str(finished_run), "--out", str(out)]) == 0
    assert "exported best checkpoint" in capsys.readouterr().out
    model = wrim.from_pretrained(out).eval()
    images = torch.randn(4, 3, 64, 32)
    with torch.no_grad():
        assert torch.equal(model(images, MODALITIES), _checkpoint_model(finished_run, "best")(images, MODALITIES))
    final = json.loads((finished_run / "final_metrics.json").read_text())
    card = (out / "README.md").read_text()
    cells_keys = ("R1", "R5", "R10", "R20", "mAP", "mINP")
    cells = " | ".join(f"{final[key]:.2f}" for key in cells_keys)
    protocol = (  # the row is named by the run's protocol card
        "synthetic (generator 5) mode=all shots=1, trials 0, galleries agw_seed, no re-ranking, flip off, fp32, "
        f"checkpoint best (epoch {final['card']['checkpoint']['epoch']}, chosen on R1 of trials [0])"
    )
    assert f"| {protocol} | 1 | {cells} |" in card  # one trial: eval.final_trials=[0]
    assert "name: wrimnet_test_tiny" in card and "epochs: 2" in card  # the recipe (config.yaml)
    info = json.loads((out / "config.json").read_text())
    assert info["architecture"] == "wrimnet_test_tiny" and info["recipe"]["epochs"] == 2
    assert "output_dir" not in info["recipe"] and "root" not in info["recipe"]["data"]  # no local paths
    assert str(finished_run.parent) not in card
    assert all(oct(p.stat().st_mode & 0o044) == oct(0o044 & ~_umask()) for p in out.iterdir())  # readable to share
    assert info["metrics"][protocol] == {**{k: final[k] for k in cells_keys}, "trials": 1}


@pytest.mark.filterwarnings("ignore")
def test_export_last_with_onnx(finished_run, tmp_path) -> None:
    pytest.importorskip("onnxruntime", reason="pip install 'wrim[onnx]'")
    out = tmp_path / "with_onnx"
    assert main(["export", str(finished_run), "--out", str(out), "--checkpoint", "last", "--onnx"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.onnx", "model.safetensors"]
    card = (out / "README.md").read_text()
    assert "## ONNX" in card and "largest element difference" in card and "bound 0.0003" in card
    model = wrim.from_pretrained(out).eval()
    images = torch.randn(4, 3, 64, 32)
    with torch.no_grad():
        assert torch.equal(model(images, MODALITIES), _checkpoint_model(finished_run, "last")(images, MODALITIES))


def test_unfinished_run_is_one_line_exit_2(finished_run, tmp_path, capsys) -> None:
    unfinished = tmp_path / "unfinished"
    shutil.copytree(finished_run, unfinished, ignore=shutil.ignore_patterns(".lock", "final_metrics.json"))
    assert main(["export", str(unfinished), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "has not finished (no final_metrics.json)" in err
    assert f"wrim train --resume {unfinished}" in err and not (tmp_path / "out").exists()


def test_not_a_run_folder_is_one_line_exit_2(tmp_path, capsys) -> None:
    assert main(["export", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "model.json' is missing" in err and "is not a wrim run folder" in err
