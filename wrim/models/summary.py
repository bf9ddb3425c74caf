"""``summary``: parameters and FLOPs of a WRIMNet per backbone stage, per MIIM and per head, against the plain backbone.

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` on one eval-mode forward pass (2 FLOPs per
multiply-add, so GFLOPs here are twice the "GMACs" that timm / fvcore tables report; element-wise ops, norms and
pooling are not counted). Each row's count is attributed by module: a stage is the modules its
[`StagedBackbone`][wrim.models.StagedBackbone] stage runs, a MIIM is ``model.miims["stage{k}"]``. A
``ModalityMIIM`` is counted as the trainer runs it, each sample through its own copy only (``num_visible`` given,
[`WRIMNet.forward`][wrim.models.WRIMNet.forward]); ``split_by_modality=False`` counts the any-order formulation, in
which both copies compute their gate for the whole batch.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from wrim._versions import at_least
from wrim.modality import VISIBLE
from wrim.models._arguments import pair
from wrim.models.backbone import NUM_STAGES
from wrim.models.wrimnet import WRIMNet

__all__ = ["ModelSummary", "SummaryRow", "summary"]


@dataclass(frozen=True)
class SummaryRow:
    """One part of the model."""

    name: str  # "stage1" .. "stage4", "miim1" .., "heads"
    params: int
    gflops: float  # per image


@dataclass(frozen=True)
class ModelSummary:
    """Per-part parameters and GFLOPs, with totals; ``str()`` gives a Markdown table."""

    backbone: str
    img_size: tuple[int, int]
    rows: tuple[SummaryRow, ...]

    def _total(self, prefix: str, name: str) -> SummaryRow:
        parts = [row for row in self.rows if row.name.startswith(prefix)]
        return SummaryRow(name, sum(r.params for r in parts), sum(r.gflops for r in parts))

    @property
    def backbone_total(self) -> SummaryRow:
        """The plain backbone: all stages."""
        return self._total("stage", "backbone (stages 1-4)")

    @property
    def miim_total(self) -> SummaryRow:
        """All MIIMs."""
        return self._total("miim", "all MIIMs")

    @property
    def total(self) -> SummaryRow:
        """The whole model."""
        return SummaryRow("total", sum(r.params for r in self.rows), sum(r.gflops for r in self.rows))

    def __str__(self) -> str:
        base = self.backbone_total
        lines = [
            f"{self.backbone} at {self.img_size[0]}x{self.img_size[1]} (GFLOPs per image, eval forward)",
            "| part | params (M) | GFLOPs | params vs backbone | GFLOPs vs backbone |",
            "|---|---:|---:|---:|---:|",
        ]
        for row in (*self.rows, base, self.miim_total, self.total):
            params_pct = 100 * row.params / max(base.params, 1)
            flops_pct = 100 * row.gflops / max(base.gflops, 1e-12)
            lines.append(
                f"| {row.name} | {row.params / 1e6:.2f} | {row.gflops:.4g} | {params_pct:.1f}% | {flops_pct:.1f}% |"
            )
        return "\n".join(lines)


@torch.no_grad()
def summary(
    model: WRIMNet,
    img_size: int | Sequence[int] | None = None,
    modalities: Sequence[int] | None = None,
    split_by_modality: bool = True,
) -> ModelSummary:
    """Count parameters and FLOPs per stage, MIIM and head.

    Args:
        model: a [`WRIMNet`][wrim.models.WRIMNet] (its training mode is restored afterwards).
        img_size: (H, W) of the input; default the model's ``img_size``.
        modalities: the modality ids of the counted batch (its size is the batch size); default one visible and
            one infrared image, so both copies of a ModalityMIIM run. FLOPs are reported per image.
        split_by_modality: run the batch with ``num_visible`` (each ModalityMIIM copy on its own samples); False
            counts both copies' gates on the whole batch.

    Returns:
        a [`ModelSummary`][wrim.models.ModelSummary] (print it for the table); on torch < 2.4, whose
        ``FlopCounterMode`` also counts a MIIM inside the stage it is hooked to, the GFLOPs are ``nan`` (a warning
        says so) and the parameters are counted as usual.
    """
    if not isinstance(model, WRIMNet):
        raise TypeError(f"summary expects a wrim WRIMNet; got {type(model).__name__}")
    height, width = pair(model.img_size if img_size is None else tuple(img_size), "img_size")
    ids = torch.tensor([0, 1] if modalities is None else list(modalities), dtype=torch.long)
    param = next(model.parameters())
    images = torch.zeros(len(ids), model.backbone.in_chans, height, width, device=param.device, dtype=param.dtype)
    was_training = model.training
    model.eval()
    per_module = at_least(torch.__version__, "2.4")
    if not per_module:
        message = f"summary: FLOPs per row need torch>=2.4 (installed {torch.__version__}); GFLOPs are nan"
        warnings.warn(message, stacklevel=2)
    try:
        with FlopCounterMode(display=False, depth=None) as counter:
            num_visible = int((ids == VISIBLE).sum()) if split_by_modality else None  # a host tensor
            if per_module:
                model(images, ids.to(param.device), num_visible=num_visible)
    finally:
        model.train(was_training)
    counts = {name: sum(ops.values()) for name, ops in counter.get_flop_counts().items()}
    names = {id(module): name for name, module in model.named_modules()}
    root = type(model).__name__

    def flops(modules) -> float:
        if not per_module:
            return math.nan
        return sum(counts.get(f"{root}.{names[id(module)]}", 0) for module in modules) / len(ids) / 1e9

    rows = []
    for index in range(1, NUM_STAGES + 1):
        stage_params = sum(p.numel() for p in model.backbone.stage_parameters(index))
        rows.append(SummaryRow(f"stage{index}", stage_params, flops(model.backbone.stage_modules(index))))
        if f"stage{index}" in model.miims:
            miim = model.miims[f"stage{index}"]
            rows.append(SummaryRow(f"miim{index}", sum(p.numel() for p in miim.parameters()), flops([miim])))
    heads = list(model.heads.values())
    rows.append(SummaryRow("heads", sum(p.numel() for p in model.heads.parameters()), flops(heads)))
    return ModelSummary(model.backbone.name, (height, width), tuple(rows))
