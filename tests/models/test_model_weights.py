"""save_weights / load_weights (safetensors) and load_state_dict_file."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from wrim.models import WRIMNet, load_state_dict_file, load_weights, save_weights

SIZE = (64, 32)
MODALITIES = torch.tensor([0, 1])


def _model(**kwargs) -> WRIMNet:
    return WRIMNet("resnet18", **{"num_classes": 4, "img_size": SIZE, **kwargs})


def test_round_trip(tmp_path) -> None:
    source = _model().train()
    source(torch.randn(4, 3, *SIZE), torch.tensor([0, 1, 0, 1]))  # move BN running statistics off their init
    path = tmp_path / "sub" / "model.safetensors"
    save_weights(source, path, metadata={"epoch": "3"})
    target = _model()
    assert load_weights(target, path) == ([], [])
    for (key, a), b in zip(source.state_dict().items(), target.state_dict().values()):
        torch.testing.assert_close(a, b, msg=key)
    images = torch.randn(2, 3, *SIZE)
    with torch.no_grad():
        torch.testing.assert_close(source.eval()(images, MODALITIES), target.eval()(images, MODALITIES))


def test_mismatch_errors(tmp_path) -> None:
    path = tmp_path / "model.safetensors"
    save_weights(_model(), path)
    with pytest.raises(ValueError, match=r"missing keys \(0\): \[\]; unexpected keys \(\d+\): \['miims.stage3"):
        load_weights(_model(shared_stages=(4,)), path)
    with pytest.raises(ValueError, match=r"missing keys \(\d+\): \['miims.stage2.compress.*'miims.stage2.infrared"):
        load_weights(_model(shared_stages=(2, 3, 4), separate_stages=(1,)), path)
    with pytest.raises(ValueError, match="num_classes"):
        load_weights(_model(num_classes=7), path)
    target = _model(shared_stages=(4,))
    missing, unexpected = load_weights(target, path, strict=False)
    assert missing == [] and unexpected and all(key.startswith("miims.stage3") for key in unexpected)


class _Tied(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Linear(4, 4)
        self.decoder = nn.Linear(4, 4)
        self.decoder.weight = self.encoder.weight


def test_shared_tensors(tmp_path) -> None:
    source, target = _Tied(), _Tied()
    path = tmp_path / "tied.safetensors"
    save_weights(source, path)
    assert load_weights(target, path) == ([], [])
    torch.testing.assert_close(target.decoder.weight, source.encoder.weight)
    assert target.decoder.weight is target.encoder.weight


def test_load_state_dict_file(tmp_path) -> None:
    tensors = {"a": torch.randn(2), "b.c": torch.randn(3)}
    save_file(tensors, str(tmp_path / "w.safetensors"))
    torch.save({"model": {f"module.{k}": v for k, v in tensors.items()}}, tmp_path / "w.pth")
    for name in ("w.safetensors", "w.pth"):
        loaded = load_state_dict_file(tmp_path / name)
        assert loaded.keys() == tensors.keys()
        torch.testing.assert_close(loaded["b.c"], tensors["b.c"])
    torch.save([1, 2], tmp_path / "list.pth")
    with pytest.raises(ValueError, match="does not hold a state dict"):
        load_state_dict_file(tmp_path / "list.pth")


def test_channels_last_model(tmp_path) -> None:
    source = _model().to(memory_format=torch.channels_last)
    path = tmp_path / "cl.safetensors"
    save_weights(source, path)
    target = _model()
    load_weights(target, path)
    torch.testing.assert_close(target.backbone.model.conv1.weight, source.backbone.model.conv1.weight)


def test_one_comparison_of_a_model_with_a_weights_file_allows_tied_weights(tmp_path) -> None:
    """``state_differences`` is the one comparison of a model with a file's header, on real and meta tensors alike;
    the resume check reads it too: a tied weight stored once is not missing, a reshaped one is named."""
    from wrim.engine.resume import first_weight_difference
    from wrim.models.weights import open_weights, state_differences

    path = tmp_path / "tied.safetensors"
    save_weights(_Tied(), path)
    with open_weights(path) as file:
        assert len(file.shapes) == 3 and len({"encoder.weight", "decoder.weight"} & file.shapes.keys()) == 1
        assert not state_differences(_Tied(), file.shapes)
        with torch.device("meta"):
            assert not state_differences(_Tied(), file.shapes)
    assert first_weight_difference(_Tied(), path) is None
    save_file({"encoder.weight": torch.zeros(4, 5), "encoder.bias": torch.zeros(4), "other": torch.zeros(1)}, str(path))
    with open_weights(path) as file:
        differences = state_differences(_Tied(), file.shapes)
    assert differences.shapes == [("encoder.weight", (4, 5), (4, 4))]
    assert differences.missing == ["decoder.bias"] and differences.unexpected == ["other"]
    first = first_weight_difference(_Tied(), path)
    assert first == "'encoder.weight' has shape (4, 5) in the checkpoint, (4, 4) in the model (3 differences in all)"
