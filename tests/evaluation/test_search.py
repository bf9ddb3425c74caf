"""``embed_folder`` / ``rank_gallery``: every image embedded with its own modality, rankings nearest first."""

from pathlib import Path

import pytest
import torch
from torchvision.io import write_png

import wrim
from wrim.data.transforms import TestTransform
from wrim.evaluation import embed_folder, rank_gallery


def _mean_colour_and_modality(images: torch.Tensor, modalities: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W), (B,) -> (B, 4): the per-channel mean and the modality, a model whose output we can predict."""
    return torch.cat([images.mean(dim=(2, 3)), modalities[:, None].float()], dim=1)


def _write(folder: Path, name: str, value: int) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    write_png(torch.full((3, 8, 4), value, dtype=torch.uint8), str(path))
    return path


def test_embed_folder_uses_each_images_modality(tmp_path):
    paths = [_write(tmp_path, "0001/a.png", 10), _write(tmp_path, "0001/b.png", 200), _write(tmp_path, "x/c.png", 90)]
    (tmp_path / "notes.txt").write_text("not an image")
    modalities = {"0001/a.png": "infrared", "0001/b.png": wrim.VISIBLE, "x/c.png": "visible"}
    out = embed_folder(_mean_colour_and_modality, tmp_path, modalities, img_size=(8, 4))
    assert out.paths == [str(p) for p in paths]  # sorted, recursive, images only
    assert [r.pid for r in out.records] == [1, 1, -1]  # identity from a numeric folder name
    transform = TestTransform((8, 4))
    for record, embedding in zip(out.records, out.embeddings):
        image = transform(wrim.data.read_image(record.path), record.modality)  # (3, H, W)
        assert torch.allclose(embedding[:3], image.mean(dim=(1, 2)))
    assert out.embeddings[:, 3].tolist() == [wrim.INFRARED, wrim.VISIBLE, wrim.VISIBLE]
    one = embed_folder(_mean_colour_and_modality, paths[0], wrim.INFRARED, img_size=(8, 4))  # one image file
    assert torch.equal(one.embeddings, out.embeddings[:1])


def test_embed_folder_errors_name_the_fix(tmp_path):
    _write(tmp_path, "a.png", 10)
    with pytest.raises(ValueError, match="no modality for 'a.png'"):
        embed_folder(_mean_colour_and_modality, tmp_path, {"b.png": 0}, img_size=(8, 4))
    with pytest.raises(ValueError, match="a modality must be"):
        embed_folder(_mean_colour_and_modality, tmp_path, "rgb", img_size=(8, 4))
    with pytest.raises(ValueError, match="no image"):
        (tmp_path / "empty").mkdir()
        embed_folder(_mean_colour_and_modality, tmp_path / "empty", 0)


def test_rank_gallery_is_nearest_first():
    gallery = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])  # (N, 2)
    query = torch.tensor([0.1, 1.0])  # (D,): nearest [0, 1], then [1, 1], then [1, 0] by the cosine
    order, dist = rank_gallery(query, gallery)
    assert order.tolist() == [[1, 2, 0]]
    cosine = torch.nn.functional.cosine_similarity(query[None], gallery)  # (N,)
    assert torch.allclose(dist[0], (1 - cosine)[order[0]])
    assert rank_gallery(query, gallery, topk=2)[0].tolist() == [[1, 2]]
