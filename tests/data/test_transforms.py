"""Transforms: shapes, dtypes, CAJ channel augmentation semantics (including the gray=2 quirk), erasing."""

from __future__ import annotations

import pytest
import torch

from wrim import INFRARED, VISIBLE
from wrim.data import TestTransform, TrainTransform
from wrim.data.transforms import ChannelAdapGray, ChannelExchange, ChannelRandomErasing


def _image() -> torch.Tensor:
    return torch.randint(0, 256, (3, 40, 20), dtype=torch.uint8)


def _outcome(src: torch.Tensor, out: torch.Tensor) -> str:
    gray = 0.2989 * src[0] + 0.5870 * src[1] + 0.1140 * src[2]
    for name, ref in (("r", src[0]), ("g", src[1]), ("b", src[2]), ("gray", gray)):
        if all(torch.allclose(out[c], ref) for c in range(3)):
            return name
    return "unchanged" if torch.equal(out, src) else "other"


def test_channel_exchange_gray2_never_gives_grayscale() -> None:
    src = torch.randn(3, 6, 4)
    outcomes = {_outcome(src, ChannelExchange(gray=2)(src)) for _ in range(200)}
    assert outcomes == {"r", "g", "b"}
    outcomes = {_outcome(src, ChannelExchange(gray=3)(src)) for _ in range(200)}
    assert outcomes == {"r", "g", "b", "gray"}


def test_channel_adap_gray() -> None:
    src = torch.randn(3, 6, 4)
    outcomes = {_outcome(src, ChannelAdapGray(0.5)(src)) for _ in range(300)}
    assert outcomes == {"r", "g", "b", "gray", "unchanged"}
    assert "gray" not in {_outcome(src, ChannelAdapGray(0.0)(src)) for _ in range(200)}


def test_channel_random_erasing() -> None:
    src = torch.zeros(3, 40, 20)
    out = ChannelRandomErasing(probability=1.0)(src)
    erased = out[0] != 0
    assert 0 < erased.sum() < 40 * 20 and torch.equal(src, torch.zeros(3, 40, 20))  # input untouched
    for c, value in enumerate((0.4914, 0.4822, 0.4465)):
        assert torch.allclose(out[c][erased], torch.full_like(out[c][erased], value))
    rows, cols = erased.any(1).nonzero(), erased.any(0).nonzero()
    assert erased.sum() == len(rows) * len(cols)  # one rectangle
    assert torch.equal(ChannelRandomErasing(probability=0.0)(src), src)
    with pytest.raises(ValueError):
        ChannelRandomErasing(sl=0.5, sh=0.1)


@pytest.mark.parametrize("modality", [VISIBLE, INFRARED])
@pytest.mark.parametrize("channel_aug", [True, False])
def test_train_transform_shape_and_dtype(modality: int, channel_aug: bool) -> None:
    t = TrainTransform((32, 16), channel_aug=channel_aug, random_erasing=0.5)
    out = t(_image(), modality)
    assert out.shape == (3, 32, 16) and out.dtype == torch.float32


def test_channel_exchange_only_for_visible() -> None:
    t = TrainTransform((16, 8), pad=0, flip=0.0, channel_aug=True, exchange_prob=1.0, random_erasing=0.0)
    img = _image()
    for _ in range(20):  # visible: every output has three equal channels (exchange with probability 1)
        out = t(img, VISIBLE)
        assert torch.allclose(out[0], out[1]) and torch.allclose(out[1], out[2])
    t_off = TrainTransform((16, 8), pad=0, flip=0.0, channel_aug=False, random_erasing=0.0)
    plain = t_off(img, INFRARED)
    assert torch.allclose(plain, TestTransform((16, 8))(img, INFRARED))


def test_test_transform_is_deterministic() -> None:
    img = _image()
    t = TestTransform((24, 12))
    a, b = t(img, VISIBLE), t(img, INFRARED)
    assert a.shape == (3, 24, 12) and a.dtype == torch.float32 and torch.equal(a, b)
    mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None]
    std = torch.tensor([0.229, 0.224, 0.225])[:, None, None]
    flat = torch.full((3, 24, 12), 255, dtype=torch.uint8)
    assert torch.allclose(t(flat, VISIBLE), ((1 - mean) / std).expand(3, 24, 12))


def test_bad_size() -> None:
    with pytest.raises(ValueError, match="img_size"):
        TestTransform((0, 8))
