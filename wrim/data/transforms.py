"""Train / test transforms of the VI-ReID field on ``torchvision.transforms.v2``, plus CAJ's channel augmentation.

Every transform here is a callable ``(image, modality) -> image`` with ``image: (3, H, W)``: the pipelines take the
decoded uint8 image and return a normalised float32 tensor. Randomness comes from torch's RNG, which the
DataLoader seeds per worker.

Channel augmentation follows CAJ (Ye et al., ICCV 2021, ``ICCV21_CAJ/ChannelAug.py``): visible images get
`ChannelExchange` (here with probability ``exchange_prob`` on the single view, CAJ applies it to a second
copy of every visible image), infrared images get `ChannelAdapGray`, both get `ChannelRandomErasing`.
"""

from __future__ import annotations

import math

import torch
from torchvision.transforms import v2

from wrim.modality import VISIBLE

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ChannelAdapGray",
    "ChannelExchange",
    "ChannelRandomErasing",
    "TestTransform",
    "TrainTransform",
]

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
_GRAY_WEIGHTS = (0.2989, 0.5870, 0.1140)


def _randint(high: int) -> int:
    """Uniform integer in ``[0, high]`` (both ends, like ``random.randint``) from torch's RNG."""
    return int(torch.randint(0, high + 1, ()).item())


def _uniform(low: float, high: float) -> float:
    return float(torch.empty(()).uniform_(low, high).item())


def _to_gray(img: torch.Tensor) -> torch.Tensor:
    gray = _GRAY_WEIGHTS[0] * img[0] + _GRAY_WEIGHTS[1] * img[1] + _GRAY_WEIGHTS[2] * img[2]  # (3, H, W) -> (H, W)
    return gray.expand(3, -1, -1).clone()


class ChannelExchange(torch.nn.Module):
    """CAJ's random channel exchange: copy one random channel to all three, or convert to grayscale.

    Draws ``idx = randint(0, gray)`` (both ends inclusive): ``idx`` 0, 1, 2 copy channel R, G, B (the reference code
    comments channel 1 as "B"; it is G) to all channels; any larger ``idx`` gives the grayscale image
    ``0.2989 R + 0.5870 G + 0.1140 B``. **Quirk:** CAJ uses ``gray=2``, so its grayscale branch never runs; pass
    ``gray=3`` for a 1/4 chance of each outcome. Works on the normalised tensor, as CAJ does.

    Args:
        gray: upper bound of the drawn index (2 reproduces CAJ).
    """

    def __init__(self, gray: int = 2) -> None:
        super().__init__()
        if gray < 0:
            raise ValueError(f"gray must be >= 0, got {gray}")
        self.gray = int(gray)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        """(3, H, W) -> (3, H, W)."""
        idx = _randint(self.gray)
        if idx < 3:
            return img[idx : idx + 1].expand(3, -1, -1).clone()
        return _to_gray(img)


class ChannelAdapGray(torch.nn.Module):
    """CAJ's adaptive grayscale for infrared images.

    Draws ``idx = randint(0, 3)``: 0, 1, 2 copy that channel to all three; for 3 the image becomes grayscale with
    probability ``probability`` and is left unchanged otherwise.

    Args:
        probability: chance of grayscale in the ``idx = 3`` branch.
    """

    def __init__(self, probability: float = 0.5) -> None:
        super().__init__()
        self.probability = float(probability)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        """(3, H, W) -> (3, H, W)."""
        idx = _randint(3)
        if idx < 3:
            return img[idx : idx + 1].expand(3, -1, -1).clone()
        if _uniform(0, 1) > self.probability:
            return img
        return _to_gray(img)


class ChannelRandomErasing(torch.nn.Module):
    """Random erasing (Zhong et al., AAAI 2020) as in CAJ / AGW: a rectangle filled with per-channel constants.

    With probability ``probability``, up to 100 attempts draw an area ``U(sl, sh) * H * W`` and an aspect ratio
    ``U(r1, 1 / r1)``; the first rectangle that fits is filled with ``mean`` (CIFAR means, applied to the already
    normalised tensor, as the reference does, not zeros).

    Args:
        probability: chance of erasing.
        sl: smallest erased area fraction.
        sh: largest erased area fraction.
        r1: smallest aspect ratio (the largest is ``1 / r1``).
        mean: fill value of each channel.
    """

    def __init__(
        self,
        probability: float = 0.5,
        sl: float = 0.02,
        sh: float = 0.4,
        r1: float = 0.3,
        mean: tuple[float, float, float] = (0.4914, 0.4822, 0.4465),
    ) -> None:
        super().__init__()
        if not 0 < sl <= sh <= 1 or not 0 < r1 <= 1:
            raise ValueError(f"need 0 < sl <= sh <= 1 and 0 < r1 <= 1, got sl={sl}, sh={sh}, r1={r1}")
        self.probability, self.sl, self.sh, self.r1, self.mean = float(probability), sl, sh, r1, tuple(mean)

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        """(3, H, W) -> (3, H, W)."""
        if _uniform(0, 1) > self.probability:
            return img
        height, width = img.shape[-2:]
        for _ in range(100):
            target = _uniform(self.sl, self.sh) * height * width
            aspect = _uniform(self.r1, 1 / self.r1)
            h = int(round(math.sqrt(target * aspect)))
            w = int(round(math.sqrt(target / aspect)))
            if w < width and h < height:
                top, left = _randint(height - h), _randint(width - w)
                img = img.clone()
                img[:, top : top + h, left : left + w] = torch.tensor(self.mean, dtype=img.dtype)[:, None, None]
                return img
        return img


