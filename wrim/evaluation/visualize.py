"""Rank-list figures: each query next to its top-k gallery images, correct matches framed green, wrong ones red.

Shape legend:
    Q: queries, G: gallery images. distmat: (Q, G), smaller = more similar.

The gallery images the protocol's camera rule drops for a query (``wrim.evaluation.evaluate``) are left out of its
row, so the row shows the ranking the metrics score. Needs matplotlib (``pip install "wrim[train]"``), imported
only when a figure is drawn.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from wrim._plotting import new_figure, save_figure
from wrim.evaluation.metrics import PROTOCOLS, camera_keep_mask

if TYPE_CHECKING:
    from wrim.data import ImageRecord

__all__ = ["plot_ranklist"]

_CORRECT, _WRONG, _QUERY = "#1a9641", "#d7191c", "#2b83ba"


def _load(path: str, img_size: tuple[int, int]) -> np.ndarray:
    from torchvision.transforms.v2 import functional as TF

    from wrim.data import read_image

    img = TF.resize(read_image(path), list(img_size), antialias=True)  # (3, h, w) uint8 -> (3, H, W)
    return img.permute(1, 2, 0).numpy()  # (H, W, 3)


def plot_ranklist(
    distmat: torch.Tensor | np.ndarray,
    query: Sequence[ImageRecord],
    gallery: Sequence[ImageRecord],
    path: str | os.PathLike,
    protocol: str = "sysu",
    topk: int = 10,
    query_indices: Sequence[int] | None = None,
    num_queries: int = 6,
    img_size: tuple[int, int] = (128, 64),
) -> Path:
    """Write a PNG grid: one row per query, the query image then its ``topk`` nearest gallery images.

    Gallery images with the query's identity are framed green, others red; each is titled with its rank,
    identity, camera and distance.

    Args:
        distmat: (Q, G) distances between ``query`` and ``gallery``.
        query: the query ``wrim.data.ImageRecord`` s (``path``, ``pid``, ``camid``), in ``distmat`` row order.
        gallery: the gallery records, in ``distmat`` column order.
        path: the PNG file to write (parent folders are created).
        protocol: camera rule applied before ranking (``"sysu"``, ``"regdb"``, ``"llcm"``), as in ``evaluate``.
        topk: gallery images per row.
        query_indices: rows of ``distmat`` to draw; default ``num_queries`` rows spread evenly over the queries.
        num_queries: number of rows when ``query_indices`` is not given.
        img_size: (H, W) each image is resized to.

    Returns:
        The written path.
    """
    rows, ranked = _ranked_rows(distmat, query, gallery, protocol, topk, query_indices, num_queries)
    cols = topk + 1
    height, width = img_size
    fig = new_figure("plot_ranklist", (cols * 1.3 * width / height + 0.4, len(rows) * 1.6 + 0.2))
    axes = fig.subplots(len(rows), cols, squeeze=False)
    for row, (q_index, g_indices) in enumerate(zip(rows, ranked)):
        q_rec = query[q_index]
        panels = [(q_rec, f"query\nid {q_rec.pid} cam {q_rec.camid}", _QUERY)]
        for rank, (g_index, distance) in enumerate(g_indices, 1):
            g_rec = gallery[g_index]
            colour = _CORRECT if g_rec.pid == q_rec.pid else _WRONG
            panels.append((g_rec, f"{rank}: id {g_rec.pid} c{g_rec.camid}\n{distance:.3f}", colour))
        _draw_row(axes[row], panels, img_size)
    return save_figure(fig, path, dpi=100)


def _ranked_rows(
    distmat: torch.Tensor | np.ndarray,
    query: Sequence[ImageRecord],
    gallery: Sequence[ImageRecord],
    protocol: str,
    topk: int,
    query_indices: Sequence[int] | None,
    num_queries: int,
) -> tuple[list[int], list[list[tuple[int, float]]]]:
    """The drawn query rows and, for each, its ``topk`` gallery ``(index, distance)`` after the camera rule."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose one of {PROTOCOLS}")
    dist = torch.as_tensor(distmat).detach().float().cpu()
    if dist.dim() != 2 or tuple(dist.shape) != (len(query), len(gallery)):
        raise ValueError(
            f"distmat must be (len(query), len(gallery)) = ({len(query)}, {len(gallery)}); got {tuple(dist.shape)}"
        )
    if topk < 1:
        raise ValueError(f"topk must be >= 1; got {topk}")
    if query_indices is None:
        count = max(1, min(num_queries, len(query)))
        query_indices = np.linspace(0, len(query) - 1, count).round().astype(int).tolist()
    rows = [int(i) for i in query_indices]
    if not rows or any(not 0 <= i < len(query) for i in rows):
        raise ValueError(f"query_indices must be non-empty rows in [0, {len(query)}); got {list(query_indices)}")
    g_ids = torch.tensor([r.pid for r in gallery])
    g_cams = torch.tensor([r.camid for r in gallery])
    q_ids = torch.tensor([query[i].pid for i in rows])
    q_cams = torch.tensor([query[i].camid for i in rows])
    order = torch.argsort(dist[rows], dim=1, stable=True)  # (n, G)
    keep = camera_keep_mask(protocol, q_ids, q_cams, g_ids[order], g_cams[order])
    ranked = []
    for row, q_index in enumerate(rows):
        kept = order[row] if keep is None else order[row][keep[row]]
        ranked.append([(g, float(dist[q_index, g])) for g in kept[:topk].tolist()])
    return rows, ranked


def _draw_row(axes: Sequence, panels: list[tuple[ImageRecord, str, str]], img_size: tuple[int, int]) -> None:
    """One figure row: each panel's image, title and frame colour; axes beyond the panels are hidden."""
    for col, ax in enumerate(axes):
        ax.set_xticks([])
        ax.set_yticks([])
        if col >= len(panels):
            ax.set_axis_off()
            continue
        rec, title, colour = panels[col]
        ax.imshow(_load(rec.path, img_size))
        ax.set_title(title, fontsize=6, color=colour)
        for spine in ax.spines.values():
            spine.set_edgecolor(colour)
            spine.set_linewidth(3)
