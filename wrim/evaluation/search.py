"""Embed a folder of images with a trained model and rank it against a query: gallery search outside a benchmark.

Shape legend:
    N: images of the folder, Q: queries, D: embedding size. distances (Q, N), smaller = more similar.

Every image needs its modality (``wrim.VISIBLE`` or ``wrim.INFRARED``): a VI-ReID model routes each image through
its modality's layers (WRIMNet's modality-specific MIIMs), so an infrared image embedded as visible gets a wrong
embedding without any error. Give one modality for the whole folder, or one per file.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from wrim.data.base import IMAGE_EXTENSIONS
from wrim.data.records import ImageRecord
from wrim.evaluation.protocol import extract_features, pairwise_distance
from wrim.modality import INFRARED, VISIBLE

__all__ = ["FolderEmbeddings", "embed_folder", "rank_gallery"]

#: How a modality may be written: the ``wrim`` constants or their names.
_MODALITY_NAMES = {"visible": VISIBLE, "infrared": INFRARED, "thermal": INFRARED}


@dataclass
class FolderEmbeddings:
    """The embeddings of a folder's images.

    Attributes:
        records: one ``wrim.data.ImageRecord`` per image (``pid``: the parent folder's name when it is a number,
            as in SYSU-MM01's ``<pid>/`` folders, else -1), in sorted path order.
        embeddings: (N, D) float32 embeddings, in the order of ``records``.
    """

    records: list[ImageRecord]
    embeddings: torch.Tensor

    @property
    def paths(self) -> list[str]:
        """The image paths, in the order of ``embeddings``."""
        return [r.path for r in self.records]


def _modality_of(value: int | str) -> int:
    if isinstance(value, str) and value.lower() in _MODALITY_NAMES:
        return _MODALITY_NAMES[value.lower()]
    if value in (VISIBLE, INFRARED) and not isinstance(value, bool):
        return int(value)
    raise ValueError(f"a modality must be wrim.VISIBLE (0), wrim.INFRARED (1), 'visible' or 'infrared'; got {value!r}")


def _records(
    paths: Sequence[Path], folder: Path, modality: int | str | Mapping[str, int | str] | Callable[[Path], int | str]
) -> list[ImageRecord]:
    records = []
    for path in paths:
        if callable(modality):
            value = modality(path)
        elif isinstance(modality, Mapping):
            key = path.relative_to(folder).as_posix() if path.is_relative_to(folder) else path.name
            if key not in modality:
                raise ValueError(f"no modality for {key!r}: the modality mapping must hold every image of {folder}")
            value = modality[key]
        else:
            value = modality
        pid = int(path.parent.name) if path.parent.name.isdigit() else -1
        records.append(ImageRecord(str(path), pid, 0, _modality_of(value)))
    return records


def embed_folder(
    model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    folder: str | os.PathLike,
    modality: int | str | Mapping[str, int | str] | Callable[[Path], int | str],
    img_size: tuple[int, int] = (288, 144),
    batch_size: int = 64,
    device: torch.device | str | None = None,
    flip: bool = False,
    num_workers: int = 0,
) -> FolderEmbeddings:
    """Embed every image under ``folder`` (recursively, sorted) with a trained model.

    Examples:
        ```python
        gallery = embed_folder(model, "cctv/day", modality="visible", img_size=(288, 144))
        query = embed_folder(model, "cctv/night_query", modality=wrim.INFRARED, img_size=(288, 144))
        ranking = rank_gallery(query.embeddings, gallery.embeddings)  # (Q, N) gallery indices, best first
        ```

    Args:
        model: ``model(images, modalities) -> (B, D)`` (put in eval mode for the call), e.g. a ``WRIMNet`` or
            ``wrim.engine.evaluate.load_run_model(...)``.
        folder: a folder of images (``.jpg``, ``.png``, ...), searched recursively; or one image file.
        modality: every image's modality, required: ``wrim.VISIBLE`` / ``wrim.INFRARED`` (or ``"visible"`` /
            ``"infrared"``) for the whole folder, a mapping from each image's path relative to ``folder`` to its
            modality, or a function ``path -> modality``.
        img_size: (H, W) of the test transform: the size the model was trained at.
        batch_size: images per forward pass.
        device: where the model runs; default its parameters' device.
        flip: add the horizontally flipped image's embedding (as ``evaluate_protocol(flip=True)``).
        num_workers: DataLoader workers.
    """
    root = Path(folder)
    if root.is_file():
        paths, root = [root], root.parent
    elif root.is_dir():
        paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    else:
        raise ValueError(f"{str(root)!r} does not exist: give a folder of images or one image file")
    if not paths:
        raise ValueError(f"no image ({', '.join(sorted(IMAGE_EXTENSIONS))}) found under {str(root)!r}")
    records = _records(paths, root, modality)
    features = extract_features(model, records, img_size, batch_size, device, flip, num_workers)  # (N, D)
    return FolderEmbeddings(records, features)


def rank_gallery(
    query: torch.Tensor, gallery: torch.Tensor, topk: int | None = None, distance: str = "cosine"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rank gallery embeddings for each query embedding.

    Args:
        query: (Q, D) or (D,) query embeddings.
        gallery: (N, D) gallery embeddings.
        topk: keep the ``topk`` nearest (default all).
        distance: ``"cosine"`` or ``"euclidean"`` (``wrim.evaluation.pairwise_distance``).

    Returns:
        ``(indices, distances)``, each (Q, k): gallery indices nearest first and their distances.
    """
    query = query.unsqueeze(0) if query.dim() == 1 else query  # (D,) -> (1, D)
    dist = pairwise_distance(query, gallery, distance)  # (Q, N)
    k = dist.shape[1] if topk is None else min(int(topk), dist.shape[1])
    if k < 1:
        raise ValueError(f"topk must be >= 1; got {topk}")
    order = torch.argsort(dist, dim=1, stable=True)[:, :k]  # (Q, k)
    return order, torch.gather(dist, 1, order)
