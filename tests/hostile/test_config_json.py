"""A model folder's ``config.json`` (``wrim.from_pretrained`` / ``wrim.models.pretrained.read_config``), hostile.

Properties: a model, or a one-line ValueError naming the folder's config.json; no other exception escapes; no
module the file names is imported and nothing outside the folder is read; sizes are bounded before anything is
built.
"""

from __future__ import annotations

import copy
import json
import shutil
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import wrim
from tests.hostile._props import BAIT_MODULE, assert_confined, assert_one_line_naming, refusal, watched
from wrim.models import create_model
from wrim.models.pretrained import read_config


@pytest.fixture(scope="module")
def saved_folder(tmp_path_factory) -> Path:
    """A small saved model (WRIM-Net on timm's ``test_resnet``, 3 classes, 64x32), written once."""
    model = create_model("wrimnet_resnet18", backbone="test_resnet", num_classes=3, img_size=(64, 32))
    return wrim.save_pretrained(model, tmp_path_factory.mktemp("saved") / "model")


@pytest.fixture
def folder(tmp_path, saved_folder) -> Path:
    return Path(shutil.copytree(saved_folder, tmp_path / "model"))


def _info(folder: Path) -> dict:
    return json.loads((folder / "config.json").read_text())


def _edited(folder: Path, edit) -> Path:
    info = _info(folder)
    edit(info)
    (folder / "config.json").write_text(json.dumps(info))
    return folder / "config.json"


def _set(path: str, value):
    """An edit that sets ``info[a][b]`` for ``path="a.b"``."""

    def edit(info: dict) -> None:
        *parents, last = path.split(".")
        node = info
        for key in parents:
            node = node[key]
        node[last] = value

    return edit


# (edit of config.json, what the one-line message says)
ATTACKS = [
    (_set("architecture", "no_such_net"), "which wrim"),
    (_set("architecture", "os.system"), "wrim never imports code a config names"),
    (_set("architecture", f"{BAIT_MODULE}.run"), "wrim never imports code a config names"),
    (_set("architecture", f"{BAIT_MODULE}:run"), "wrim never imports code a config names"),
    (_set("architecture", "hf-hub:evil/net"), "wrim never imports code a config names"),
    (_set("architecture", ["wrimnet_resnet18"]), "needs 'architecture' (a model name)"),
    (_set("model_args", "backbone=resnet18"), "needs 'architecture' (a model name) and 'model_args' (an object)"),
    (_set("wrim_version", 1), "has no wrim_version"),
    (_set("wrim_version", "99.0.0"), "newer than this wrim"),
    (_set("wrim_version", "0." + "9" * 5000), "has no wrim_version"),
    (_set("auto_map", {"AutoModel": f"{BAIT_MODULE}.Net"}), "unknown keys ['auto_map'] (refused)"),
    (_set("trust_remote_code", True), "unknown keys ['trust_remote_code'] (refused)"),
    (_set("modalities", {"visible": 1, "infrared": 0}), "differ from wrim's"),
    (_set("model_args.backbone", 5), "is not a timm model name"),
    (_set("model_args.backbone", f"{BAIT_MODULE}.run"), "is not a timm model name"),
    (_set("model_args.backbone_kwargs", [1]), "backbone_kwargs must be an object"),
    (_set("model_args.backbone_kwargs", {"checkpoint_path": "/etc/passwd"}), "backbone_kwargs.checkpoint_path"),
    (_set("model_args.pretrained_file", "../../weights.pth"), "would load weights from elsewhere"),
    (_set("model_args.num_classes", 10**12), "absurdly large"),
    (_set("model_args.num_classes", -5), "num_classes must be an int >= 0"),
    (_set("model_args.num_classes", "3"), "num_classes must be an int >= 0"),
    (_set("model_args.num_classes", float("nan")), "num_classes must be an int >= 0"),
    (_set("model_args.img_size", [64, 2**21]), "absurdly large"),
    (_set("model_args.img_size", [9000, 4000]), "exceeds 8192 pixels a side"),
    (_set("model_args.img_size", [-64, 32]), "img_size must be (H, W) positive ints"),
    (_set("model_args.img_size", "64x32"), "img_size must be (H, W) positive ints"),
    (_set("model_args.img_size", float("inf")), "absurdly large"),
    (_set("model_args.local_parts", -(2**40)), "absurdly large"),
    (_set("model_args.backbone_kwargs", {"a\rb": 2**21}), "model_args.backbone_kwargs['a\\rb'] = 2097152 is absurdly"),
    (_set("model_args.head_kwargs", [1]), "model_args do not fit"),
    (_set("model_args.trust_remote_code", True), "model_args do not fit"),
]


