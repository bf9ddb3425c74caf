"""How the engine computes: the training precision (the ``amp`` setting) and the images' memory format.

One home for both, which training (``wrim.engine.step``, ``wrim.engine.epoch``), evaluation
(``wrim.engine.evaluate``) and the benchmarks share ([D] docs: Training): ``amp: auto`` is bf16 autocast on CUDA and
fp32 elsewhere; ``model.channels_last`` lays the weights and images out as ``torch.channels_last``.
"""

from __future__ import annotations

import contextlib

import torch

__all__ = ["AMP_CHOICES", "amp_dtype", "autocast", "memory_format", "precision_name"]

#: The values of the ``amp`` config key and of ``wrim eval --amp`` / ``wrim search --amp``.
AMP_CHOICES: tuple[str, ...] = ("auto", "bf16", "fp16", "none")


def amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype of an ``amp`` setting on ``device``: ``"auto"`` is bf16 on CUDA and none (fp32) elsewhere.

    Args:
        amp: one of `AMP_CHOICES`: ``"auto"``, ``"bf16"``, ``"fp16"`` or ``"none"``.
        device: where the model runs.

    Raises:
        ValueError: another ``amp`` (the choices named).
    """
    if amp not in AMP_CHOICES:
        raise ValueError(f"amp must be one of {list(AMP_CHOICES)}, got {amp!r}")
    if amp == "auto":
        return torch.bfloat16 if device.type == "cuda" else None
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "none": None}[amp]


def precision_name(dtype: torch.dtype | None) -> str:
    """How an autocast dtype is reported (protocol cards, provenance): ``"fp32"`` or e.g. ``"bfloat16 autocast"``."""
    return "fp32" if dtype is None else f"{str(dtype).removeprefix('torch.')} autocast"


def autocast(device_type: str, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """``torch.autocast`` to ``dtype`` on ``device_type`` (``"cuda"``, ``"cpu"``, ...); nothing for ``None`` (fp32)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type, dtype=dtype)


def memory_format(channels_last: bool) -> torch.memory_format:
    """The memory format of ``model.channels_last``: ``torch.channels_last``, else the tensors' own layout."""
    return torch.channels_last if channels_last else torch.preserve_format
