"""Argument and batch validators shared by wrim's layers, models, miners and losses (private; docs/losses.md).

One home, below every sub-package: it imports only torch and `wrim.modality`'s ids. Checks of shapes and dtypes
read only metadata. The value check of the modality ids never synchronises with an accelerator: it runs eagerly
(``ValueError``) on CPU tensors, and as ``torch._assert_async`` on accelerator tensors and under ``torch.compile``,
so that an unknown id is an error in every mode without a host sync in the training step ([D], docs/losses.md).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch

from wrim.modality import INFRARED, VISIBLE

__all__ = [
    "NO_POSITIVE_POLICIES",
    "SAMPLER_HINT",
    "check_any_anchor",
    "check_embeddings",
    "check_k",
    "check_labels",
    "check_modalities",
    "check_modality_split",
    "check_no_positive",
    "check_nonnegative",
    "check_temperature",
    "compute_dtype",
    "missing_modalities_message",
    "no_positive_message",
]

SAMPLER_HINT = (
    "Every batch must hold, for some identity, samples of both modalities: build it with "
    "wrim.data.build_train_loader / IdentityModalitySampler (num_ids identities x num_instances visible + "
    "num_instances infrared)."
)
NO_POSITIVE_POLICIES: tuple[str, ...] = ("warn", "raise")
_BAD_ID_MESSAGE = (
    "{name} may only hold wrim.VISIBLE (0) or wrim.INFRARED (1); found {ids}. "
    "Map your dataset's camera/modality labels to 0/1 first."
)


def check_k(k: int, name: str = "k") -> int:
    """Validate a per-anchor count such as the number of key instances (an int >= 1)."""
    if isinstance(k, bool) or not isinstance(k, int):
        raise TypeError(f"{name} must be an int >= 1 (the number of instances kept per anchor); got {k!r}")
    if k < 1:
        raise ValueError(f"{name} must be >= 1 (the number of instances kept per anchor); got {k}")
    return k


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


def check_no_positive(policy: str) -> str:
    """Validate a loss's ``no_positive`` policy (``"warn"`` or ``"raise"``)."""
    if policy not in NO_POSITIVE_POLICIES:
        raise ValueError(f"no_positive must be one of {NO_POSITIVE_POLICIES}; got {policy!r}")
    return policy


