"""``model.safetensors`` files (``wrim.models.load_weights`` and the weights of ``wrim.from_pretrained``), hostile.

Properties: the weights load, or a one-line ValueError names the file; no other exception escapes; a header cannot
make the reader allocate what the file does not hold; names, shapes and kinds of dtype must match the model, or
nothing is loaded; a pickle beside it is never read.
"""

from __future__ import annotations

import json
import pickle
import shutil
import struct
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file
from torch import nn

import wrim
from tests.hostile._props import assert_one_line_naming, peak_growth_mb, refusal
from wrim.models import create_model, load_weights


def _net() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))


_SAVED = {k: v + 1 for k, v in _net().state_dict().items()}  # values no new net starts with


def _state(**changes: torch.Tensor) -> dict[str, torch.Tensor]:
    return {**{k: v.clone() for k, v in _SAVED.items()}, **changes}


def _file(header: dict, body: bytes, length: int | None = None) -> bytes:
    """A safetensors file: little-endian u64 header length (``length`` if given), JSON header, then ``body``."""
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text) if length is None else length) + text + body


@pytest.fixture
def good(tmp_path) -> Path:
    path = tmp_path / "model.safetensors"
    save_file(_state(), str(path))
    return path


def _header_of(path: Path) -> tuple[dict, bytes]:
    raw = path.read_bytes()
    size = struct.unpack("<Q", raw[:8])[0]
    return json.loads(raw[8 : 8 + size]), raw[8 + size :]


def test_a_good_file_loads(good) -> None:
    net = _net()
    assert load_weights(net, good) == ([], [])
    assert torch.equal(net[0].weight, _state()["0.weight"])


def _attacks(good: Path) -> dict[str, bytes]:
    raw = good.read_bytes()
    header, body = _header_of(good)
    first = next(k for k in header if k != "__metadata__")
    claims_more = {first: {"dtype": "F32", "shape": [32 << 20], "data_offsets": [0, 128 << 20]}}  # 128 MB
    shifted = {**header, first: {**header[first], "data_offsets": [0, len(body) + 4]}}
    return {
        "zero_bytes": b"",
        "shorter_than_the_length": raw[:5],
        "truncated_header": raw[: 8 + len(json.dumps(header)) // 2],
        "truncated_body": raw[:-9],
        "length_of_2**63": _file(header, body, 2**63),
        "length_beyond_the_file": _file(header, body, len(raw)),
        "header_claims_128_mb": _file(claims_more, b"\0" * 16),
        "offsets_beyond_the_body": _file(shifted, body),
        "not_json": struct.pack("<Q", 5) + b"{abc}",
        "deep_json": struct.pack("<Q", 200_000) + b"[" * 100_000 + b"]" * 100_000,
        "unknown_dtype": _file({first: {**header[first], "dtype": "Q99"}}, body),
        "a_pickle": pickle.dumps({"0.weight": torch.zeros(3, 4)}),
    }


@pytest.mark.parametrize(
    "name",
    ["zero_bytes", "shorter_than_the_length", "truncated_header", "truncated_body", "length_of_2**63",
     "length_beyond_the_file", "header_claims_128_mb", "offsets_beyond_the_body", "not_json", "deep_json",
     "unknown_dtype", "a_pickle"],
)  # fmt: skip
def test_damaged_files_are_refused_in_one_line_without_allocating(tmp_path, good, name) -> None:
    path = tmp_path / "hostile.safetensors"
    path.write_bytes(_attacks(good)[name])
    net = _net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with peak_growth_mb() as growth, pytest.raises(ValueError, match="is not a readable .safetensors file") as info:
        load_weights(net, path)
    assert_one_line_naming(info.value, path)
    assert growth[0] is None or growth[0] < 64, f"peak memory grew by {growth[0]:.0f} MB"
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())  # nothing loaded


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"0.weight": torch.zeros(3, 5)}, "1 tensor shapes differ from the model"),
        ({"0.weight": torch.ones(3, 4, dtype=torch.int32)}, "dtypes differ in kind from the model: 0.weight: file "),
        ({"1.running_var": torch.ones(3, dtype=torch.bool)}, "dtypes differ in kind"),
        ({"1.num_batches_tracked": torch.tensor(2.5)}, "dtypes differ in kind"),
        ({"0.weight": torch.ones(3, 4, dtype=torch.complex64)}, "dtypes differ in kind"),
        ({"extra.weight": torch.zeros(1)}, "unexpected keys (1): ['extra.weight']"),
    ],
    ids=["shape", "int_for_float", "bool_for_float", "float_for_int", "complex_for_float", "extra_key"],
)
def test_weights_that_disagree_with_the_model_are_refused_and_not_loaded(tmp_path, changes, message) -> None:
    path = tmp_path / "model.safetensors"
    save_file(_state(**changes), str(path))
    net = _net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(ValueError) as info:
        load_weights(net, path)
    assert message in str(info.value)
    assert_one_line_naming(info.value, path)
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())


