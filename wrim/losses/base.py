"""The loss base class: pytorch-metric-learning's loss contract, with per-sample modality ids.

Shape legend: ``B`` anchors, ``R`` reference samples (``R = B`` without ``ref_emb``), ``D`` embedding size.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch
from torch import nn

from wrim._checks import PairBatch, check_no_positive, check_pair_batch
from wrim.pairs import IndicesTuple

__all__ = ["BaseLoss"]


class BaseLoss(nn.Module):
    """Base class of wrim's pair losses, with pytorch-metric-learning's (PML) call shape.

    ``loss(embeddings, labels, indices_tuple, ref_emb, ref_labels, modalities=..., ref_modalities=...)`` validates
    the batch once (`check_batch`) and hands the clean tensors to
    [`compute_loss()`][wrim.losses.BaseLoss.compute_loss], which subclasses implement and which trusts its input
    (callers that validated the batch themselves, such as [`AICLLoss`][wrim.losses.AICLLoss] inside
    [`WRIMNetLoss`][wrim.losses.WRIMNetLoss], call it directly). The modality ids are keyword-only, so PML code that
    calls losses positionally works unchanged.

    The ``no_positive`` policy for a batch in which no anchor contributes lives here (`check_any_anchor`).

    Attributes:
        cross_modality: the loss pairs only samples of different modalities; ``forward`` then needs ``modalities``.
        takes_pairs: the loss takes mined pairs (``indices_tuple``) and a reference set (``ref_emb``, e.g. a
            [`CrossModalityMemory`][wrim.losses.CrossModalityMemory]); False for losses that choose their pairs
            within the batch (``check_batch`` then refuses both).
    """

    cross_modality: bool = False
    takes_pairs: bool = True

    def __init__(self, no_positive: str = "warn") -> None:
        """
        Args:
            no_positive: a batch in which no anchor has a positive: ``"warn"`` returns 0 and warns once (the first
                call checks; later calls never synchronise with the device), ``"raise"`` raises ``ValueError`` on
                every such batch (one host sync per call).
        """
        super().__init__()
        self.no_positive = check_no_positive(no_positive)
        self._checked_once = False

    def forward(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor | None = None,
        indices_tuple: IndicesTuple | None = None,
        ref_emb: torch.Tensor | None = None,
        ref_labels: torch.Tensor | None = None,
        *,
        modalities: torch.Tensor | None = None,
        ref_modalities: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Validate the batch, then compute the loss.

        Args:
            embeddings: (B, D) anchors.
            labels: (B,) identity labels; needed unless ``indices_tuple`` is given (losses that mine).
            indices_tuple: optional pairs ``(a1, p, a2, n)`` or triplets ``(a, p, n)`` from a miner.
            ref_emb: optional (R, D) reference embeddings (positives and negatives); default the batch itself.
            ref_labels: (R,) labels of ``ref_emb``.
            modalities: keyword-only, (B,) ids, ``wrim.VISIBLE`` (0) / ``wrim.INFRARED`` (1); required by
                cross-modality losses.
            ref_modalities: keyword-only, (R,) ids of ``ref_emb``.

        Returns:
            The scalar loss.
        """
        batch = self.check_batch(embeddings, labels, indices_tuple, ref_emb, ref_labels, modalities, ref_modalities)
        return self.compute_loss(batch, indices_tuple)

    def check_batch(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor | None,
        indices_tuple: IndicesTuple | None,
        ref_emb: torch.Tensor | None,
        ref_labels: torch.Tensor | None,
        modalities: torch.Tensor | None,
        ref_modalities: torch.Tensor | None,
    ) -> PairBatch:
        """The validated batch (`wrim._checks.check_pair_batch`); labels are required when no pairs are given.

        Raises:
            TypeError: a tensor passed as ``indices_tuple`` (the modality ids belong in ``modalities=``).
            ValueError: pairs or a reference set given to a loss without ``takes_pairs``, or what
                `check_pair_batch` raises.
        """
        name = type(self).__name__
        if isinstance(indices_tuple, torch.Tensor):
            raise TypeError(
                f"{name}'s third positional argument is indices_tuple (pytorch-metric-learning's order); "
                "pass the modality ids by keyword: loss(embeddings, labels, modalities=modalities)"
            )
        if not self.takes_pairs and (indices_tuple is not None or ref_emb is not None):
            raise ValueError(
                f"{name} chooses its own pairs within the batch and takes no indices_tuple / ref_emb. For mined pairs "
                "or a memory use pytorch_metric_learning.losses.TripletMarginLoss or wrim.losses.CMKICLoss."
            )
        return check_pair_batch(
            name,
            embeddings,
            labels,
            ref_emb,
            ref_labels,
            modalities,
            ref_modalities,
            mines=indices_tuple is None,
            need_modalities=self.cross_modality,
        )

    def compute_loss(self, batch: PairBatch, indices_tuple: IndicesTuple | None = None) -> torch.Tensor:
        """The loss of a validated batch (no checks: call it only with what `check_batch` returns)."""
        raise NotImplementedError(f"{type(self).__name__} must implement compute_loss()")

    def check_labels(
        self, embeddings: torch.Tensor, labels: torch.Tensor, modalities: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Validate a batch without pairs once, for a caller that computes several terms on it (``AICLLoss``'s P5
        and P4 terms): ``(labels, modalities)`` as `check_batch` returns them, to pass to `compute_checked`."""
        batch = self.check_batch(embeddings, labels, None, None, None, modalities, None)
        return batch.labels, batch.modalities

    def compute_checked(
        self, embeddings: torch.Tensor, labels: torch.Tensor, modalities: torch.Tensor | None, **kwargs: torch.Tensor
    ) -> torch.Tensor:
        """The loss of (B, D) ``embeddings`` whose labels and ids `check_labels` returned (``embeddings`` may be
        another stage's of the same batch), without checking again; ``kwargs`` go to `compute_loss`."""
        return self.compute_loss(PairBatch(embeddings, labels, None, labels, modalities, modalities), None, **kwargs)

    def check_any_anchor(self, valid: torch.Tensor, message: Callable[[], str]) -> None:
        """Apply ``no_positive`` to a batch whose (B,) ``valid`` mask marks the anchors that contribute.

        ``"raise"``: every eager call checks (one host sync; for debugging a sampler) and raises ``ValueError``; under
        ``torch.compile`` the check is ``torch._assert_async``. ``"warn"`` (default): the loss of an empty batch is 0;
        the first eager call of the module checks once and warns, later calls never synchronise.
        """
        if self.no_positive == "raise":
            if torch.compiler.is_compiling():
                torch._assert_async(valid.any(), f"{type(self).__name__}: no anchor has a usable positive")
            elif not bool(valid.any()):
                raise ValueError(message())
        elif not torch.compiler.is_compiling() and not self._checked_once:
            self._checked_once = True
            if not bool(valid.any()):
                warnings.warn(
                    f"{message()} The loss is 0 for such a batch (warned once; no_positive='raise' checks every "
                    "batch).",
                    stacklevel=4,
                )
