"""Provenance and protocol cards of real (tiny) runs, as a user gets them from ``wrim train`` and ``wrim eval``."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import numpy
import pytest
import timm
import torch
import torchvision
from PIL import Image

import wrim
from tests.engine._tiny import FAULT, wrimnet_test_tiny
from wrim.cli import main
from wrim.engine.provenance import COMPARED_FIELDS, git_state
from wrim.engine.rundir import RunFolder
from wrim.models import _registry

DATASET_ARGS = ["--dataset-arg", "num_ids=8", "--dataset-arg", "num_test_ids=4", "--dataset-arg", "images_per_camera=2"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """One finished 2-epoch run of the fault-injection size (a few seconds)."""
    root = tmp_path_factory.mktemp("runs")
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(_registry._ENTRYPOINTS, "wrimnet_test_tiny", wrimnet_test_tiny)
        assert main(["train", *FAULT, f"output_dir={root}", "run_name=tiny"]) == 0
    return root / "tiny"


@pytest.fixture
def tiny_model(monkeypatch):
    monkeypatch.setitem(_registry._ENTRYPOINTS, "wrimnet_test_tiny", wrimnet_test_tiny)


def test_provenance_holds_every_field_with_real_values(finished_run: Path) -> None:
    provenance = RunFolder(finished_run).read_provenance()
    (segment,) = provenance["segments"]
    assert segment["wrim"]["version"] == wrim.__version__
    assert segment["wrim"]["commit"] == git_state()["commit"]  # this checkout's commit (None from a wheel)
    assert segment["wrim"]["dirty"] == git_state()["dirty"]
    assert segment["python"] == platform.python_version() and segment["torch"] == torch.__version__
    assert segment["torchvision"] == torchvision.__version__ and segment["timm"] == timm.__version__
    assert segment["numpy"] == numpy.__version__
    assert segment["device"]["type"] == "cpu" and segment["device"]["name"] and segment["device"]["processes"] == 1
    assert segment["threads"]["torch"] == torch.get_num_threads()
    assert segment["precision"] == "fp32" and segment["seed"] == 0
    config = RunFolder(finished_run).read_config()
    assert segment["config"] == wrim.engine.config_to_dict(config)
    assert segment["config_sha256"] == wrim.engine.config.config_sha256(config)
    counts = segment["dataset"]["counts"]
    assert counts["train"]["ids"] == 8 and counts["query"]["infrared"] > 0 and counts["gallery"]["visible"] > 0
    assert segment["started"] <= segment["ended"] and segment["outcome"] == "finished"
    assert segment["epochs"] == [0, 2] and segment["resumed"] is False


def test_eval_json_card_equals_the_trainers_card(finished_run: Path, tiny_model, capsys) -> None:
    final = RunFolder(finished_run).read_final_metrics()
    assert main(["eval", "--checkpoint", str(finished_run), "--dataset", "synthetic", "--json", *DATASET_ARGS]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["card"] == final["card"]
    assert final["card"]["checkpoint"]["tag"] == "best" and "selected_on" in final["card"]["checkpoint"]
    assert main(["eval", "--checkpoint", str(finished_run), "--dataset", "synthetic", *DATASET_ARGS]) == 0
    table = capsys.readouterr().out
    assert table.splitlines()[0].startswith("synthetic (generator ") and "no re-ranking, flip off, fp32" in table


def test_resume_on_other_versions_keeps_both_segments(tmp_path: Path, tiny_model, capsys) -> None:
    one_epoch = [item for item in FAULT if not item.startswith("epochs=")] + ["epochs=1"]
    assert main(["train", *one_epoch, f"output_dir={tmp_path}", "run_name=r"]) == 0
    folder = RunFolder(tmp_path / "r")
    provenance = folder.read_provenance()
    provenance["segments"][0]["torch"] = "1.0.0"  # as if the first epoch had run on another torch
    folder.file("provenance.json").write_text(json.dumps(provenance))
    assert main(["train", "--config", "synthetic", "--resume", str(tmp_path / "r"), "epochs=2"]) == 0
    first, second = folder.read_provenance()["segments"]
    assert (first["torch"], second["torch"]) == ("1.0.0", torch.__version__)
    assert second["resumed"] is True and second["epochs"] == [1, 2] and second["outcome"] == "finished"
    assert "torch" in COMPARED_FIELDS


def test_a_truncated_json_file_is_one_line(finished_run: Path, tmp_path: Path, capsys) -> None:
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(finished_run, copy)
    (copy / "model.json").write_text('{"model": "wrimnet_te')
    assert main(["eval", "--checkpoint", str(copy), "--dataset", "synthetic"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "model.json" in err and "not valid JSON" in err


def test_a_run_without_card_gets_one_from_wrim_eval(finished_run: Path, tmp_path: Path, tiny_model, capsys) -> None:
    import shutil

    old = tmp_path / "old"
    shutil.copytree(finished_run, old)
    final = json.loads((old / "final_metrics.json").read_text())
    card = final.pop("card")
    (old / "final_metrics.json").write_text(json.dumps(final))
    (old / "provenance.json").unlink()
    assert main(["eval", "--checkpoint", str(old), "--dataset", "synthetic", *DATASET_ARGS]) == 0
    assert "had no protocol card" in capsys.readouterr().err
    rewritten = RunFolder(old).read_final_metrics()
    assert rewritten["card"] == card and rewritten["mAP"] == pytest.approx(final["mAP"], abs=1e-6)
    reconstructed = RunFolder(old).read_provenance()
    assert reconstructed["segments"] == [] and "unknown" in reconstructed["reconstructed"]["note"]


def _regdb_tree(root: Path) -> None:
    """A RegDB tree of 8 people x 3 images per modality, trials 1 and 2 (train / test halves rotated)."""
    ids = list(range(1, 9))
    for pid in ids:
        for k in range(3):
            for folder, mode in (("Visible", "RGB"), ("Thermal", "L")):
                path = root / folder / str(pid) / f"p{pid}_{k}.bmp"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.new(mode, (32, 64), color=(pid * 20, k * 40, 90) if mode == "RGB" else pid * 20).save(path)
    (root / "idx").mkdir()
    for trial in (1, 2):
        rotated = ids[trial:] + ids[:trial]
        for part, part_ids in (("train", sorted(rotated[:4])), ("test", sorted(rotated[4:]))):
            for modality, folder in (("visible", "Visible"), ("thermal", "Thermal")):
                lines = [
                    f"{folder}/{pid}/{p.name} {label}"
                    for label, pid in enumerate(part_ids)
                    for p in sorted((root / folder / str(pid)).iterdir())
                ]
                (root / "idx" / f"{part}_{modality}_{trial}.txt").write_text("\n".join(lines) + "\n")


def test_regdb_cross_trial_evaluation_exits_2_unless_allowed(tmp_path: Path, tiny_model, capsys) -> None:
    _regdb_tree(tmp_path / "RegDB")
    replaced = ("data.dataset_kwargs", "epochs=", "eval.final_trials", "eval.trials")
    regdb = [item for item in FAULT if not item.startswith(replaced)] + [
        "epochs=1", "data.dataset=regdb", f"data.root={tmp_path / 'RegDB'}", "data.dataset_kwargs={trial: 1}",
        "eval.protocol={direction: v2t}", "eval.trials=null", "eval.final_trials=null", "data.strict_check=false",
    ]  # fmt: skip
    assert main(["train", *regdb, f"output_dir={tmp_path}", "run_name=regdb"]) == 0
    assert RunFolder(tmp_path / "regdb").read_model_info()["training_trial"] == 1
    common = ["eval", "--checkpoint", str(tmp_path / "regdb"), "--dataset", "regdb", "--root", str(tmp_path / "RegDB")]
    capsys.readouterr()
    assert main([*common, "--dataset-arg", "trial=2"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "trained on regdb split 1" in err and "--allow-cross-trial" in err
    assert main([*common, "--dataset-arg", "trial=2", "--allow-cross-trial", "--json"]) == 0
    card = json.loads(capsys.readouterr().out)["card"]
    assert card["cross_trial"] is True and card["training_trial"] == 1 and card["trials"] == [2]
    assert main([*common, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["card"]["cross_trial"] is False


def test_git_state_of_an_installed_copy_is_unknown(tmp_path: Path) -> None:
    package = tmp_path / "site-packages" / "wrim"
    package.mkdir(parents=True)
    assert git_state(package) == {"source": "installed", "commit": None, "dirty": None, "dirty_files": []}
