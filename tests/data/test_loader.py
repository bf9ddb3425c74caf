"""ImageDataset and the train / test loaders on a tiny synthetic set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from wrim import INFRARED, VISIBLE
from wrim.data import (
    IdentityModalitySampler,
    ImageDataset,
    ImageRecord,
    SyntheticVIReID,
    UnreadableImageError,
    build_test_loader,
    build_train_loader,
    read_image,
)
from wrim.data import loader as loader_module


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> SyntheticVIReID:
    root = tmp_path_factory.mktemp("synthetic") / "set"
    return SyntheticVIReID(root, num_ids=6, num_test_ids=2, images_per_camera=2, img_size=(48, 24), seed=1)


def test_read_image_formats(tmp_path: Path, write_image) -> None:
    for name, gray in (("a.jpg", False), ("b.png", True), ("c.bmp", False), ("d.bmp", True)):
        img = read_image(write_image(tmp_path / name, 100, gray=gray, size=(10, 6)))
        assert img.shape == (3, 10, 6) and img.dtype == torch.uint8
        if gray:
            assert torch.equal(img[0], img[1]) and torch.equal(img[1], img[2])


def test_torchvision_formats_follow_the_installed_version() -> None:
    assert loader_module._torchvision_formats("0.18.1+cu121") == (".jpg", ".jpeg")
    assert loader_module._torchvision_formats("0.19.0") == (".jpg", ".jpeg", ".gif")
    assert loader_module._torchvision_formats("0.29.1") == (".jpg", ".jpeg", ".gif", ".webp")


def test_read_image_on_the_floor_torchvision_path(tmp_path: Path, write_image, monkeypatch) -> None:
    """torchvision 0.18 (the floor) decodes only a 1-D uint8 byte tensor, never a path, and no GIF / WebP: the
    reader hands it the file's bytes and sends GIF / WebP to PIL; the pixels equal PIL's decoding."""
    decoded, decode_image = [], loader_module.decode_image

    def decode_image_0_18(data, mode):
        if not (isinstance(data, torch.Tensor) and data.dtype == torch.uint8 and data.dim() == 1):
            raise RuntimeError(f"Expected a value of type 'Tensor' for argument 'data' but found {type(data)}")
        decoded.append(len(data))
        return decode_image(data, mode=mode)

    monkeypatch.setattr(loader_module, "decode_image", decode_image_0_18)
    monkeypatch.setattr(loader_module, "_TORCHVISION_FORMATS", loader_module._torchvision_formats("0.18.1"))
    for name in ("a.png", "b.gif", "c.webp", "d.jpg"):
        path = write_image(tmp_path / name, 100, size=(10, 6))
        expected = torch.from_numpy(np.asarray(Image.open(path).convert("RGB"))).permute(2, 0, 1)
        image = read_image(path)
        assert image.shape == (3, 10, 6) and image.dtype == torch.uint8
        if name != "d.jpg":  # JPEG decoders may round differently
            assert torch.equal(image, expected), name
    assert decoded == [(tmp_path / "d.jpg").stat().st_size]  # PNG, GIF and WebP through PIL
    empty = tmp_path / "e.png"
    empty.write_bytes(b"")
    with pytest.raises(UnreadableImageError, match="e.png"):
        read_image(empty)


def test_image_dataset_items(tiny: SyntheticVIReID) -> None:
    ds = ImageDataset(tiny.train, transform=None)
    img, pid, camid, modality = ds[0]
    assert img.dtype == torch.float32 and img.shape == (3, 48, 24) and img.min() >= 0 and img.max() <= 1
    rec = tiny.train[0]
    assert (pid, camid, modality) == (rec.pid, rec.camid, rec.modality)
    calls = []
    ds = ImageDataset([rec], transform=lambda x, m: calls.append(m) or x.float())
    ds[0]
    assert calls == [rec.modality]


def test_train_loader_batches(tiny: SyntheticVIReID) -> None:
    loader = build_train_loader(tiny, img_size=(32, 16), num_ids=3, num_instances=2, num_workers=0, seed=0)
    assert isinstance(loader.batch_sampler, IdentityModalitySampler)
    images, pids, camids, modalities = next(iter(loader))
    assert images.shape == (12, 3, 32, 16) and images.dtype == torch.float32
    for t in (pids, camids, modalities):
        assert t.dtype == torch.long and t.shape == (12,)
    assert modalities.tolist() == [VISIBLE] * 6 + [INFRARED] * 6
    assert torch.equal(pids[:6], pids[6:]) and len(set(pids.tolist())) == 3
    assert set(camids[:6].tolist()) <= {1, 2, 4, 5} and set(camids[6:].tolist()) <= {3, 6}
    loader.batch_sampler.set_epoch(1)
    assert len(list(loader)) == len(loader.batch_sampler)


def test_train_loader_with_workers_is_reproducible(tiny: SyntheticVIReID) -> None:
    def first_batch() -> torch.Tensor:
        loader = build_train_loader(tiny, img_size=(32, 16), num_ids=2, num_instances=2, num_workers=1, seed=3)
        return next(iter(loader))[0]

    assert torch.equal(first_batch(), first_batch())


def test_test_loader_keeps_order(tiny: SyntheticVIReID) -> None:
    split = tiny.test_split(0)
    loader = build_test_loader(split.query, img_size=(32, 16), batch_size=5, num_workers=0)
    pids, modalities = [], []
    for images, pid, _, modality in loader:
        assert images.shape[1:] == (3, 32, 16)
        pids += pid.tolist()
        modalities += modality.tolist()
    assert pids == [r.pid for r in split.query] and set(modalities) == {INFRARED}
    again = torch.cat([b[0] for b in build_test_loader(split.query, img_size=(32, 16), num_workers=0)])
    first = torch.cat([b[0] for b in loader])
    assert torch.equal(first, again)


def test_record_is_frozen() -> None:
    rec = ImageRecord("x.jpg", 1, 3, INFRARED)
    with pytest.raises(AttributeError):
        rec.pid = 2


@pytest.mark.parametrize(
    ("name", "content"),
    [("zero.jpg", b""), ("text.jpg", b"not an image\n"), ("truncated.jpg", None), ("text.bmp", b"BMnot")],
)
def test_unreadable_image_is_named(tmp_path: Path, write_image, name: str, content: bytes | None) -> None:
    path = tmp_path / name
    if content is None:
        good = write_image(tmp_path / "good.jpg", 10, size=(32, 16)).read_bytes()
        content = good[: len(good) // 2]
    path.write_bytes(content)
    with pytest.raises(UnreadableImageError, match=f"cannot decode image '{path}': .+"):
        read_image(path)


def test_skip_bad_images_replaces_by_a_readable_image_of_the_same_identity(tmp_path: Path, write_image, caplog):
    good = write_image(tmp_path / "good.jpg", 10)
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"")
    records = [ImageRecord(str(bad), 0, 1, VISIBLE), ImageRecord(str(good), 0, 1, VISIBLE)]
    with pytest.raises(UnreadableImageError, match="bad.jpg"):
        ImageDataset(records, transform=None)[0]
    ds = ImageDataset(records, transform=None, skip_bad_images=True)
    assert torch.equal(ds[0][0], ds[1][0]) and ds.skipped == 1
    assert "skipped cannot decode image" in caplog.text and "bad.jpg" in caplog.text
    with pytest.raises(UnreadableImageError, match="no readable image of identity 0"):
        ImageDataset(records[:1], transform=None, skip_bad_images=True)[0]


def test_train_batches_do_not_depend_on_the_rank_split_or_workers(tiny: SyntheticVIReID) -> None:
    """Two ranks x 2 identities load the augmented images of one process x 4 identities (the global batch)."""

    def batches(num_ids: int, rank: int, world_size: int, workers: int) -> list[torch.Tensor]:
        loader = build_train_loader(
            tiny, img_size=(32, 16), num_ids=num_ids, num_instances=2, num_workers=workers, seed=4, rank=rank,
            world_size=world_size,
        )  # fmt: skip
        loader.batch_sampler.set_epoch(1)
        return [images for images, *_ in loader]

    torch.manual_seed(123)  # the caller's RNG state plays no part
    single = batches(4, 0, 1, 0)
    halves = [batches(2, r, 2, 1 if r else 0) for r in range(2)]
    for step, images in enumerate(single):
        vis, ir = images[:8], images[8:]
        for r in range(2):
            assert torch.equal(halves[r][step], torch.cat([vis[4 * r : 4 * r + 4], ir[4 * r : 4 * r + 4]]))