@pytest.mark.parametrize(("edit", "message"), ATTACKS, ids=[f"{i}:{m[:20]}" for i, (_, m) in enumerate(ATTACKS)])
def test_attacks_are_refused_naming_config_json(folder, bait, edit, message) -> None:
    path = _edited(folder, edit)
    with watched() as events, pytest.raises(ValueError) as info:
        wrim.from_pretrained(folder)
    assert message in str(info.value)
    assert_one_line_naming(info.value, path)
    assert_confined(events, folder)
    assert not bait.exists() and BAIT_MODULE not in sys.modules


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is not valid JSON"),
        (b'{"format": 1, "wrim_version": "0.1.0", "architecture": "wrimnet_res', "is not valid JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "is not valid JSON (maximum recursion depth exceeded"),
        (b'{"a": "caf\xe9"}', "is not valid JSON ('utf-8' codec can't decode"),
        (b"[1, 2]", "must hold a JSON object"),
        (b" " * (1 << 20) + b"{}", "a wrim config.json holds <"),
    ],
    ids=["empty", "truncated", "deep", "not_utf8", "list", "oversized"],
)
def test_damaged_json_is_refused_naming_config_json(folder, content, message) -> None:
    (folder / "config.json").write_bytes(content)
    with pytest.raises(ValueError, match=message.replace("(", r"\(")) as info:
        wrim.from_pretrained(folder)
    assert_one_line_naming(info.value, folder / "config.json")


# ------------------------------------------------------------------------------------------------ by property

_HOSTILE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=10),
    st.lists(st.integers(min_value=-(2**40), max_value=2**40), max_size=4),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


@st.composite
def _edited_info(draw, info: dict) -> dict:
    """``info`` with one to three entries (top level or in ``model_args``) replaced or added by hostile values."""
    info = copy.deepcopy(info)
    for _ in range(draw(st.integers(1, 3))):
        node = draw(st.sampled_from([info] + [info["model_args"]] * isinstance(info.get("model_args"), dict)))
        key = draw(st.one_of(st.sampled_from(sorted(node)), st.text(max_size=6)))
        node[key] = draw(_HOSTILE)
    return info


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_edit_is_read_or_refused_in_one_line(tmp_path_factory, saved_folder, data) -> None:
    folder = Path(shutil.copytree(saved_folder, tmp_path_factory.mktemp("edit") / "model"))
    info = data.draw(_edited_info(_info(saved_folder)))
    (folder / "config.json").write_text(json.dumps(info))
    with watched() as events:
        refusal(lambda: read_config(folder), folder / "config.json")
    assert_confined(events, folder)


@settings(
    suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=max(3, settings.default.max_examples // 5)
)
@given(data=st.data())
def test_any_edit_loads_a_model_or_is_refused_in_one_line(tmp_path_factory, saved_folder, data) -> None:
    """The whole load (build and weights) on edits of ``model_args``: a model, or one line naming a file."""
    folder = Path(shutil.copytree(saved_folder, tmp_path_factory.mktemp("load") / "model"))
    info = _info(saved_folder)
    key = data.draw(st.sampled_from(sorted(info["model_args"])))
    info["model_args"][key] = data.draw(_HOSTILE)
    (folder / "config.json").write_text(json.dumps(info))
    try:
        model = wrim.from_pretrained(folder)
    except Exception as err:  # the property: a ValueError / TypeError of one line naming a file of the folder
        assert_one_line_naming(err, folder)
    else:
        assert model.num_classes == 3


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(min_value=0, max_value=10**6))
@example(cut=1)
def test_any_truncation_is_refused_in_one_line(tmp_path_factory, saved_folder, cut) -> None:
    folder = Path(shutil.copytree(saved_folder, tmp_path_factory.mktemp("cut") / "model"))
    text = (saved_folder / "config.json").read_text()
    (folder / "config.json").write_text(text[: cut % len(text)])
    _, err = refusal(lambda: read_config(folder), folder / "config.json")
    assert err is not None
