"""Argument checks of the models' constructors: (H, W) pairs, 1-based stage indices, per-stage values, head names.

Each raises a ValueError that names the argument, what it must be and what it got.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from wrim.models._timm_build import NUM_STAGES

__all__ = [
    "check_heads",
    "check_images",
    "check_placements",
    "check_stages",
    "miim_arguments",
    "min_image_size",
    "pair",
    "per_stage_values",
]


def pair(value: int | Sequence[int], name: str) -> tuple[int, int]:
    """An (H, W) pair from an int or a 2-sequence of positive ints."""
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) and v > 0 for v in pair):
        raise ValueError(f"{name} must be (H, W) positive ints, e.g. (288, 144); got {value!r}")
    return pair


def check_stages(stages: Sequence[int], name: str) -> tuple[int, ...]:
    """Validate 1-based stage indices (Block1..Block4)."""
    if isinstance(stages, int):
        stages = (stages,)
    stages = tuple(stages)
    bad = [s for s in stages if not isinstance(s, int) or not 1 <= s <= NUM_STAGES]
    if bad:
        raise ValueError(
            f"{name} holds 1-based stage indices 1..{NUM_STAGES} (the paper's Block1..Block4); got {bad} in {stages}"
        )
    if len(set(stages)) != len(stages):
        raise ValueError(f"{name} lists a stage twice: {stages}")
    return tuple(sorted(stages))


def check_heads(heads: Sequence[str] | None, names: tuple[str, ...], argument: str) -> tuple[str, ...]:
    """A non-empty subset of the head names (None = all), in the given order."""
    if heads is None:
        return names
    heads = (heads,) if isinstance(heads, str) else tuple(heads)
    if not heads or any(name not in names for name in heads):
        raise ValueError(f"{argument} must be a non-empty subset of {names}; got {heads!r}")
    return heads


def per_stage_values(value: int | Sequence[int] | None, name: str, allow_none: bool = False) -> tuple[int | None, ...]:
    """One positive int per stage 1..4 from an int or a 4-sequence (None entries where ``allow_none``)."""
    values = (value,) * NUM_STAGES if value is None or isinstance(value, int) else tuple(value)

    def valid(v) -> bool:
        return (v is None and allow_none) or (isinstance(v, int) and v >= 1)

    if len(values) != NUM_STAGES or not all(valid(v) for v in values):
        raise ValueError(f"{name} must be a positive int or {NUM_STAGES} of them (stages 1..4); got {value!r}")
    return values


def check_placements(separate_stages: Sequence[int], shared_stages: Sequence[int]) -> tuple[tuple[int, ...], ...]:
    """The stages of separate and of shared MIIMs, validated and disjoint (a stage gets one MIIM kind)."""
    separate = check_stages(separate_stages, "separate_stages")
    shared = check_stages(shared_stages, "shared_stages")
    both = set(separate) & set(shared)
    if both:
        raise ValueError(
            f"stages {sorted(both)} are in both separate_stages and shared_stages; a stage gets one MIIM kind"
        )
    return separate, shared


def miim_arguments(
    reductions: Sequence[int],
    token_stride: int,
    stride: int | Sequence[int] | None,
    reduction: int | Sequence[int],
    num_heads: int | Sequence[int] | None,
    kv_pool: int | Sequence[int],
) -> dict[str, tuple[int | None, ...]]:
    """Each per-stage MIIM argument as a 4-tuple; the strides from ``token_stride`` and the stages' measured
    ``reductions`` (``max(1, token_stride // R_k)``) unless ``stride`` is given."""
    if not isinstance(token_stride, int) or token_stride < 1:
        raise ValueError(f"token_stride must be a positive int (paper: 16); got {token_stride!r}")
    if stride is None:
        stride = tuple(max(1, token_stride // r) for r in reductions)
    return {
        "reduction": per_stage_values(reduction, "reduction"),
        "stride": per_stage_values(stride, "stride"),
        "num_heads": per_stage_values(num_heads, "num_heads", allow_none=True),
        "kv_pool": per_stage_values(kv_pool, "kv_pool"),
    }


def check_images(images: torch.Tensor, channels: int) -> None:
    """A (B, ``channels``, H, W) float tensor, or a TypeError / ValueError that says what to change."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor (B, 3, H, W); got {type(images).__name__}")
    if images.dim() != 4 or images.shape[1] != channels:
        raise ValueError(
            f"images must be (B, {channels}, H, W); got shape {tuple(images.shape)}"
            + (" - add a batch dimension with images[None]" if images.dim() == 3 else "")
        )
    if not images.is_floating_point():
        raise TypeError(f"images must be a float tensor (normalised); got {images.dtype}")


def min_image_size(reductions: Sequence[int], strides: Sequence[int], local_parts: int) -> tuple[int, int]:
    """The smallest (H, W) that gives every stage ``k``'s MIIM (stride ``s_k`` at reduction ``R_k``) one region
    and P5 (stage 4) ``local_parts`` strips: ``H >= R_k · max(s_k, parts_k)``, ``W >= R_k · s_k``."""
    need_h, need_w = 1, 1
    for index, (reduction, stride) in enumerate(zip(reductions, strides, strict=True), start=1):
        parts = max(local_parts, 1) if index == NUM_STAGES else 1
        need_h, need_w = max(need_h, reduction * stride, reduction * parts), max(need_w, reduction * stride)
    return need_h, need_w
