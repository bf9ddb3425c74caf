r"""AICL: Auxiliary-Information-based Contrastive Learning of WRIM-Net (docs: The paper, section AICL).

[P] CMKIC is supplemented with auxiliary information from the shallower P4 stage. [D] wrim applies a loss (CMKIC by
default) to the P5 and to the P4 projections and, optionally, chooses P5's key instances with P4 similarities:

$$
\mathcal{L}_{AICL} = \lambda_5 \, \mathcal{L}(z^{P5}) + \lambda_4 \, \mathcal{L}(z^{P4})
$$

Shape legend: ``B`` batch, ``D5`` / ``D4`` the P5 / P4 projection sizes.
"""

from __future__ import annotations

import inspect
import re

import torch
from torch import nn

from wrim._checks import check_embeddings, check_nonnegative
from wrim.losses.base import BaseLoss
from wrim.losses.cmkic import CMKICLoss

__all__ = ["AICLLoss"]


def _term_prefix(loss: nn.Module) -> str:
    """``CMKICLoss`` -> ``cmkic``, ``WRTripletLoss`` -> ``wr_triplet``: the prefix of the logged term names."""
    name = type(loss).__name__.removesuffix("Loss") or type(loss).__name__
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def _accepts(loss: nn.Module, keyword: str) -> bool:
    return keyword in inspect.signature(loss.forward).parameters


