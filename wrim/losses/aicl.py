r"""AICL: Auxiliary-Information-based Contrastive Learning of WRIM-Net (docs/losses.md).

[P] CMKIC is supplemented with auxiliary information from the shallower P4 stage. [D] wrim applies CMKIC to the P5
and to the P4 projections and, optionally, chooses P5's key instances with P4 similarities:

$$
\mathcal{L}_{AICL} = \lambda_5 \, \mathcal{L}_{CMKIC}(z^{P5}) + \lambda_4 \, \mathcal{L}_{CMKIC}(z^{P4})
$$

Shape legend: ``B`` batch, ``D5`` / ``D4`` the P5 / P4 projection sizes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from wrim.losses._common import check_nonnegative, check_temperature, compute_dtype, no_positive_message
from wrim.losses.cmkic import cmkic_from_masks, cmkic_key_masks
from wrim.miners.utils import check_embeddings, check_k, check_labels
from wrim.modality import check_modalities

__all__ = ["AICLLoss"]


class AICLLoss(nn.Module):
    r"""Auxiliary-Information-based Contrastive Learning: weighted CMKIC on P5 and P4 ([P], exact form [D]).

    $$
    \mathcal{L} = \lambda_5 \mathcal{L}_{CMKIC}(z^{P5}) + \lambda_4 \mathcal{L}_{CMKIC}(z^{P4})
    $$

    With ``p5_keys_from_p4=True`` the key instances of the P5 term are the ``k`` least similar cross-modality
    positives under the *P4* similarities (the auxiliary information chooses what P5 must pull together).

    Examples:
        >>> loss_fn = AICLLoss()
        >>> total, terms = loss_fn(out.p5_projection, out.p4_projection, labels, modalities)
        >>> terms  # {"cmkic_p5": tensor(...), "cmkic_p4": tensor(...)}, unweighted and detached, for logging
    """

    def __init__(
        self,
        k: int = 2,
        temperature: float = 0.1,
        p5_weight: float = 1.0,
        p4_weight: float = 0.5,
        p5_keys_from_p4: bool = False,
    ) -> None:
        """
        Args:
            k: number of key instances per anchor in both terms; [D] default 2.
            temperature: τ of both terms; [D] default 0.1.
            p5_weight: λ5, weight of the P5 term; [D] default 1.0.
            p4_weight: λ4, weight of the P4 term; [D] default 0.5.
            p5_keys_from_p4: choose the P5 key instances by P4 similarity; [D] default False.
        """
        super().__init__()
        self.k = check_k(k)
        self.temperature = check_temperature(temperature)
        self.p5_weight = check_nonnegative(p5_weight, "p5_weight")
        self.p4_weight = check_nonnegative(p4_weight, "p4_weight")
        self.p5_keys_from_p4 = bool(p5_keys_from_p4)

    def forward(
        self,
        p5_embeddings: torch.Tensor,
        p4_embeddings: torch.Tensor,
        labels: torch.Tensor,
        modalities: torch.Tensor,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Compute the weighted sum and its terms.

        Args:
            p5_embeddings: (B, D5) P5 projections.
            p4_embeddings: (B, D4) P4 projections.
            labels: (B,) identity labels.
            modalities: (B,) ids, ``wrim.VISIBLE`` (0) / ``wrim.INFRARED`` (1).

        Returns:
            ``(total, terms)``, the scalar loss and ``{"cmkic_p5": ..., "cmkic_p4": ...}``, the unweighted
                CMKIC values, detached (for logging).

        Raises:
            ValueError: mismatched lengths, or a batch in which no anchor has a cross-modality positive.
        """
        p5_embeddings = check_embeddings(p5_embeddings, name="p5_embeddings")
        p4_embeddings = check_embeddings(p4_embeddings, name="p4_embeddings")
        batch = p5_embeddings.shape[0]
        if p4_embeddings.shape[0] != batch:
            raise ValueError(
                f"p5_embeddings and p4_embeddings must describe the same batch; got {batch} and "
                f"{p4_embeddings.shape[0]} rows"
            )
        labels = check_labels(labels, batch).to(p5_embeddings.device)
        modalities = check_modalities(modalities, batch).to(p5_embeddings.device)
        with torch.autocast(device_type=p5_embeddings.device.type, enabled=False):
            z5 = F.normalize(p5_embeddings.to(compute_dtype(p5_embeddings)), dim=1)  # (B, D5)
            z4 = F.normalize(p4_embeddings.to(compute_dtype(p4_embeddings)), dim=1)  # (B, D4)
            sim5 = z5 @ z5.T  # (B, B)
            sim4 = z4 @ z4.T  # (B, B)
            pos4, neg = cmkic_key_masks(sim4, labels, modalities, self.k)  # (B, B) each
            if not bool(pos4.any()):
                raise ValueError(no_positive_message("AICLLoss", labels, modalities))
            pos5 = pos4 if self.p5_keys_from_p4 else cmkic_key_masks(sim5, labels, modalities, self.k)[0]
            p5_term = cmkic_from_masks(sim5, pos5, neg, modalities, self.temperature)
            p4_term = cmkic_from_masks(sim4, pos4, neg, modalities, self.temperature)
            total = self.p5_weight * p5_term + self.p4_weight * p4_term
        return total, {"cmkic_p5": p5_term.detach(), "cmkic_p4": p4_term.detach()}

    def extra_repr(self) -> str:
        return (
            f"k={self.k}, temperature={self.temperature}, p5_weight={self.p5_weight}, p4_weight={self.p4_weight}, "
            f"p5_keys_from_p4={self.p5_keys_from_p4}"
        )
