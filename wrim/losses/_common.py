"""Private helpers shared by wrim's losses: argument checks, the compute dtype and error messages."""

from __future__ import annotations

import torch

from wrim.modality import INFRARED, VISIBLE

__all__ = ["SAMPLER_HINT", "check_nonnegative", "check_temperature", "compute_dtype", "no_positive_message"]

SAMPLER_HINT = (
    "Every batch must hold, for some identity, samples of both modalities: build it with "
    "wrim.data.build_train_loader / IdentityModalitySampler (num_ids identities x num_instances visible + "
    "num_instances infrared)."
)


def check_temperature(temperature: float) -> float:
    """Validate a contrastive temperature (a float > 0)."""
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
        raise TypeError(f"temperature must be a float > 0; got {temperature!r}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0 (it divides the similarities); got {temperature}")
    return float(temperature)


def check_nonnegative(value: float, name: str) -> float:
    """Validate a loss weight or margin (a float >= 0)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a float >= 0; got {value!r}")
    if not value >= 0:
        raise ValueError(f"{name} must be >= 0; got {value}")
    return float(value)


def compute_dtype(embeddings: torch.Tensor) -> torch.dtype:
    """float32 for half / bfloat16 / float32 inputs (autocast-safe), float64 for float64 (gradcheck)."""
    return torch.float64 if embeddings.dtype == torch.float64 else torch.float32


def no_positive_message(loss_name: str, labels: torch.Tensor, modalities: torch.Tensor | None) -> str:
    """The ValueError text for a batch in which no anchor has a usable positive."""
    if modalities is None:
        return (
            f"{loss_name}: no anchor in this batch has both a positive (another sample with its label) and a negative "
            "(a sample with another label); sample several instances of several identities per batch "
            "(wrim.data.IdentityModalitySampler)."
        )
    vis, ir = labels[modalities == VISIBLE], labels[modalities == INFRARED]
    shared = len(set(vis.tolist()) & set(ir.tolist()))
    return (
        f"{loss_name}: no anchor has a cross-modality positive. The batch has {len(vis)} visible and {len(ir)} "
        f"infrared samples and {shared} identities present in both modalities; it needs at least one identity with "
        f"samples of both. {SAMPLER_HINT}"
    )
