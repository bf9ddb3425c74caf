"""Argument and batch validators shared by wrim's layers, models, miners and losses (private; docs: Losses and miners).

One home, below every sub-package: it imports only torch and `wrim.modality`'s ids. Checks of shapes and dtypes
read only metadata. The value check of the modality ids never synchronises with an accelerator: it runs eagerly
(``ValueError``) on CPU tensors, and as ``torch._assert_async`` on accelerator tensors and under ``torch.compile``,
so that an unknown id is an error in every mode without a host sync in the training step ([D], docs: Losses and miners).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch.fx import _symbolic_trace

from wrim.modality import INFRARED, VISIBLE

__all__ = [
    "NO_POSITIVE_POLICIES",
    "SAMPLER_HINT",
    "PairBatch",
    "check_embeddings",
    "check_k",
    "check_labels",
    "check_modalities",
    "check_modality_split",
    "check_no_positive",
    "check_nonnegative",
    "check_pair_batch",
    "check_temperature",
    "checks_enabled",
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
# torch >= 2.6 tells symbolic tracing apart from export (whose fake tensors the checks handle)
_is_symbolic_tracing = getattr(_symbolic_trace, "is_fx_symbolic_tracing", _symbolic_trace.is_fx_tracing)
_BAD_ID_MESSAGE = (
    "{name} may only hold wrim.VISIBLE (0) or wrim.INFRARED (1); found {ids}. "
    "Map your dataset's camera/modality labels to 0/1 first."
)


def checks_enabled() -> bool:
    """Whether eager input checks should run: not while ``torch.fx.symbolic_trace`` traces with proxies.

    The layers' and models' checks compare shapes and types in Python; on an ``fx`` Proxy they would fail
    (``bool(Proxy)``), so a traced graph carries no checks. TorchScript removes them on its own
    (``torch.jit.is_scripting()`` branches).
    """
    return not _is_symbolic_tracing()


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
        "wrim.losses.CrossModalityMemory (docs: Losses and miners)."
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


class PairBatch(NamedTuple):
    """A validated miner or loss batch: what `check_pair_batch` hands to the computation.

    Attributes:
        embeddings: (B, D) anchors.
        labels: (B,) LongTensor on the anchors' device, or None (a loss given only an ``indices_tuple``).
        ref_emb: (R, D) reference embeddings, or None when the batch is its own reference set.
        ref_labels: (R,) LongTensor (the anchors' labels when ``ref_emb`` is None), or None.
        modalities: (B,) LongTensor of ids, or None.
        ref_modalities: (R,) LongTensor of ids (the anchors' when ``ref_emb`` is None), or None.
    """

    embeddings: torch.Tensor
    labels: torch.Tensor | None
    ref_emb: torch.Tensor | None
    ref_labels: torch.Tensor | None
    modalities: torch.Tensor | None
    ref_modalities: torch.Tensor | None


def check_pair_batch(
    owner: str,
    embeddings: torch.Tensor,
    labels: torch.Tensor | None,
    ref_emb: torch.Tensor | None,
    ref_labels: torch.Tensor | None,
    modalities: torch.Tensor | None,
    ref_modalities: torch.Tensor | None,
    *,
    mines: bool,
    need_modalities: bool,
) -> PairBatch:
    """Validate the arguments of pytorch-metric-learning's miner / loss call once: the one home of these checks.

    Args:
        owner: the caller's name for messages, e.g. ``"CMKICLoss"``.
        embeddings, labels, ref_emb, ref_labels, modalities, ref_modalities: as given to ``forward``.
        mines: the caller chooses its pairs from the labels (a miner, a loss without ``indices_tuple``): ``labels``
            (and ``ref_labels`` with ``ref_emb``) are required; otherwise they are checked when given.
        need_modalities: ``modalities`` are required (and, when the caller mines, ``ref_modalities`` with
            ``ref_emb``).

    Returns:
        The validated batch, ids and labels as LongTensors on the device of ``embeddings``.

    Raises:
        TypeError: a non-tensor, a float label or id tensor.
        ValueError: mismatched lengths or dims, a missing required argument, ``ref_*`` without ``ref_emb``.
    """
    embeddings = check_embeddings(embeddings)
    batch, device = embeddings.shape[0], embeddings.device
    if labels is None and mines:
        raise ValueError(f"{owner} needs labels, one identity label per embedding")
    if labels is not None:
        labels = check_labels(labels, batch).to(device)
    if modalities is None and need_modalities:
        raise ValueError(missing_modalities_message(owner))
    if modalities is not None:
        modalities = check_modalities(modalities, batch).to(device)
    if ref_emb is None:
        if ref_labels is not None or ref_modalities is not None:
            raise ValueError("ref_labels / ref_modalities were given without ref_emb; pass ref_emb too")
        return PairBatch(embeddings, labels, None, labels, modalities, modalities)
    ref_emb = check_embeddings(ref_emb, name="ref_emb")
    if ref_emb.shape[1] != embeddings.shape[1]:
        raise ValueError(
            f"ref_emb has dim {ref_emb.shape[1]} but embeddings have dim {embeddings.shape[1]}; they must match"
        )
    refs = ref_emb.shape[0]
    if ref_labels is None and mines:
        raise ValueError("ref_emb was given without ref_labels; pass one label per reference embedding")
    if ref_labels is not None:
        ref_labels = check_labels(ref_labels, refs, name="ref_labels").to(device)
    if ref_modalities is None and need_modalities and mines:
        raise ValueError(missing_modalities_message(owner, ref=True))
    if ref_modalities is not None:
        ref_modalities = check_modalities(ref_modalities, refs, name="ref_modalities").to(device)
    return PairBatch(embeddings, labels, ref_emb, ref_labels, modalities, ref_modalities)
