"""Each reader's hostile file on the command line: one line on stderr, naming the file, and exit code 2.

``wrim train`` reads YAML configs, overrides and list CSVs; ``wrim eval`` reads a copied run folder (pointers,
manifests, ``model.safetensors``), ``rand_perm_cam.mat`` and images. One case also runs ``python -m wrim`` in a
subprocess: the process itself exits with 2 after one line.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from PIL import Image

from tests.engine._tiny import wrimnet_test_tiny
from wrim.cli import main
from wrim.engine.build import build_model
from wrim.engine.checkpoint import publish_checkpoint, save_checkpoint
from wrim.engine.config import ModelConfig
from wrim.models import _registry

pytestmark = pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")

# after the hostile input: should a guard ever let it through, the command stops at once on this instead of training
# or evaluating (the error line then names something else, and the test fails fast)
STOP = "data.dataset=no_such_dataset"
# a dataset that fails at once (no list.csv): reached only if a guard let the run folder through
NO_DATA = ["--dataset", "list", "--root", "/nonexistent-wrim-data"]


def _error(capsys, *paths: Path) -> str:
    """The one stderr line, which must name each of ``paths`` and be an error of wrim (not an escaped type)."""
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    for path in paths:
        assert str(path) in lines[0], lines[0]
    assert lines[0].startswith("wrim ") and ": error: " in lines[0]
    return lines[0]


# ------------------------------------------------------------------------------------------------ wrim train

YAML = {
    "alias": ("optim:\n  milestones: &m [20]\neval:\n  trials: *m\n", ":4:11: YAML error: alias *m refused"),
    "python_tag": ("epochs: !!python/object/apply:os.system ['true']\n", ":1:9: YAML error: could not determine"),
    "deep": ("a: " + "[" * 10_000 + "\n", ":1:35: YAML error: nested deeper than 32 levels"),
    "huge_int": ("epochs: " + "9" * 5000 + "\n", ": YAML error: Exceeds the limit (4300"),
    "int_key": ("optim:\n  3: 1\n", ":2:3: YAML error: key 3 is not a name"),
    "nan": ("optim:\n  lr: .nan\n", ": optim.lr must be > 0 (and finite), got nan"),
    "inf_int": ("epochs: .inf\n", ": epochs must be an integer"),
    "base_list": ("base: [sysu]\n", "base must be a config name or a YAML path"),
}


@pytest.mark.parametrize("name", sorted(YAML))
def test_hostile_yaml_is_one_line_exit_2(tmp_path, capsys, name) -> None:
    text, message = YAML[name]
    path = tmp_path / "hostile.yaml"
    path.write_text(text)
    assert main(["train", "--config", str(path), f"output_dir={tmp_path / 'runs'}", STOP]) == 2
    assert message in _error(capsys, path)
    assert not (tmp_path / "runs").exists()


def test_non_utf8_yaml_is_one_line_exit_2(tmp_path, capsys) -> None:
    path = tmp_path / "hostile.yaml"
    path.write_bytes(b"name: caf\xe9\n")
    assert main(["train", "--config", str(path), STOP]) == 2
    assert "can't decode byte 0xe9" in _error(capsys, path)


@pytest.mark.parametrize(
    "override",
    ["epochs=.inf", "seed=18446744073709551616", "optim.lr=.nan", "model.kwargs.head_kwargs={a: &x 1, b: *x}",
     "model.kwargs.head_kwargs=" + "[" * 100, "eval.protocol={1: 2}", "epochs=!!python/object/apply:os.system [true]"],
)  # fmt: skip
def test_hostile_overrides_are_one_line_exit_2(tmp_path, capsys, override) -> None:
    assert main(["train", f"output_dir={tmp_path}", override, STOP]) == 2
    assert override.split("=")[0] in _error(capsys)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ("..\\..\\x.jpg,1,1,0,train\n", ":2: path '..\\\\..\\\\x.jpg' holds a backslash"),
        ("C:/x.jpg,1,1,0,train\n", ":2: path 'C:/x.jpg' must be relative to the root"),
        ('"a\nb.jpg",1,1,0,train\n', ":2: path 'a\\nb.jpg' holds a control character"),
        ("a" * 200_000 + ",1,1,0,train\n", ":2: not a CSV record (field larger than field limit"),
    ],
    ids=["backslash", "drive", "newline", "huge_field"],
)
def test_hostile_list_csv_is_one_line_exit_2(tmp_path, capsys, rows, message) -> None:
    path = tmp_path / "list.csv"
    path.write_text("path,pid,camera,modality,split\n" + rows, newline="")
    # model.name=none: should the list be let through, the dry run stops at the unknown model instead of building one
    args = ["train", "--dry-run", "data.dataset=list", f"data.root={tmp_path}", "eval.protocol={}", "model.name=none"]
    assert main([*args, f"output_dir={tmp_path / 'runs'}"]) == 2
    assert message in _error(capsys, path)


def test_python_m_wrim_exits_2_after_one_line(tmp_path) -> None:
    path = tmp_path / "hostile.yaml"
    path.write_text("a: &x 1\nb: *x\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.run(
        [sys.executable, "-m", "wrim", "train", "--config", str(path), STOP], capture_output=True, text=True, env=env
    )
    assert proc.returncode == 2
    assert (
        proc.stderr.strip()
        == f"wrim train: error: {path}:2:4: YAML error: alias *x refused: write the value out in full"
    )


# ------------------------------------------------------------------------------------------------ wrim eval


@pytest.fixture(scope="module")
def run_made(tmp_path_factory) -> Path:
    """A finished run of ``wrimnet_test_tiny`` (8 classes, 64x32): one verified set, ``model.json``."""
    run = tmp_path_factory.mktemp("made") / "run"
    saved = dict(_registry._ENTRYPOINTS)
    _registry._ENTRYPOINTS["wrimnet_test_tiny"] = wrimnet_test_tiny
    try:
        net = build_model(ModelConfig(name="wrimnet_test_tiny", pretrained=False), 8, (64, 32), weights=False)
    finally:
        _registry._ENTRYPOINTS.clear()
        _registry._ENTRYPOINTS.update(saved)
    set_dir = save_checkpoint(run, net, {"epoch": 1})
    publish_checkpoint(run, "last", set_dir, epoch=1)
    (run / "model.json").write_text(json.dumps({"model": "wrimnet_test_tiny", "num_classes": 8, "img_size": [64, 32]}))
    return run


@pytest.fixture
def run(tmp_path, run_made, monkeypatch) -> Path:
    monkeypatch.setitem(_registry._ENTRYPOINTS, "wrimnet_test_tiny", wrimnet_test_tiny)
    return Path(shutil.copytree(run_made, tmp_path / "run"))


def _set_dir(run: Path) -> Path:
    return next((run / "checkpoints").iterdir())


def test_a_pointer_out_of_the_run_is_one_line_exit_2(tmp_path, capsys, run) -> None:
    outside = shutil.move(_set_dir(run), tmp_path / "outside")
    (run / "last.json").write_text(json.dumps({"set": str(outside), "epoch": 1}))
    assert main(["eval", "--checkpoint", str(run), *NO_DATA]) == 2
    assert "not at a set checkpoints/<name> of its run" in _error(capsys, run)


def test_a_manifest_entry_out_of_the_set_is_one_line_exit_2(tmp_path, capsys, run) -> None:
    manifest_path = _set_dir(run) / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["files"]["../../../elsewhere/state.pt"] = manifest["files"].pop("state.pt")
    manifest_path.write_text(json.dumps(manifest))
    assert main(["eval", "--checkpoint", str(run), *NO_DATA]) == 2
    assert "its 'files' must give the bytes and sha256" in _error(capsys, run)


def test_damaged_weights_are_one_line_exit_2(capsys, run) -> None:
    weights = _set_dir(run) / "model.safetensors"
    weights.write_bytes((2**63).to_bytes(8, "little") + weights.read_bytes()[8:])
    assert main(["eval", "--checkpoint", str(weights), *NO_DATA]) == 2
    assert "is not a readable .safetensors file" in _error(capsys, weights)


@pytest.fixture
def sysu_root(tmp_path) -> Path:
    root = tmp_path / "SYSU-MM01"
    for cam in range(1, 7):
        for pid in (1, 2):
            (root / f"cam{cam}" / f"{pid:04d}").mkdir(parents=True)
            Image.new("RGB", (32, 64)).save(root / f"cam{cam}" / f"{pid:04d}" / "0001.jpg")
    (root / "exp").mkdir()
    for name, ids in (("train", "1"), ("val", ""), ("test", "2")):
        (root / "exp" / f"{name}_id.txt").write_text(ids + "\n")
    return root


def test_a_damaged_rand_perm_cam_is_one_line_exit_2(capsys, run, sysu_root) -> None:
    mat = sysu_root / "exp" / "rand_perm_cam.mat"
    mat.write_bytes(b"MATLAB 7.3 MAT-file, HDF5 schema 1.00 .".ljust(116) + b"\0" * 8 + b"\x00\x02IM" + b"\0" * 64)
    args = ["eval", "--checkpoint", str(run), "--dataset", "sysu", "--root", str(sysu_root), "--num-workers", "0"]
    assert main(args) == 2
    assert "not a readable MATLAB file (NotImplementedError" in _error(capsys, mat)


def _bomb_png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    idat = zlib.compress(b"\0" * (width + 1) * 16)  # rows enough for the header to be read, not decoded
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_a_decompression_bomb_in_a_gallery_is_one_line_exit_2(tmp_path, capsys, run) -> None:
    data = tmp_path / "mine"
    for name in ("t0.jpg", "t1.jpg", "q.jpg"):
        data.mkdir(exist_ok=True)
        Image.new("RGB", (32, 64)).save(data / name)
    (data / "g.png").write_bytes(_bomb_png(10_000, 10_000))
    rows = ["t0.jpg,1,1,visible,train", "t1.jpg,1,2,infrared,train", "q.jpg,2,2,infrared,query",
            "g.png,2,1,visible,gallery"]  # fmt: skip
    (data / "list.csv").write_text("path,pid,camera,modality,split\n" + "\n".join(rows) + "\n")
    args = ["eval", "--checkpoint", str(run), "--dataset", "list", "--root", str(data), "--num-workers", "0"]
    assert main(args) == 2
    assert "exceed PIL.Image.MAX_IMAGE_PIXELS" in _error(capsys, data / "g.png")