class TrainTransform:
    """Train pipeline: resize, pad + random crop, flip, normalise, random erasing, channel augmentation.

    ``Resize((H, W)) -> Pad(pad) -> RandomCrop((H, W)) -> RandomHorizontalFlip -> ToDtype(float32, scale) ->
    Normalize(ImageNet) -> ChannelRandomErasing(random_erasing) -> [visible: ChannelExchange(gray) with probability
    exchange_prob | infrared: ChannelAdapGray(0.5)]``. The reference pre-resizes with PIL Lanczos; here the resize
    is torchvision's antialiased bilinear one.

    Args:
        img_size: output (H, W).
        pad: zero padding before the random crop (AGW: 10).
        flip: probability of a horizontal flip.
        channel_aug: apply CAJ's channel augmentation.
        exchange_prob: probability of `ChannelExchange` on a visible image when ``channel_aug``.
        gray: ``gray`` argument of `ChannelExchange` (2 = CAJ, no grayscale outcome).
        random_erasing: probability of `ChannelRandomErasing` (0 disables it).
        mean: normalisation mean.
        std: normalisation std.
    """

    def __init__(
        self,
        img_size: tuple[int, int] = (288, 144),
        pad: int = 10,
        flip: float = 0.5,
        channel_aug: bool = True,
        exchange_prob: float = 0.5,
        gray: int = 2,
        random_erasing: float = 0.5,
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
    ) -> None:
        size = _check_size(img_size)
        self.geometric = v2.Compose(
            [
                v2.Resize(size, antialias=True),
                v2.Pad(pad),
                v2.RandomCrop(size),
                v2.RandomHorizontalFlip(flip),
                v2.ToDtype(torch.float32, scale=True),
                v2.Normalize(mean, std),
            ]
        )
        self.erasing = ChannelRandomErasing(random_erasing) if random_erasing > 0 else None
        self.channel_aug, self.exchange_prob = bool(channel_aug), float(exchange_prob)
        self.exchange = ChannelExchange(gray)
        self.adap_gray = ChannelAdapGray(0.5)

    def __call__(self, img: torch.Tensor, modality: int) -> torch.Tensor:
        """uint8 (3, H0, W0), modality -> float32 (3, H, W)."""
        out = self.geometric(img)
        if self.erasing is not None:
            out = self.erasing(out)
        if self.channel_aug:
            if modality == VISIBLE:
                if _uniform(0, 1) < self.exchange_prob:
                    out = self.exchange(out)
            else:
                out = self.adap_gray(out)
        return out


class TestTransform:
    """Deterministic test pipeline: ``Resize((H, W)) -> ToDtype(float32, scale) -> Normalize``; modality unused.

    Args:
        img_size: output (H, W).
        mean: normalisation mean.
        std: normalisation std.
    """

    __test__ = False  # not a pytest test class despite its name

    def __init__(
        self,
        img_size: tuple[int, int] = (288, 144),
        mean: tuple[float, float, float] = IMAGENET_MEAN,
        std: tuple[float, float, float] = IMAGENET_STD,
    ) -> None:
        self.pipeline = v2.Compose(
            [
                v2.Resize(_check_size(img_size), antialias=True),
                v2.ToDtype(torch.float32, scale=True),
                v2.Normalize(mean, std),
            ]
        )

    def __call__(self, img: torch.Tensor, modality: int) -> torch.Tensor:
        """uint8 (3, H0, W0), modality -> float32 (3, H, W)."""
        return self.pipeline(img)


def _check_size(img_size: tuple[int, int]) -> tuple[int, int]:
    if len(img_size) != 2 or min(img_size) < 1:
        raise ValueError(f"img_size must be (H, W) with positive ints, got {img_size!r}")
    return int(img_size[0]), int(img_size[1])
