"""Image dataset and the train / test DataLoaders.

Batches are 4-tuples ``(images (B, 3, H, W) float32, pids (B,) long, camids (B,) long, modalities (B,) long)``.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torchvision
from torch.utils.data import DataLoader, Dataset
from torchvision.io import ImageReadMode, decode_image

from wrim._versions import at_least
from wrim.data.base import VIReIDDataset
from wrim.data.records import ImageRecord
from wrim.data.sampler import IdentityModalitySampler
from wrim.data.transforms import TestTransform, TrainTransform

if TYPE_CHECKING:
    import PIL.Image

__all__ = [
    "ImageDataset",
    "UnreadableImageError",
    "build_test_loader",
    "build_train_loader",
    "build_train_transform",
    "read_image",
]

log = logging.getLogger("wrim")


def _torchvision_formats(version: str) -> tuple[str, ...]:
    """The suffixes that go to ``torchvision.io.decode_image`` at torchvision ``version`` (JPEG; GIF from 0.19, WebP
    from 0.20); the others are read through PIL. PNG always goes to PIL: torchvision's PNG decoder (0.29.1 at least)
    kills the process with a segmentation fault, instead of raising, on a PNG whose compressed data fails its check
    (libpng's "IDAT: incorrect data check"), so one damaged file would end a training run."""
    formats = (".jpg", ".jpeg")
    formats += (".gif",) if at_least(version, "0.19") else ()
    return formats + ((".webp",) if at_least(version, "0.20") else ())


_TORCHVISION_FORMATS = _torchvision_formats(torchvision.__version__)


def read_image(path: str | Path) -> torch.Tensor:
    """Decode an image file as a uint8 (3, H, W) RGB tensor; one-channel (infrared) images are replicated.

    JPEG (and GIF / WebP on torchvision >= 0.19 / 0.20) are decoded by ``torchvision.io`` from the file's bytes
    (torchvision < 0.19 decodes only a byte tensor, not a path); other formats (PNG, RegDB's BMP) through PIL,
    which torchvision already depends on.

    Before anything is decoded, the header is read with PIL: an image of more pixels than Pillow's limit
    (``PIL.Image.MAX_IMAGE_PIXELS``: a decompression bomb) is refused. An animation gives its first frame (PIL),
    16-bit pixels are scaled to 8 bits (``v // 257``), and 32-bit integer or float pixels (PIL modes ``I`` and
    ``F``, of no fixed range) are refused.

    Raises:
        UnreadableImageError: the file is missing, empty, truncated, not an image, or refused above (names the file
            and the reason).
    """
    path = Path(path)
    try:
        image = _decode(bytearray(path.read_bytes()), path.suffix.lower())
    except Exception as err:  # torchvision raises RuntimeError, PIL OSError, the checks ValueError
        reason = " ".join(str(err).split()) or type(err).__name__
        raise UnreadableImageError(f"cannot decode image {str(path)!r}: {reason}") from None
    return image


def _decode(data: bytearray, suffix: str) -> torch.Tensor:
    """The bytes of an image file (format ``suffix``) -> uint8 (3, H, W) RGB, as `read_image()` describes."""
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise ValueError("the file is empty")
    try:
        header = Image.open(io.BytesIO(data))  # reads the header only
    except UnidentifiedImageError:
        raise ValueError("not an image (PIL knows no such format)") from None
    with header as img:
        _check_size(img)
        if suffix not in _TORCHVISION_FORMATS or getattr(img, "is_animated", False):
            return torch.from_numpy(_pil_rgb(img)).permute(2, 0, 1).contiguous()  # (H, W, 3) -> (3, H, W)
    return decode_image(torch.frombuffer(data, dtype=torch.uint8), mode=ImageReadMode.RGB)  # bytes (N,) -> (3, H, W)


def _check_size(img: PIL.Image.Image) -> None:
    """Refuse, from the header alone, an image of more pixels than Pillow's limit (a decompression bomb)."""
    from PIL import Image

    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and img.width * img.height > limit:
        raise ValueError(
            f"{img.width}x{img.height} pixels exceed PIL.Image.MAX_IMAGE_PIXELS = {limit} (a decompression bomb?)"
        )


def _pil_rgb(img: PIL.Image.Image) -> np.ndarray:
    """``img`` (its first frame) as a (H, W, 3) uint8 RGB array; 16-bit gray (mode ``I;16*``) scaled by ``v // 257``;
    32-bit pixels refused."""
    if img.mode in ("I", "F"):
        raise ValueError(f"mode {img.mode} (32-bit pixels of no fixed range); save it with 8-bit channels")
    if img.mode.startswith("I;16"):
        gray = (np.asarray(img).astype(np.int32) // 257).astype(np.uint8)  # (H, W)
        return np.repeat(gray[:, :, None], 3, axis=2)
    return np.array(img.convert("RGB"))


class UnreadableImageError(ValueError):
    """An image file cannot be decoded; the message names the file and the reason."""


class ImageDataset(Dataset):
    """Map-style dataset over [`ImageRecord`][wrim.data.ImageRecord] s.

    ``dataset[i] -> (image (3, H, W) float32, pid, camid, modality)``. ``dataset[(i, seed)]`` runs the transform
    with torch's RNG seeded by ``seed`` (the caller's RNG state is restored), so a sample's augmentation does not
    depend on the process, worker or position that loads it.

    Args:
        records: the images.
        transform: ``(uint8 (3, H, W) image, modality) -> float (3, H, W)``; ``None`` only scales to ``[0, 1]``.
        skip_bad_images: replace an unreadable image by the next readable one of the same identity and modality
            (a warning names the file and counts the skips of this process) instead of raising
            `UnreadableImageError`.
    """

    def __init__(
        self,
        records: Sequence[ImageRecord],
        transform: Callable[[torch.Tensor, int], torch.Tensor] | None,
        skip_bad_images: bool = False,
    ) -> None:
        self.records = list(records)
        self.transform = transform
        self.skip_bad_images = skip_bad_images
        self.skipped = 0

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int | tuple[int, int]) -> tuple[torch.Tensor, int, int, int]:
        seed = None
        if isinstance(index, tuple):  # (index, seed) from IdentityModalitySampler(with_seeds=True)
            index, seed = index
        rec = self.records[index]
        img = self._read(index)  # (3, H, W) uint8
        if self.transform is None:
            return img.float() / 255, rec.pid, rec.camid, rec.modality
        if seed is None:
            return self.transform(img, rec.modality), rec.pid, rec.camid, rec.modality
        with torch.random.fork_rng(devices=[]):  # the sample's augmentation depends on its seed only
            torch.manual_seed(seed)
            img = self.transform(img, rec.modality)
        return img, rec.pid, rec.camid, rec.modality

    def _read(self, index: int) -> torch.Tensor:
        rec = self.records[index]
        if not self.skip_bad_images:
            return read_image(rec.path)
        same = [
            r for r in self.records[index:] + self.records[:index] if (r.pid, r.modality) == (rec.pid, rec.modality)
        ]
        for candidate in same:
            try:
                return read_image(candidate.path)
            except UnreadableImageError as err:
                self.skipped += 1
                log.warning("data.skip_bad_images: skipped %s (%d skipped in this process)", err, self.skipped)
        raise UnreadableImageError(f"no readable image of identity {rec.pid} in modality {rec.modality}")


def build_train_loader(
    dataset: VIReIDDataset,
    img_size: tuple[int, int] = (288, 144),
    num_ids: int = 8,
    num_instances: int = 4,
    num_workers: int = 2,
    seed: int = 0,
    channel_aug: bool = True,
    random_erasing: float = 0.5,
    rank: int | None = None,
    world_size: int | None = None,
    exchange_prob: float = 0.5,
    channel_gray: int = 2,
    skip_bad_images: bool = False,
) -> DataLoader:
    """Train loader over ``dataset.train`` with [`IdentityModalitySampler`][wrim.data.IdentityModalitySampler] batches.

    Every batch holds ``B = num_ids * 2 * num_instances`` images (visible block, then infrared block); call
    ``loader.batch_sampler.set_epoch(epoch)`` before each epoch. Every sample's augmentation is seeded by the
    sampler from ``(seed, epoch, step, its place in the global batch)``, so the batches do not depend on
    ``num_workers`` or on how the global batch is split over ranks.

    Args:
        dataset: a reader (``SYSUMM01``, ``RegDB``, ``LLCM``, ``SyntheticVIReID``).
        img_size: (H, W) of the batches.
        num_ids: identities per batch (per rank).
        num_instances: images per identity and modality.
        num_workers: DataLoader worker processes.
        seed: sampler and augmentation seed.
        channel_aug: CAJ channel augmentation (see [`TrainTransform`][wrim.data.TrainTransform]).
        random_erasing: random erasing probability.
        rank: DDP rank (default from ``torch.distributed`` when initialised).
        world_size: DDP world size (default from ``torch.distributed`` when initialised).
        exchange_prob: probability of the channel exchange on a visible image (with ``channel_aug``).
        channel_gray: ``gray`` of ``ChannelExchange`` (2 = CAJ's code, 3 adds grayscale).
        skip_bad_images: skip unreadable images (see `ImageDataset`) instead of stopping.
    """
    records = dataset.train
    sampler = IdentityModalitySampler(
        [r.pid for r in records],
        [r.modality for r in records],
        num_ids=num_ids,
        num_instances=num_instances,
        seed=seed,
        rank=rank,
        world_size=world_size,
        with_seeds=True,
    )
    transform = build_train_transform(img_size, channel_aug, random_erasing, exchange_prob, channel_gray)
    generator = torch.Generator().manual_seed(int(seed) * 1_000_003 + sampler.rank)
    return DataLoader(
        ImageDataset(records, transform, skip_bad_images=skip_bad_images),
        batch_sampler=sampler,
        num_workers=num_workers,
        generator=generator,
        persistent_workers=num_workers > 0,
    )


def build_train_transform(
    img_size: tuple[int, int] = (288, 144),
    channel_aug: bool = True,
    random_erasing: float = 0.5,
    exchange_prob: float = 0.5,
    channel_gray: int = 2,
) -> TrainTransform:
    """The training augmentation of `build_train_loader` (its arguments of the same names): a
    [`TrainTransform`][wrim.data.TrainTransform]."""
    return TrainTransform(
        img_size, channel_aug=channel_aug, exchange_prob=exchange_prob, gray=channel_gray, random_erasing=random_erasing
    )


def build_test_loader(
    records: Sequence[ImageRecord],
    img_size: tuple[int, int] = (288, 144),
    batch_size: int = 128,
    num_workers: int = 2,
) -> DataLoader:
    """Test loader: deterministic [`TestTransform`][wrim.data.TestTransform], records in their original order.

    Args:
        records: query or gallery records.
        img_size: (H, W) of the batches.
        batch_size: images per batch.
        num_workers: DataLoader worker processes.
    """
    return DataLoader(
        ImageDataset(records, TestTransform(img_size)),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
    )
