"""Modality ids shared by layers, losses, miners, data and models.

A VI-ReID batch carries one modality id per sample: ``modalities: (B,)`` LongTensor with
``VISIBLE = 0`` (RGB cameras) and ``INFRARED = 1`` (thermal / near-infrared cameras).
"""

from __future__ import annotations

import torch

__all__ = ["VISIBLE", "INFRARED", "MODALITY_NAMES", "check_modalities"]

VISIBLE: int = 0
INFRARED: int = 1
MODALITY_NAMES: dict[int, str] = {VISIBLE: "visible", INFRARED: "infrared"}


def check_modalities(modalities: torch.Tensor, batch_size: int, name: str = "modalities") -> torch.Tensor:
    """Validate a per-sample modality vector and return it as a LongTensor.

    Args:
        modalities: one id per sample, ``wrim.VISIBLE`` (0) or ``wrim.INFRARED`` (1).
        batch_size: the number of samples it must describe.
        name: the argument name used in error messages.

    Raises:
        TypeError: ``modalities`` is not a tensor or not an integer/bool tensor.
        ValueError: wrong shape or length, or an id other than 0 / 1.
    """
    if not isinstance(modalities, torch.Tensor):
        raise TypeError(
            f"{name} must be a torch.Tensor of shape ({batch_size},) with 0 = visible, 1 = infrared; "
            f"got {type(modalities).__name__}"
        )
    if modalities.dtype.is_floating_point or modalities.dtype.is_complex:
        raise TypeError(f"{name} must be an integer tensor (0 = visible, 1 = infrared); got dtype {modalities.dtype}")
    if modalities.dim() != 1 or modalities.shape[0] != batch_size:
        raise ValueError(
            f"{name} must have shape ({batch_size},), one id per sample of the batch; got {tuple(modalities.shape)}"
        )
    modalities = modalities.long()
    # One host sync per call: cheap next to a forward pass, and it turns a silent mis-route into an error.
    if batch_size > 0 and not torch.compiler.is_compiling():
        bad = (modalities != VISIBLE) & (modalities != INFRARED)
        if bool(bad.any()):
            ids = sorted(set(modalities[bad].tolist()))
            raise ValueError(
                f"{name} may only hold wrim.VISIBLE (0) or wrim.INFRARED (1); found {ids}. "
                "Map your dataset's camera/modality labels to 0/1 first."
            )
    return modalities
