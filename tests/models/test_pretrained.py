"""save_pretrained / from_pretrained / create_model("hf-hub:...") / push_to_hub: round trips, the Hub cache offline,
hostile folders (no code runs, no pickle, absurd sizes refused) and each bad input's one-line error."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import wrim
from wrim.models import WRIMNet, create_model, list_models
from wrim.models.model_card import PAPER_BIBTEX, SOFTWARE_BIBTEX

ROOT = Path(__file__).resolve().parents[2]
SIZE = (64, 32)
MODALITIES = torch.tensor([0, 1, 1, 0])


def _trained_like(model: torch.nn.Module) -> torch.nn.Module:
    """Move every weight and BatchNorm statistic away from its initial value: a rebuilt model equals it only if
    the weights were loaded."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if not tensor.is_floating_point():
                continue
            noise = torch.rand(tensor.shape, generator=generator)
            if name.endswith("running_var"):
                tensor.mul_(0.5 + noise)
            else:
                tensor.add_(0.05 * (noise - 0.5))
    return model.eval()


def _embed(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(images, MODALITIES)


@pytest.fixture(scope="module")
def saved_once(tmp_path_factory) -> tuple[torch.nn.Module, Path]:
    """A trained-like wrimnet_resnet18 (5 classes, 64x32) and its save_pretrained folder, built once."""
    torch.manual_seed(0)
    model = _trained_like(create_model("wrimnet_resnet18", num_classes=5, img_size=SIZE))
    return model, wrim.save_pretrained(model, tmp_path_factory.mktemp("saved_once") / "saved")


@pytest.fixture
def saved(tmp_path, saved_once) -> tuple[torch.nn.Module, Path]:
    """``saved_once``'s model and a copy of its folder that the test may edit."""
    model, folder = saved_once
    return model, Path(shutil.copytree(folder, tmp_path / "saved"))


def _edit_config(folder: Path, edit) -> None:
    path = folder / "config.json"
    info = json.loads(path.read_text())
    edit(info)
    path.write_text(json.dumps(info))


@pytest.mark.parametrize(
    "build",
    [
        lambda: create_model("wrimnet_resnet18", num_classes=5, img_size=SIZE),
        lambda: create_model("wrimnet_resnet18", backbone="convnext_atto", num_classes=5, img_size=SIZE),
        lambda: WRIMNet(
            "resnet18",
            num_classes=3,
            img_size=(96, 48),
            separate_stages=(1,),
            shared_stages=(2, 4),
            reduction=4,
            local_parts=3,
            proj_dim=32,
            embed_heads=("p5_global", "p4_global"),
            head_kwargs={"freeze_bnneck_bias": False},
            miim_kwargs={"out_norm": False},
        ),  # fmt: skip
    ],
    ids=["wrimnet_resnet18", "convnext_atto", "non_default_args"],
)
def test_round_trip_equal_embeddings(tmp_path, build) -> None:
    model = _trained_like(build())
    folder = wrim.save_pretrained(model, tmp_path / "model")
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left
    again = wrim.from_pretrained(folder)
    images = torch.randn(4, 3, *model.img_size)
    assert torch.equal(_embed(again, images), _embed(model, images))

    def rebuilt_by(m):  # the constructor arguments, as config.json holds them
        return json.loads(
            json.dumps({k: v for k, v in m.init_args.items() if k not in ("pretrained", "pretrained_file")})
        )

    assert rebuilt_by(again) == rebuilt_by(model)


def test_config_json_fields(tmp_path, saved) -> None:
    model, folder = saved
    info = json.loads((folder / "config.json").read_text())
    assert info["architecture"] == "wrimnet_resnet18" and info["wrim_version"] == wrim.__version__
    assert info["model_args"]["backbone"] == "resnet18" and info["model_args"]["local_parts"] == 2
    assert "pretrained" not in info["model_args"] and "pretrained_file" not in info["model_args"]
    assert info["num_classes"] == 5 and info["num_features"] == model.num_features == 3 * 512 + 256
    assert info["pretrained_cfg"]["input_size"] == [3, *SIZE]
    assert info["pretrained_cfg"]["mean"] == [0.485, 0.456, 0.406] and info["pretrained_cfg"]["std"][0] == 0.229
    assert info["modalities"] == {"visible": wrim.VISIBLE, "infrared": wrim.INFRARED}


def test_model_card_holds_metrics_recipe_terms_and_citations(tmp_path) -> None:
    model = _trained_like(create_model("wrimnet_resnet18", num_classes=5, img_size=SIZE))
    metrics = {"sysu all-search": {"R1": 74.12, "mAP": 70.5, "mINP": 57.25, "trials": 10}, "sysu indoor": {"R1": 80.0}}
    recipe = {"data": {"dataset": "sysu", "img_size": [288, 144]}, "optim": {"lr": 0.1}}
    folder = wrim.save_pretrained(model, tmp_path / "card", metrics=metrics, config=recipe)
    card = (folder / "README.md").read_text()
    assert f'wrim.from_pretrained("{folder}")' in card
    assert "| sysu all-search | 10 | 74.12 | 70.50 | 57.25 |" in card
    assert "| sysu indoor | not given | 80.00 | - | - |" in card
    assert "optim:\n  lr: 0.1" in card and "release agreement" in card
    assert PAPER_BIBTEX in card and SOFTWARE_BIBTEX in card
    assert json.loads((folder / "config.json").read_text())["metrics"]["sysu all-search"]["trials"] == 10


@pytest.mark.repo  # reads docs/citing.md
def test_card_bibtex_is_the_citing_page() -> None:
    """docs/citing.md is tested against CITATION.cff (tests/test_docs_snippets.py); the card quotes the page."""
    page = (ROOT / "docs" / "citing.md").read_text()
    assert PAPER_BIBTEX in page and SOFTWARE_BIBTEX in page


def test_create_model_with_pretrained_path(tmp_path, saved) -> None:
    model, folder = saved
    images = torch.randn(4, 3, *SIZE)
    loaded = create_model("wrimnet_resnet18", pretrained_path=folder)
    assert torch.equal(_embed(loaded, images), _embed(model, images))
    fewer = create_model("wrimnet_resnet18", pretrained_path=folder, num_classes=2)  # new classifiers, same embedding
    assert fewer.num_classes == 2 and torch.equal(_embed(fewer, images), _embed(model, images))
    resaved = json.loads((wrim.save_pretrained(fewer, tmp_path / "fewer") / "config.json").read_text())
    assert resaved["model_args"]["num_classes"] == 2 and resaved["num_classes"] == 2
    with pytest.raises(ValueError, match="holds a 'wrimnet_resnet18', not a 'baseline_resnet18'"):
        create_model("baseline_resnet18", pretrained_path=folder)
    with pytest.raises(ValueError, match=r"local_parts=4 differs from the saved 2"):
        create_model("wrimnet_resnet18", pretrained_path=folder, local_parts=4)


def test_save_replaces_its_own_folder_refuses_others_and_is_atomic(tmp_path, monkeypatch, saved) -> None:
    model, folder = saved
    wrim.save_pretrained(model, folder, metrics={"R1": 1.0})  # replaces the earlier save
    assert json.loads((folder / "config.json").read_text())["metrics"] == {"test": {"R1": 1.0}}
    other = tmp_path / "notes"
    other.mkdir()
    (other / "todo.txt").write_text("mine")
    with pytest.raises(ValueError, match="holds other files"):
        wrim.save_pretrained(model, other)
    import wrim.models.weights as weights

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(weights, "save_weights", fail)
    with pytest.raises(OSError, match="disk full"):
        wrim.save_pretrained(model, tmp_path / "never")
    assert not (tmp_path / "never").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_save_refuses_what_config_json_cannot_hold(tmp_path) -> None:
    model = create_model("wrimnet_resnet18", num_classes=5, img_size=SIZE, backbone_kwargs={"act_layer": torch.nn.ReLU})
    with pytest.raises(TypeError, match=r"constructor argument\(s\) \['backbone_kwargs'\]"):
        wrim.save_pretrained(model, tmp_path / "x")
    with pytest.raises(ValueError, match="'R1'.*not a finite number"):
        wrim.save_pretrained(model, tmp_path / "x", metrics={"R1": float("nan")})
    with pytest.raises(TypeError, match="knows its constructor arguments"):
        wrim.save_pretrained(torch.nn.Linear(2, 2), tmp_path / "x")
    assert not (tmp_path / "x").exists()


# ------------------------------------------------------------------------------------------------ bad input


def test_folder_without_config_json(tmp_path) -> None:
    with pytest.raises(ValueError, match="has no config.json: it is not a folder written by wrim.save_pretrained"):
        wrim.from_pretrained(tmp_path)


def test_unknown_architecture_lists_the_known_ones(tmp_path, saved) -> None:
    _, folder = saved
    _edit_config(folder, lambda info: info.update(architecture="wrimnet_resnet9000"))
    with pytest.raises(ValueError) as err:
        wrim.from_pretrained(folder)
    assert "'wrimnet_resnet9000'" in str(err.value) and ", ".join(list_models()) in str(err.value)


def test_config_from_a_newer_wrim_names_both_versions(tmp_path, saved) -> None:
    _, folder = saved
    _edit_config(folder, lambda info: info.update(wrim_version="99.1.0", future_key=1))
    with pytest.raises(ValueError, match=rf"written by wrim 99\.1\.0, newer than this wrim {wrim.__version__}"):
        wrim.from_pretrained(folder)


def test_mismatched_weight_shape_names_the_first(tmp_path, saved) -> None:
    _, folder = saved
    _edit_config(folder, lambda info: info["model_args"].update(num_classes=6))
    with pytest.raises(ValueError, match=r"shape of 'heads\.p5_global\.classifier\.weight': file \(5, 512\) vs model "
                       r"\(6, 512\) \(first of 4\)"):  # fmt: skip
        wrim.from_pretrained(folder)


def test_mismatched_weight_names_name_the_first(tmp_path, saved) -> None:
    _, folder = saved
    state = load_file(folder / "model.safetensors")
    state["heads.p5_global.renamed.weight"] = state.pop("heads.p5_global.classifier.weight")
    save_file(state, folder / "model.safetensors")
    with pytest.raises(ValueError) as err:
        wrim.from_pretrained(folder)
    message = str(err.value)
    assert "missing 'heads.p5_global.classifier.weight' (first of 1)" in message
    assert "unexpected 'heads.p5_global.renamed.weight' (first of 1)" in message


def test_unknown_config_keys_are_refused(tmp_path, saved) -> None:
    _, folder = saved
    _edit_config(folder, lambda info: info.update(auto_map={"AutoModel": "modeling_evil.Evil"}))
    with pytest.raises(ValueError, match=r"unknown keys \['auto_map'\] \(refused\)"):
        wrim.from_pretrained(folder)


# ------------------------------------------------------------------------------------------------ hostile folders


def test_architecture_that_looks_like_an_import_path_is_never_imported(tmp_path, monkeypatch, saved) -> None:
    _, folder = saved
    marker = tmp_path / "imported"
    (folder / "evil_i26.py").write_text(f"open({str(marker)!r}, 'w').close()\ndef build(**kwargs): pass\n")
    monkeypatch.syspath_prepend(str(folder))
    for name in ("evil_i26.build", "evil_i26:build", "os.system"):
        _edit_config(folder, lambda info, name=name: info.update(architecture=name))
        with pytest.raises(ValueError, match="wrim never imports code a config names"):
            wrim.from_pretrained(folder)
    assert "evil_i26" not in sys.modules and not marker.exists()


class _Exploit:
    """Unpickling this object creates a file: the proof that a pickle was loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_pickle_weights_are_never_loaded(tmp_path, saved) -> None:
    model, folder = saved
    marker = tmp_path / "unpickled"
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps(_Exploit(marker)))
    images = torch.randn(4, 3, *SIZE)
    assert torch.equal(_embed(wrim.from_pretrained(folder), images), _embed(model, images))  # safetensors only
    (folder / "model.safetensors").unlink()
    with pytest.raises(ValueError, match=r"no model.safetensors; it holds \['pytorch_model.bin'\], pickle files"):
        wrim.from_pretrained(folder)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda a: a.update(num_classes=10**12), r"model_args.num_classes = 1000000000000 is absurdly large"),
        (lambda a: a.update(img_size=[64, 2**21]), r"model_args.img_size\[1\] = 2097152 is absurdly large"),
        (lambda a: a.update(img_size=[9000, 4000]), r"img_size \[9000, 4000\] exceeds 8192 pixels"),
        (lambda a: a.update(local_parts=2**30), r"local_parts = 1073741824 is absurdly large"),
        (lambda a: a.update(pretrained_file="/etc/passwd"), r"\['pretrained_file'\] would load weights from elsewhere"),
        (lambda a: a.update(backbone_kwargs={"checkpoint_path": "x.pth"}), r"backbone_kwargs.checkpoint_path"),
        (lambda a: a.update(backbone="hf-hub:evil/net"), r"backbone 'hf-hub:evil/net' is not a timm model name"),
        (lambda a: a.update(trust_remote_code=True), r"model_args do not fit 'wrimnet_resnet18'.*trust_remote_code"),
    ],
    ids=[
        "num_classes",
        "img_size",
        "img_side",
        "local_parts",
        "pretrained_file",
        "checkpoint_path",
        "hub_backbone",
        "unknown_argument",
    ],
)
def test_hostile_model_args_are_refused_before_building(tmp_path, edit, message, saved) -> None:
    _, folder = saved
    _edit_config(folder, lambda info: edit(info["model_args"]))
    with pytest.raises(ValueError, match=message):
        wrim.from_pretrained(folder)


def test_absurd_tensor_sizes_in_the_weights_header_are_refused(tmp_path, saved) -> None:
    _, folder = saved
    header = json.dumps({"w": {"dtype": "F32", "shape": [10**6, 10**6], "data_offsets": [0, 4 * 10**12]}}).encode()
    (folder / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 8)
    with pytest.raises(ValueError, match="is not a readable .safetensors file"):
        wrim.from_pretrained(folder)


def test_oversized_config_json_is_not_read(tmp_path, saved) -> None:
    _, folder = saved
    (folder / "config.json").write_text(" " * (1 << 20) + "{}")
    with pytest.raises(ValueError, match="config.json holds <"):
        wrim.from_pretrained(folder)


# ------------------------------------------------------------------------------------------------ the Hub


_HUB_SCRIPT = textwrap.dedent(
    """
    import sys, time, torch, wrim
    images, expected = torch.load(sys.argv[1])
    for source in ("hf-hub:wrim-test/tiny", "wrim-test/tiny"):
        model = wrim.create_model(source) if source.startswith("hf-hub:") else wrim.from_pretrained(source)
        with torch.no_grad():
            assert torch.equal(model.eval()(images, torch.tensor([0, 1, 1, 0])), expected), source
    start = time.perf_counter()
    try:
        wrim.from_pretrained("wrim-test/absent")
    except ValueError as err:
        print(f"{time.perf_counter() - start:.1f} s: {err}")
    """
)


def _hub_cache(tmp_path: Path, folder: Path) -> Path:
    """A HF_HOME whose hub cache holds ``folder`` as the repository wrim-test/tiny (huggingface_hub's layout)."""
    home = tmp_path / "hf_home"
    repo = home / "hub" / "models--wrim-test--tiny"
    commit = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    shutil.copytree(folder, repo / "snapshots" / commit)
    return home


@pytest.mark.parametrize(
    "offline", [True, pytest.param(False, marks=pytest.mark.slow)], ids=["HF_HUB_OFFLINE", "unreachable"]
)
def test_hub_id_from_the_cache_without_network(tmp_path, offline, saved) -> None:
    pytest.importorskip("huggingface_hub", reason="pip install 'wrim[hub]'")
    model, folder = saved
    images = torch.randn(4, 3, *SIZE)
    torch.save((images, _embed(model, images)), tmp_path / "expected.pt")
    env = {**os.environ, "HF_HOME": str(_hub_cache(tmp_path, folder)), "PYTHONPATH": str(ROOT)}
    env.pop("HF_HUB_OFFLINE", None)
    env.update(
        {"HF_HUB_OFFLINE": "1"} if offline else {"HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_ETAG_TIMEOUT": "5"}
    )
    result = subprocess.run(
        [sys.executable, "-c", _HUB_SCRIPT, str(tmp_path / "expected.pt")], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
    seconds, message = result.stdout.strip().splitlines()[-1].split(" s: ", 1)
    assert "'wrim-test/absent' is no local folder and not in the Hub cache" in message
    assert ("HF_HUB_OFFLINE is set" if offline else "the Hub cannot be reached") in message
    assert float(seconds) < 30  # one attempt, no retry loop


def test_push_to_hub_uploads_the_saved_folder(tmp_path, monkeypatch) -> None:
    huggingface_hub = pytest.importorskip("huggingface_hub", reason="pip install 'wrim[hub]'")
    calls = {}

    class FakeApi:
        def __init__(self, token=None) -> None:
            calls["token"] = token

        def create_repo(self, repo_id, **kwargs) -> None:
            calls["repo"] = (repo_id, kwargs)

        def upload_folder(self, repo_id, folder_path, commit_message):
            calls["files"] = sorted(p.name for p in Path(folder_path).iterdir())
            calls["card"] = (Path(folder_path) / "README.md").read_text()
            return "https://huggingface.co/org/name/commit/0"

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    model = create_model("wrimnet_resnet18", num_classes=5, img_size=SIZE)
    url = wrim.push_to_hub(model, "org/name", metrics={"R1": 50.0}, private=True, token="t")
    assert url.endswith("/commit/0") and calls["token"] == "t"
    assert calls["repo"] == ("org/name", {"private": True, "exist_ok": True, "repo_type": "model"})
    assert calls["files"] == ["README.md", "config.json", "model.safetensors"]
    assert 'wrim.from_pretrained("org/name")' in calls["card"]


@pytest.mark.parametrize(
    ("build", "architecture"),
    [
        (lambda: WRIMNet("resnet18", num_classes=3, img_size=SIZE), "wrimnet_resnet18"),
        (lambda: WRIMNet("resnet18.a1_in1k", num_classes=3, img_size=SIZE), "wrimnet_resnet18"),
        (lambda: WRIMNet("resnet18", 3, img_size=SIZE, separate_stages=(), shared_stages=()), "baseline_resnet18"),
        (
            lambda: create_model("wrimnet_resnet18", backbone="test_resnet", num_classes=3, img_size=SIZE),
            "wrimnet_resnet18",
        ),
    ],
    ids=["wrimnet", "weight_tag", "baseline", "created"],
)
def test_a_wrimnet_is_saved_under_the_registered_name_of_its_backbone(tmp_path, build, architecture) -> None:
    """``WRIMNet(...)`` is saved as the entrypoint of its backbone (MIIMs or none), not as wrimnet_resnet50; a model
    built by ``create_model`` keeps the name it was built by."""
    model = build()
    folder = wrim.save_pretrained(model, tmp_path / "model")
    saved = json.loads((folder / "config.json").read_text())["architecture"]
    assert saved == architecture
    again = wrim.from_pretrained(folder)
    assert again.architecture == saved and again.backbone.name == model.backbone.name


def test_a_wrimnet_without_a_registered_name_is_refused(tmp_path) -> None:
    model = WRIMNet("test_resnet", num_classes=3, img_size=SIZE)
    with pytest.raises(ValueError, match=r"no registered name.*'test_resnet'.*@wrim.register_model"):
        wrim.save_pretrained(model, tmp_path / "model")
    assert not (tmp_path / "model").exists()


def test_an_entrypoint_that_fixes_an_argument_rebuilds_without_retrying(tmp_path, monkeypatch) -> None:
    """An entrypoint ``WRIMNet(backbone="test_resnet", **kwargs)`` fixes its backbone: the saved backbone equals what it
    builds, so it is not passed again (no "multiple values" error to recover from); an entrypoint that fixes another
    value than the saved one is a one-line error naming the argument."""
    from wrim.models import _registry

    monkeypatch.setattr(_registry.MODELS, "entries", dict(_registry.MODELS.entries))

    def fixed_tiny(pretrained: bool = False, **kwargs) -> WRIMNet:
        return WRIMNet(backbone="test_resnet", pretrained=pretrained, **kwargs)

    wrim.register_model(fixed_tiny)
    model = _trained_like(create_model("fixed_tiny", num_classes=3, img_size=SIZE, local_parts=3))
    folder = wrim.save_pretrained(model, tmp_path / "model")
    images = torch.randn(4, 3, *SIZE)
    assert torch.equal(_embed(wrim.from_pretrained(folder), images), _embed(model, images))
    _edit_config(folder, lambda info: info["model_args"].update(backbone="resnet18"))
    with pytest.raises(ValueError, match="model_args do not fit 'fixed_tiny'.*multiple values.*'backbone'"):
        wrim.from_pretrained(folder)


def test_loading_reads_the_weights_header_once(saved, monkeypatch) -> None:
    """from_pretrained checks the names and shapes and loads the tensors through one opening of model.safetensors."""
    import wrim.models.weights as weights

    opened = []
    original = weights.safe_open

    def counting(*args, **kwargs):
        opened.append(args[0])
        return original(*args, **kwargs)

    monkeypatch.setattr(weights, "safe_open", counting)
    _, folder = saved
    wrim.from_pretrained(folder)
    assert opened == [str(folder / "model.safetensors")]
