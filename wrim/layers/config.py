"""Global switch between the fused and the reference attention path (after ``timm.layers.config``).

The default comes from the environment variable ``WRIM_FUSED_ATTN`` (``1``: fused, ``0``: reference) and can
be changed at run time with [`set_fused_attn()`][wrim.layers.set_fused_attn]. Modules read it once, in ``__init__``,
into their own ``fused_attn`` attribute, which can then be flipped per instance.
"""

from __future__ import annotations

import os

import torch.nn.functional as F

__all__ = ["use_fused_attn", "set_fused_attn"]

_HAS_SDPA = hasattr(F, "scaled_dot_product_attention")


def _env_flag() -> bool:
    value = os.environ.get("WRIM_FUSED_ATTN", "1").strip()
    if value not in ("0", "1"):
        raise ValueError(f"WRIM_FUSED_ATTN must be '0' (reference attention) or '1' (fused attention); got {value!r}")
    return value == "1"


_USE_FUSED_ATTN: bool = _env_flag()


def use_fused_attn() -> bool:
    """Whether newly built attention modules use ``F.scaled_dot_product_attention``."""
    return _HAS_SDPA and _USE_FUSED_ATTN


def set_fused_attn(enable: bool = True) -> None:
    """Set the default attention path for modules built from now on.

    Args:
        enable: ``True`` for the fused SDPA path, ``False`` for the explicit softmax(QKᵀ/√d)V reference path.
    """
    global _USE_FUSED_ATTN
    if not isinstance(enable, bool):
        raise TypeError(f"set_fused_attn expects a bool; got {type(enable).__name__}")
    _USE_FUSED_ATTN = enable