def check_embeddings(embeddings: torch.Tensor, name: str = "embeddings") -> torch.Tensor:
    """Validate a (N, D) floating-point embedding matrix."""
    if not isinstance(embeddings, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape (batch, dim); got {type(embeddings).__name__}")
    if not embeddings.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor; got dtype {embeddings.dtype}")
    if embeddings.dim() != 2:
        raise ValueError(
            f"{name} must have shape (batch, dim); got {tuple(embeddings.shape)}. Flatten or pool features first."
        )
    return embeddings


def check_labels(labels: torch.Tensor, batch_size: int, name: str = "labels") -> torch.Tensor:
    """Validate a (N,) integer label vector of the given length and return it as a LongTensor."""
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape ({batch_size},); got {type(labels).__name__}")
    if labels.dtype.is_floating_point or labels.dtype.is_complex:
        raise TypeError(f"{name} must be an integer tensor of identity labels; got dtype {labels.dtype}")
    if labels.dim() != 1 or labels.shape[0] != batch_size:
        raise ValueError(
            f"{name} must have shape ({batch_size},), one label per embedding; got {tuple(labels.shape)}. "
            "Embeddings, labels and modalities must have the same length."
        )
    return labels.long()


def check_modalities(modalities: torch.Tensor, batch_size: int, name: str = "modalities") -> torch.Tensor:
    """Validate a per-sample modality vector and return it as a LongTensor.

    Args:
        modalities: one id per sample, ``wrim.VISIBLE`` (0) or ``wrim.INFRARED`` (1).
        batch_size: the number of samples it must describe.
        name: the argument name used in error messages.

    Raises:
        TypeError: ``modalities`` is not a tensor or not an integer/bool tensor.
        ValueError: wrong shape or length, or (CPU tensor, eager) an id other than 0 / 1.
        RuntimeError: an id other than 0 / 1 on an accelerator tensor or under ``torch.compile``
            (``torch._assert_async``, with the same message; on CUDA it surfaces at the next synchronisation).
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
    bad = (modalities != VISIBLE) & (modalities != INFRARED)  # (B,)
    if torch.compiler.is_compiling() or modalities.device.type != "cpu":
        torch._assert_async(~bad.any(), _BAD_ID_MESSAGE.format(name=name, ids="an id outside {0, 1}"))
    elif bool(bad.any()):  # host memory: no device synchronisation
        raise ValueError(_BAD_ID_MESSAGE.format(name=name, ids=sorted(set(modalities[bad].tolist()))))
    return modalities


def check_modality_split(modalities: torch.Tensor, num_visible: int, name: str = "modalities") -> None:
    """Validate a modality-sorted batch: its first ``num_visible`` ids are ``wrim.VISIBLE``, the rest ``INFRARED``.

    ``num_visible`` is a Python int (a static size for ``torch.compile``); the ids are checked without a host sync
    as in `check_modalities` (``ValueError`` eagerly on CPU tensors, ``torch._assert_async`` otherwise).

    Raises:
        TypeError: ``num_visible`` is not an int.
        ValueError: ``num_visible`` outside ``[0, B]``, or (CPU tensor, eager) ids not in that order.
    """
    if isinstance(num_visible, bool) or not isinstance(num_visible, int):
        raise TypeError(f"num_visible must be an int (the batch's visible count); got {num_visible!r}")
    batch = modalities.shape[0]
    if not 0 <= num_visible <= batch:
        raise ValueError(f"num_visible must be between 0 and the batch size {batch}; got {num_visible}")
    expected = torch.arange(batch, device=modalities.device) >= num_visible  # (B,) True = infrared
    wrong = (modalities == INFRARED) != expected  # (B,)
    message = (
        f"{name} must hold {num_visible} visible ids (0) followed by {batch - num_visible} infrared ids (1) when "
        "num_visible is given (WRIMNet.forward sorts the batch itself)"
    )
    if torch.compiler.is_compiling() or modalities.device.type != "cpu":
        torch._assert_async(~wrong.any(), message)
    elif bool(wrong.any()):  # host memory: no device synchronisation
        raise ValueError(message)


def missing_modalities_message(owner: str, ref: bool = False) -> str:
    """The ValueError text for a cross-modality miner or loss called without ``modalities``."""
    if ref:
        return (
            f"{owner} with ref_emb needs ref_modalities, one id per ref_emb row: "
            f"call it as {owner.split('(')[0]}(...)(embeddings, labels, ..., ref_emb, ref_labels, "
            "modalities=modalities, ref_modalities=ref_modalities)"
        )
    return (
        f"{owner} is cross-modality and needs modalities, a (B,) tensor with 0 = visible, 1 = infrared: pass it "
        "by keyword, e.g. loss(embeddings, labels, modalities=modalities) or miner(embeddings, labels, "
        "modalities=modalities). Inside pytorch-metric-learning's CrossBatchMemory use "
        "wrim.losses.CrossModalityMemory (docs/losses.md)."
    )


def compute_dtype(embeddings: torch.Tensor) -> torch.dtype:
    """float32 for half / bfloat16 / float32 inputs (autocast-safe), float64 for float64 (gradcheck)."""
    return torch.float64 if embeddings.dtype == torch.float64 else torch.float32


def no_positive_message(loss_name: str, labels: torch.Tensor, modalities: torch.Tensor | None) -> str:
    """The text for a batch in which no anchor has a usable positive (reads the labels: call it only to report)."""
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


def check_any_anchor(valid: torch.Tensor, loss: torch.nn.Module, message: Callable[[], str]) -> None:
    """Apply ``loss.no_positive`` to a batch whose (B,) ``valid`` mask marks the anchors that contribute.

    ``"raise"``: every eager call checks (one host sync; for debugging a sampler) and raises ``ValueError``; under
    ``torch.compile`` the check is ``torch._assert_async``. ``"warn"`` (default): the loss of an empty batch is 0;
    the first eager call of the module checks once and warns, later calls never synchronise.
    """
    if loss.no_positive == "raise":
        if torch.compiler.is_compiling():
            torch._assert_async(valid.any(), f"{type(loss).__name__}: no anchor has a usable positive")
        elif not bool(valid.any()):
            raise ValueError(message())
    elif not torch.compiler.is_compiling() and not loss._checked_once:
        loss._checked_once = True
        if not bool(valid.any()):
            warnings.warn(
                f"{message()} The loss is 0 for such a batch (warned once; no_positive='raise' checks every batch).",
                stacklevel=3,
            )