def test_half_precision_weights_load_into_a_float32_model(tmp_path) -> None:
    path = tmp_path / "model.safetensors"
    state = _state()
    save_file({k: v.half() if v.is_floating_point() else v for k, v in state.items()}, str(path))
    net = _net()
    load_weights(net, path)
    assert net[0].weight.dtype == torch.float32 and torch.equal(net[0].weight, state["0.weight"].half().float())


# ------------------------------------------------------------------------------------------------ a model folder


@pytest.fixture(scope="module")
def saved_folder(tmp_path_factory) -> Path:
    model = create_model("wrimnet_resnet18", backbone="test_resnet", num_classes=3, img_size=(64, 32))
    return wrim.save_pretrained(model, tmp_path_factory.mktemp("saved") / "model")


def test_weights_of_another_shape_than_config_json_says_are_refused_before_building(tmp_path, saved_folder) -> None:
    folder = Path(shutil.copytree(saved_folder, tmp_path / "model"))
    other = create_model("wrimnet_resnet18", backbone="test_resnet", num_classes=7, img_size=(64, 32))
    wrim.models.save_weights(other, folder / "model.safetensors")
    with pytest.raises(ValueError, match=r"does not match config.json's model: shape of '.*classifier.weight'") as info:
        wrim.from_pretrained(folder)
    assert_one_line_naming(info.value, folder / "model.safetensors")


def test_integer_weights_in_a_model_folder_are_refused(tmp_path, saved_folder) -> None:
    folder = Path(shutil.copytree(saved_folder, tmp_path / "model"))
    header, _ = _header_of(folder / "model.safetensors")
    from safetensors.torch import load_file

    state = load_file(folder / "model.safetensors")
    state = {k: (v * 100).to(torch.int32) if v.is_floating_point() else v for k, v in state.items()}
    save_file(state, str(folder / "model.safetensors"), metadata=header.get("__metadata__"))
    with pytest.raises(ValueError, match="dtypes differ in kind") as info:
        wrim.from_pretrained(folder)
    assert_one_line_naming(info.value, folder / "model.safetensors")


def test_a_folder_of_pickles_only_is_refused_and_never_unpickled(tmp_path, saved_folder) -> None:
    folder = Path(shutil.copytree(saved_folder, tmp_path / "model"))
    (folder / "model.safetensors").unlink()
    marker = tmp_path / "unpickled"
    (folder / "pytorch_model.bin").write_bytes(b"cposix\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR.")
    with pytest.raises(ValueError, match=r"no model.safetensors; it holds \['pytorch_model.bin'\], pickle files"):
        wrim.from_pretrained(folder)
    assert not marker.exists()


# ------------------------------------------------------------------------------------------------ by property


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=64), at=st.integers(min_value=0), cut=st.integers(min_value=0))
@example(data=b"\xff" * 8, at=0, cut=10**6)
@example(data=b"", at=0, cut=100)
def test_any_damage_loads_or_is_refused_in_one_line(tmp_path_factory, good, data, at, cut) -> None:
    """Bytes overwritten at any place and the file cut at any length: loaded unchanged, or refused in one line."""
    raw = bytearray(good.read_bytes())
    at %= len(raw)
    raw[at : at + len(data)] = data
    path = tmp_path_factory.mktemp("damaged") / "model.safetensors"
    path.write_bytes(bytes(raw[: cut % (len(raw) + 1)] if cut else raw))
    net = _net()
    result, err = refusal(lambda: load_weights(net, path), path)
    assert err is not None or result == ([], [])


_DTYPES = st.sampled_from(["F32", "F16", "BF16", "F64", "I64", "I32", "I8", "U8", "BOOL", "F8_E4M3", "X", ""])
_ENTRY = st.fixed_dictionaries(
    {"dtype": _DTYPES, "shape": st.lists(st.integers(0, 2**40), max_size=3),
     "data_offsets": st.lists(st.integers(0, 2**40), min_size=2, max_size=2)}
)  # fmt: skip


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    header=st.dictionaries(st.sampled_from(["0.weight", "0.bias", "1.weight", "x"]), _ENTRY, max_size=3),
    body=st.integers(0, 256),
)
@example(header={"0.weight": {"dtype": "F32", "shape": [2**20, 2**20], "data_offsets": [0, 2**42]}}, body=16)
def test_any_header_is_refused_or_loaded_within_the_file(tmp_path_factory, header, body) -> None:
    """No header makes the reader allocate more than the file holds (here: 64 MB at most for a < 1 kB file)."""
    path = tmp_path_factory.mktemp("header") / "model.safetensors"
    path.write_bytes(_file(header, b"\0" * body))
    with peak_growth_mb() as growth:
        refusal(lambda: load_weights(_net(), path, strict=False), path)
    assert growth[0] is None or growth[0] < 64, f"peak memory grew by {growth[0]:.0f} MB"


def test_a_damaged_model_safetensors_in_a_folder_is_refused_in_one_line(tmp_path, saved_folder) -> None:
    folder = Path(shutil.copytree(saved_folder, tmp_path / "model"))
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ValueError, match="is not a readable .safetensors file") as info:
        wrim.from_pretrained(folder)
    assert_one_line_naming(info.value, weights)
