"""MIIM gate maps: where each MIIM of a model re-weights its input, read from the model's own forward pass.

Shapes: ``B`` images, ``C`` channels of a placement, ``h, w`` its MIIM token grid (``⌈H_k / s⌉ × ⌈W_k / s⌉``),
``N = h·w``.

Every MIIM computes a gate ``G = σ(Linear_{C'→C}(F4))`` of shape (B, C, h, w) in (0, 1) (docs: The paper, MIIM) and
re-weights its input with ``X ⊙ Up_s(G)``. ``capture_gates`` asks each MIIM to report its gate through its
test-time intervention interface ([`MIIM.intervene`][wrim.layers.MIIM.intervene]), so one ordinary forward pass of the
model fills in every gate; a separate (modality-specific) MIIM keeps, per sample, the gate of its modality's copy, as
its forward does. Nothing is recorded outside the ``with`` block: a model costs nothing extra when no map is asked for.
``gate_maps`` reduces each gate over channels to (B, h, w); ``plot_gate_maps`` overlays them on the images.

Example:
    >>> maps = gate_maps(model.eval(), images, modalities)          # doctest: +SKIP
    >>> {name: m.shape for name, m in maps.items()}                  # doctest: +SKIP
    {'stage1': (B, 24, 8), 'stage2': (B, 24, 8), 'stage3': (B, 24, 8), 'stage4': (B, 24, 8)}
    >>> plot_gate_maps(images, maps, modalities, "gate_maps.png")    # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from wrim._checks import check_modalities
from wrim._plotting import new_figure, save_figure
from wrim.data.transforms import IMAGENET_MEAN, IMAGENET_STD, TestTransform
from wrim.layers import ModalityMIIM, miim_placements
from wrim.modality import INFRARED, VISIBLE

if TYPE_CHECKING:
    from wrim.data import TestSplit

__all__ = ["capture_gates", "gate_maps", "plot_gate_maps", "plot_split_gate_maps"]

_REDUCTIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "mean": lambda gate: gate.mean(dim=1),
    "max": lambda gate: gate.amax(dim=1),
    "min": lambda gate: gate.amin(dim=1),
}


@contextlib.contextmanager
def capture_gates(model: nn.Module) -> Iterator[dict[str, dict[str, torch.Tensor]]]:
    """Record every MIIM gate of the next forward passes of ``model``.

    Yields a dict filled during the forward: ``{placement: {"visible": (B, C, h, w), "infrared": ...}}`` for a
    separate MIIM (in a forward without ``num_visible`` both copies compute the gate of the whole batch) and
    ``{placement: {"shared": (B, C, h, w)}}`` for a shared one, detached, in float32. Each MIIM reports its gate
    through [`MIIM.intervene`][wrim.layers.MIIM.intervene] with a change that returns the gate unchanged, so every
    gate mode (learned, constant, static) is recorded; the blocks are restored when the ``with`` block ends.

    Raises:
        ValueError: ``model`` holds no MIIM.
    """
    placements = miim_placements(model)
    if not placements:
        raise ValueError(f"{type(model).__name__} has no MIIM: there is no gate to show (a baseline model?)")
    records: dict[str, dict[str, torch.Tensor]] = {name: {} for name in placements}

    def recorder(name: str, copy: str) -> Callable[[torch.Tensor], torch.Tensor]:
        def record(gate: torch.Tensor) -> torch.Tensor:  # (B, C, h, w), returned unchanged
            records[name][copy] = gate.detach().float()
            return gate

        return record

    with contextlib.ExitStack() as stack:
        for name, module in placements.items():
            copies = {"shared": module}
            if isinstance(module, ModalityMIIM):
                copies = {"visible": module.visible, "infrared": module.infrared}
            for copy, miim in copies.items():
                stack.enter_context(miim.intervene(recorder(name, copy)))
        yield records


@torch.no_grad()
def gate_maps(
    model: nn.Module,
    images: torch.Tensor,
    modalities: torch.Tensor,
    reduction: str | Callable[[torch.Tensor], torch.Tensor] = "mean",
) -> dict[str, torch.Tensor]:
    """Each MIIM's gate, reduced over channels, from one eval-mode forward pass of ``model``.

    Args:
        model: a model with MIIMs whose forward takes ``(images, modalities)`` (e.g. a ``WRIMNet``); it runs in
            eval mode and its mode is restored afterwards.
        images: (B, 3, H, W) normalised images.
        modalities: (B,) 0 = visible, 1 = infrared; a separate MIIM's map is the one of the sample's modality.
        reduction: ``"mean"``, ``"max"`` or ``"min"`` over the C channels, or a callable (B, C, h, w) -> (B, h, w).

    Returns:
        ``{placement: (B, h, w)}`` on the CPU, values in (0, 1) for the built-in reductions, in forward order
        (``stage1`` .. ``stage4`` for a WRIMNet).
    """
    reduce = _REDUCTIONS.get(reduction) if isinstance(reduction, str) else reduction
    if reduce is None:
        raise ValueError(f"reduction must be one of {sorted(_REDUCTIONS)} or a callable; got {reduction!r}")
    modalities = check_modalities(modalities, images.shape[0])
    was_training = model.training
    model.eval()
    try:
        with capture_gates(model) as records:
            model(images, modalities.to(images.device))
    finally:
        model.train(was_training)
    maps = {}
    for name, copies in records.items():
        if "shared" in copies:
            gate = copies["shared"]
        else:
            infrared = (modalities == INFRARED).to(copies["visible"].device).view(-1, 1, 1, 1)  # (B, 1, 1, 1)
            gate = torch.where(infrared, copies["infrared"], copies["visible"])  # (B, C, h, w)
        maps[name] = reduce(gate).cpu()  # (B, h, w)
    return maps


def plot_gate_maps(
    images: torch.Tensor,
    maps: dict[str, torch.Tensor],
    modalities: torch.Tensor,
    path: str | Path | None = None,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    alpha: float = 0.55,
    titles: Sequence[str] | None = None,
) -> Any:
    """Overlay gate maps on their images, visible and infrared side by side.

    Row ``i`` shows the ``i``-th visible image and the ``i``-th infrared image of the batch (put the same person
    at the same position of each modality to compare them), each followed by one overlay per placement: the map
    nearest-upsampled to the image (each MIIM gate covers ``s × s``-pixel blocks of its stage) in a jet colour
    map, fixed to the range [0, 1] so that placements and images compare, with its colour bar on the right.

    Args:
        images: (B, 3, H, W) images normalised with ``mean`` / ``std``.
        maps: ``gate_maps``' output, ``{placement: (B, h, w)}``.
        modalities: (B,) 0 = visible, 1 = infrared.
        path: write a PNG there (folders are created); None only returns the figure.
        mean: the normalisation mean to undo.
        std: the normalisation std to undo.
        alpha: opacity of the overlay.
        titles: one title per row (e.g. the person id), shown on the row's first image.

    Returns:
        the ``matplotlib.figure.Figure`` (no pyplot state is touched).

    Raises:
        ImportError: matplotlib is not installed (``pip install 'wrim[train]'``).
        ValueError: the batch has no visible / infrared pair, or ``maps`` do not match the images.
    """
    modalities = check_modalities(modalities, images.shape[0]).cpu()
    visible = (modalities == VISIBLE).nonzero().flatten().tolist()
    infrared = (modalities == INFRARED).nonzero().flatten().tolist()
    rows = min(len(visible), len(infrared))
    if rows == 0:
        raise ValueError("plot_gate_maps shows visible and infrared side by side: the batch needs both modalities")
    bad = {name: tuple(m.shape) for name, m in maps.items() if m.dim() != 3 or m.shape[0] != images.shape[0]}
    if not maps or bad:
        raise ValueError(f"maps must be gate_maps(...) of these {images.shape[0]} images, (B, h, w) each; got {bad}")
    height, width = images.shape[-2:]
    pictures = images.detach().float().cpu() * torch.tensor(std)[:, None, None] + torch.tensor(mean)[:, None, None]
    pictures = pictures.clamp(0, 1).permute(0, 2, 3, 1).numpy()  # (B, H, W, 3)
    names = list(maps)
    cols = 2 * (1 + len(names))
    fig = new_figure("plot_gate_maps", (1.1 * cols + 0.6, 2.3 * rows))
    layout = fig.add_gridspec(rows, cols + 1, width_ratios=[1.0] * cols + [0.12])  # last column: the colour bar
    axes = layout[:, :cols].subgridspec(rows, cols).subplots(squeeze=False)
    for row in range(rows):
        for side, index in enumerate((visible[row], infrared[row])):
            start = side * (1 + len(names))
            axes[row, start].imshow(pictures[index])
            label = "visible" if side == 0 else "infrared"
            if titles is not None and side == 0:
                label = f"{titles[row]}\n{label}"
            axes[row, start].set_title(label, fontsize=7)
            for offset, name in enumerate(names, start=1):
                grid = maps[name][index][None, None]  # (1, 1, h, w)
                up = nn.functional.interpolate(grid.float(), size=(height, width), mode="nearest")[0, 0]  # (H, W)
                ax = axes[row, start + offset]
                ax.imshow(pictures[index])
                overlay = ax.imshow(up.numpy(), cmap="jet", vmin=0.0, vmax=1.0, alpha=alpha)
                ax.set_title(name, fontsize=7)
    for ax in axes.flat:
        ax.axis("off")
    bar = fig.colorbar(overlay, cax=fig.add_subplot(layout[:, cols]))
    bar.set_label("gate (reduced over channels)", fontsize=7)
    bar.ax.tick_params(labelsize=6)
    if path is None:
        fig.tight_layout()
    else:
        save_figure(fig, path, dpi=120)
    return fig


def plot_split_gate_maps(
    model: nn.Module, split: TestSplit, count: int, path: str | Path, img_size: tuple[int, int] = (288, 144)
) -> Any:
    """The gates of ``count`` queries of a test split (distinct people), each beside a gallery image of the same
    person (``wrim eval --gate-maps N``).

    The pairs are the split's first ``count`` queries whose person has a gallery image (that person's first one);
    the images are read and resized as the evaluation reads them ([`TestTransform`][wrim.data.TestTransform]).

    Args:
        model: as for `gate_maps`, on the device it runs on.
        split: the test split (``dataset.test_split(trial, **protocol)``).
        count: the number of queries (rows), >= 1.
        path: the PNG to write (folders are created).
        img_size: (H, W) the model was trained at.

    Returns:
        the ``matplotlib.figure.Figure``.

    Raises:
        ValueError: ``count < 1``, no query of the split has a gallery image of the same person, or matplotlib is
            not installed.
    """
    from wrim.data import read_image

    if count < 1:
        raise ValueError(f"count must be a number of queries >= 1, got {count}")
    gallery_by_pid = {}
    for record in split.gallery:
        gallery_by_pid.setdefault(record.pid, record)
    pairs, seen = [], set()
    for record in split.query:
        if record.pid in gallery_by_pid and record.pid not in seen and len(pairs) < count:
            seen.add(record.pid)
            pairs.append((record, gallery_by_pid[record.pid]))
    if not pairs:
        raise ValueError("no query has a gallery image of the same person in this split: there is no pair to show")
    records = [r for pair in pairs for r in pair]  # query, gallery, query, gallery, ...
    transform = TestTransform(img_size)
    images = torch.stack([transform(read_image(r.path), r.modality) for r in records])  # (2N, 3, H, W)
    modalities = torch.tensor([r.modality for r in records])  # (2N,)
    maps = gate_maps(model, images.to(next(model.parameters()).device), modalities)
    titles = [f"id {query.pid}" for query, _ in pairs]
    try:
        return plot_gate_maps(images, maps, modalities, path, titles=titles)
    except ImportError as err:
        raise ValueError(str(err)) from err
