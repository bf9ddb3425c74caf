r"""CMKIC: the Cross-Modality Key-Instance Contrastive loss of WRIM-Net (docs: The paper, section CMKIC).

[P] For an anchor of one modality the positives are its *key instances*, the top-K least similar samples of the same
identity in the other modality; the negatives are the samples of other identities in the other modality. [N] the
term is an InfoNCE/SupCon-style contrast, and the total is the V→I term plus the I→V term. [D] wrim's exact form,
on L2-normalised embeddings z with s_ij = z_i . z_j and temperature τ:

$$
L(i) = -\frac{1}{|P^K(i)|} \sum_{p \in P^K(i)}
       \log \frac{e^{s_{ip}/\tau}}{e^{s_{ip}/\tau} + \sum_{n \in N(i)} e^{s_{in}/\tau}}
\mathcal{L}_{CMKIC} = \operatorname{mean}_{i \in V} L(i) + \operatorname{mean}_{i \in I} L(i)
$$

where anchors without a cross-modality positive are skipped. Each per-pair term is computed stably as
``softplus(logsumexp_n(s_in / τ) - s_ip / τ)``, densely over the (B, R) pair matrix (no data-dependent shapes, no
host synchronisation, traceable by ``torch.compile(fullgraph=True)``).

Shape legend: ``B`` anchors (the batch), ``R`` reference samples (``R = B`` without ``ref_emb``), ``D`` embedding
size, ``Dk`` the size of ``key_embeddings``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from wrim._checks import PairBatch, check_embeddings, check_k, check_temperature, compute_dtype, no_positive_message
from wrim.losses.base import BaseLoss
from wrim.miners.key_instance import key_instance_masks
from wrim.modality import INFRARED, VISIBLE
from wrim.pairs import IndicesTuple, cosine_similarity_matrix, pairs_to_masks

__all__ = ["CMKICLoss"]


def _cmkic_from_masks(
    sim: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, modalities: torch.Tensor, temperature: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """The CMKIC value for given (B, R) pair masks, and the (B,) mask of anchors that contribute."""
    logits = sim / temperature  # (B, R)
    has_neg = neg.any(dim=1)  # (B,)
    # Rows without negatives are filled with finite zeros so that logsumexp's backward stays NaN-free.
    neg_logits = logits.masked_fill(~neg, float("-inf")).masked_fill(~has_neg[:, None], 0.0)  # (B, R)
    neg_lse = torch.logsumexp(neg_logits, dim=1)  # (B, R) -> (B,)
    pair_loss = F.softplus(neg_lse[:, None] - logits)  # (B, R): -log(e^s_ip / (e^s_ip + sum_n e^s_in))
    # a positive of an anchor without negatives contributes -log 1 = 0
    pair_loss = torch.where(pos & has_neg[:, None], pair_loss, torch.zeros_like(pair_loss))  # (B, R)
    num_pos = pos.sum(dim=1)  # (B,)
    anchor_loss = pair_loss.sum(dim=1) / num_pos.clamp(min=1)  # (B,): mean over the anchor's positives
    valid = num_pos > 0  # (B,)
    total = sim.new_zeros(())
    for modality in (VISIBLE, INFRARED):  # the two directions V->I and I->V (not a loop over anchors)
        in_dir = valid & (modalities == modality)  # (B,)
        total = total + (anchor_loss * in_dir).sum() / in_dir.sum().clamp(min=1)
    return total, valid


class CMKICLoss(BaseLoss):
    r"""Cross-Modality Key-Instance Contrastive loss (WRIM-Net [P], exact form [D], docs: The paper, section CMKIC).

    $$
    L(i) = -\frac{1}{|P^K(i)|} \sum_{p \in P^K(i)}
           \log \frac{e^{s_{ip}/\tau}}{e^{s_{ip}/\tau} + \sum_{n \in N(i)} e^{s_{in}/\tau}},\qquad
    \mathcal{L} = \operatorname{mean}_{i \in V} L(i) + \operatorname{mean}_{i \in I} L(i)
    $$

    ``P^K(i)``: the ``k`` least cosine-similar samples with the anchor's label and the other modality (all of them
    when fewer exist; mined without gradient, ties to the lower index; with ``key_embeddings`` the similarities of
    those choose them instead); ``N(i)``: all samples with another label and the other modality; ``s`` the cosine
    similarity. Given an ``indices_tuple`` (from any wrim or pytorch-metric-learning miner), its pairs define
    ``P(i)`` and ``N(i)`` instead and each anchor is averaged in the direction of its own modality. With ``ref_emb``
    the positives and negatives come from the reference set (e.g. a memory, `CrossModalityMemory`).
    Computed in float32 (float64 inputs stay float64) with autocast disabled.

    Called as pytorch-metric-learning calls its losses, ``loss(embeddings, labels, indices_tuple, ref_emb,
    ref_labels)``, with the modality ids by keyword (docs: Losses and miners).

    Examples:
        >>> loss_fn = CMKICLoss(k=2, temperature=0.1)
        >>> loss = loss_fn(projections, labels, modalities=modalities)  # (B, D), (B,), (B,) -> ()
    """

    cross_modality = True  # modalities are always required: the two directions V->I and I->V

    def __init__(self, k: int = 2, temperature: float = 0.1, no_positive: str = "warn") -> None:
        """
        Args:
            k: number of key instances per anchor; [D] default 2 (the paper's ablation: K in {1, 4, 8}).
            temperature: τ, dividing the cosine similarities; [D] default 0.1.
            no_positive: a batch in which no anchor has a positive: ``"warn"`` returns 0 and warns once (the first
                call checks; later calls never synchronise with the device), ``"raise"`` raises ``ValueError`` on
                every such batch (one host sync per call).
        """
        super().__init__(no_positive)
        self.k = check_k(k)
        self.temperature = check_temperature(temperature)

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
        key_embeddings: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Compute the loss.

        Args:
            embeddings: (B, D) anchors (e.g. the 128-d projections); normalised inside.
            labels: (B,) identity labels; needed unless ``indices_tuple`` is given.
            indices_tuple: optional pairs ``(a1, p, a2, n)`` or triplets ``(a, p, n)`` indexing the anchors and the
                reference set; when given they replace the key-instance mining.
            ref_emb: optional (R, D) reference embeddings (positives and negatives); default the batch itself.
            ref_labels: (R,) labels of ``ref_emb``; needed with ``ref_emb`` unless ``indices_tuple`` is given.
            modalities: keyword-only, (B,) ids, ``wrim.VISIBLE`` (0) / ``wrim.INFRARED`` (1); required.
            ref_modalities: keyword-only, (R,) ids of ``ref_emb``; needed with ``ref_emb`` for the mining.
            key_embeddings: keyword-only, optional (B, Dk) embeddings whose cosine similarities choose the key
                instances (AICL's P5-keys-from-P4 option); not combined with ``ref_emb``.

        Returns:
            The scalar loss, float32 (float64 for float64 input).

        Raises:
            ValueError: missing ``modalities``, mismatched lengths, or (``no_positive="raise"``) a batch in which
                no anchor has a cross-modality positive.
        """
        batch = self.check_batch(embeddings, labels, indices_tuple, ref_emb, ref_labels, modalities, ref_modalities)
        if key_embeddings is not None:
            if ref_emb is not None:
                raise ValueError("key_embeddings cannot be combined with ref_emb: the keys must index the batch itself")
            key_embeddings = check_embeddings(key_embeddings, name="key_embeddings")
            if key_embeddings.shape[0] != batch.embeddings.shape[0]:
                raise ValueError(
                    f"key_embeddings must have {batch.embeddings.shape[0]} rows, one per embedding; "
                    f"got {key_embeddings.shape[0]}"
                )
        return self.compute_loss(batch, indices_tuple, key_embeddings=key_embeddings)

    def compute_loss(
        self, batch: PairBatch, indices_tuple: IndicesTuple | None = None, key_embeddings: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The loss of a validated batch (see `BaseLoss.compute_loss`); ``key_embeddings`` as in ``forward``."""
        embeddings, modalities = batch.embeddings, batch.modalities
        device = embeddings.device
        with torch.autocast(device_type=device.type, enabled=False):
            dtype = compute_dtype(embeddings)
            ref = None if batch.ref_emb is None else batch.ref_emb.to(dtype)
            sim = cosine_similarity_matrix(embeddings.to(dtype), ref)  # (B, D), (R, D) -> (B, R)
            if indices_tuple is None:  # mine the key instances
                key_sim = sim  # (B, R)
                if key_embeddings is not None:
                    key_sim = cosine_similarity_matrix(key_embeddings.to(compute_dtype(key_embeddings)))  # (B, B)
                pos, neg = key_instance_masks(
                    key_sim, batch.labels, batch.ref_labels, modalities, batch.ref_modalities, self.k, True, ref is None
                )  # (B, R) each: the key instances and all cross-modality negatives
            else:
                pos, neg = pairs_to_masks(indices_tuple, sim.shape[0], sim.shape[1])  # (B, R) each
                pos, neg = pos.to(device), neg.to(device)
            total, valid = _cmkic_from_masks(sim, pos, neg, modalities, self.temperature)
        mined = indices_tuple is None
        self.check_any_anchor(valid, lambda: self._no_positive_text(mined, batch.labels, modalities))
        return total

    @staticmethod
    def _no_positive_text(mined: bool, labels: torch.Tensor | None, modalities: torch.Tensor) -> str:
        if mined:
            return no_positive_message("CMKICLoss", labels, modalities)
        return "CMKICLoss: no anchor has a positive; indices_tuple must hold at least one positive pair (a1, p)"

    def extra_repr(self) -> str:
        return f"k={self.k}, temperature={self.temperature}, no_positive={self.no_positive!r}"