class _CalledLoss:
    """A stage loss that offers no checked path (a pytorch-metric-learning loss, your own ``nn.Module``): nothing is
    checked ahead, and each term is its call ``loss(embeddings, labels, modalities=...)``, which checks what it
    checks. `BaseLoss` offers the same two methods with its checks."""

    def __init__(self, loss: nn.Module) -> None:
        self.loss = loss

    def check_labels(
        self, embeddings: torch.Tensor, labels: torch.Tensor, modalities: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        return labels, modalities

    def compute_checked(
        self, embeddings: torch.Tensor, labels: torch.Tensor, modalities: torch.Tensor | None, **kwargs: torch.Tensor
    ) -> torch.Tensor:
        if modalities is not None:
            kwargs["modalities"] = modalities
        return self.loss(embeddings, labels, **kwargs)


def _stage(loss: nn.Module) -> BaseLoss | _CalledLoss:
    """``loss`` when it offers ``check_labels`` and ``compute_checked`` (every `BaseLoss`), else its call."""
    offers = callable(getattr(loss, "check_labels", None)) and callable(getattr(loss, "compute_checked", None))
    return loss if offers else _CalledLoss(loss)


class AICLLoss(nn.Module):
    r"""Auxiliary-Information-based Contrastive Learning: one loss on P5 and P4, weighted ([P], exact form [D]).

    $$
    \mathcal{L} = \lambda_5 \mathcal{L}_{loss}(z^{P5}) + \lambda_4 \mathcal{L}_{loss}(z^{P4})
    $$

    The loss is [`CMKICLoss`][wrim.losses.CMKICLoss] by default (the paper's AICL); any loss called as
    ``loss(embeddings, labels)`` fits, e.g. ``AICLLoss(loss=TripletLoss())`` for the "CMKIC vs triplet" ablation or a
    pytorch-metric-learning loss. ``modalities`` is passed on by keyword when given. With ``p5_keys_from_p4=True`` the
    P5 term's key instances are the ``k`` least similar cross-modality positives under the *P4* similarities (the
    auxiliary information chooses what P5 must pull together; the loss must take ``key_embeddings=``, as CMKICLoss
    does).

    After each call ``terms`` holds the two unweighted values, detached, for logging
    (``{"cmkic_p5": ..., "cmkic_p4": ...}``; the prefix follows the loss's class name).

    Examples:
        >>> loss_fn = AICLLoss(loss=CMKICLoss(k=2, temperature=0.1), p5_weight=1.0, p4_weight=0.5)
        >>> loss = loss_fn(out.p5_projection, out.p4_projection, labels, modalities=modalities)  # -> ()
        >>> loss_fn.terms  # {"cmkic_p5": tensor(...), "cmkic_p4": tensor(...)}
    """

    def __init__(
        self,
        loss: nn.Module | None = None,
        p5_weight: float = 1.0,
        p4_weight: float = 0.5,
        p5_keys_from_p4: bool = False,
    ) -> None:
        """
        Args:
            loss: the loss applied to each stage; default ``CMKICLoss()`` (k = 2, τ = 0.1, [D]).
            p5_weight: λ5, weight of the P5 term; [D] default 1.0.
            p4_weight: λ4, weight of the P4 term; [D] default 0.5.
            p5_keys_from_p4: choose the P5 key instances by P4 similarity; [D] default False.
        """
        super().__init__()
        if loss is None:
            loss = CMKICLoss()
        if not isinstance(loss, nn.Module):
            raise TypeError(
                f"loss must be a torch.nn.Module such as wrim.losses.CMKICLoss(); got {type(loss).__name__}"
            )
        self.loss = loss
        self.p5_weight = check_nonnegative(p5_weight, "p5_weight")
        self.p4_weight = check_nonnegative(p4_weight, "p4_weight")
        self.p5_keys_from_p4 = bool(p5_keys_from_p4)
        if self.p5_keys_from_p4 and not _accepts(loss, "key_embeddings"):
            raise ValueError(
                f"p5_keys_from_p4=True needs a loss that takes key_embeddings= (wrim.losses.CMKICLoss); "
                f"{type(loss).__name__} does not"
            )
        prefix = _term_prefix(loss)
        self._names = (f"{prefix}_p5", f"{prefix}_p4")
        self.terms: dict[str, torch.Tensor] = {}

    def forward(
        self,
        p5_embeddings: torch.Tensor,
        p4_embeddings: torch.Tensor,
        labels: torch.Tensor,
        *,
        modalities: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Compute the weighted sum; its terms go to ``self.terms``.

        Args:
            p5_embeddings: (B, D5) P5 projections.
            p4_embeddings: (B, D4) P4 projections.
            labels: (B,) identity labels.
            modalities: keyword-only, (B,) ids, ``wrim.VISIBLE`` (0) / ``wrim.INFRARED`` (1); required by
                cross-modality losses such as CMKIC.

        Returns:
            The scalar loss.

        Raises:
            ValueError: mismatched lengths, or what the loss raises.
        """
        return self.compute_loss(*self.check_inputs(p5_embeddings, p4_embeddings, labels, modalities))

    def check_inputs(
        self,
        p5_embeddings: torch.Tensor,
        p4_embeddings: torch.Tensor,
        labels: torch.Tensor,
        modalities: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Validate ``forward``'s arguments once: the embeddings, and (for a wrim loss) the labels and ids it needs.

        Returns:
            The four arguments, checked; the labels and ids as LongTensors when the loss is a wrim loss.
        """
        p5_embeddings = check_embeddings(p5_embeddings, name="p5_embeddings")
        p4_embeddings = check_embeddings(p4_embeddings, name="p4_embeddings")
        if p4_embeddings.shape[0] != p5_embeddings.shape[0]:
            raise ValueError(
                f"p5_embeddings and p4_embeddings must describe the same batch; got {p5_embeddings.shape[0]} and "
                f"{p4_embeddings.shape[0]} rows"
            )
        labels, modalities = _stage(self.loss).check_labels(p5_embeddings, labels, modalities)
        return p5_embeddings, p4_embeddings, labels, modalities

    def compute_loss(
        self,
        p5_embeddings: torch.Tensor,
        p4_embeddings: torch.Tensor,
        labels: torch.Tensor,
        modalities: torch.Tensor | None,
    ) -> torch.Tensor:
        """The weighted sum for what `check_inputs` returned (a wrim loss is not validated again); sets ``terms``."""
        p4_term = self._term(p4_embeddings, labels, modalities, None)  # (B, D4) -> ()
        keys = p4_embeddings if self.p5_keys_from_p4 else None
        p5_term = self._term(p5_embeddings, labels, modalities, keys)  # (B, D5) -> ()
        self.terms = {self._names[0]: p5_term.detach(), self._names[1]: p4_term.detach()}
        return self.p5_weight * p5_term + self.p4_weight * p4_term

    def _term(
        self,
        embeddings: torch.Tensor,
        labels: torch.Tensor,
        modalities: torch.Tensor | None,
        key_embeddings: torch.Tensor | None,
    ) -> torch.Tensor:
        """One stage's loss: a wrim loss through its unchecked path, any other loss through its call."""
        kwargs = {} if key_embeddings is None else {"key_embeddings": key_embeddings}
        return _stage(self.loss).compute_checked(embeddings, labels, modalities, **kwargs)

    def extra_repr(self) -> str:
        return f"p5_weight={self.p5_weight}, p4_weight={self.p4_weight}, p5_keys_from_p4={self.p5_keys_from_p4}"
