"""The key-instance miner feeding a pytorch-metric-learning loss, on small synthetic two-modality features.

``wrim.miners.CrossModalityKeyInstanceMiner`` returns pytorch-metric-learning's (PML) pair tuple
``(a1, p, a2, n)``: for every anchor its ``k`` least similar same-identity samples of the *other* modality (the
key instances of WRIM-Net's CMKIC loss, paper.md §2), and all other-identity samples of the other modality. Any
PML pair loss takes it as ``indices_tuple``. Here a small MLP learns to embed "visible" and "infrared" feature
vectors of the same identities close together, with the miner + ``NTXentLoss`` (or ``ContrastiveLoss``); the
cross-modality Rank-1 (visible query -> infrared gallery) is printed before and after. With ``--memory N`` the same
miner and loss run inside ``wrim.losses.CrossModalityMemory`` (pytorch-metric-learning's ``CrossBatchMemory`` with
modality ids): every batch is compared with the last N embeddings. No dataset is downloaded:
the features are generated (visible = A_v c_id + noise, infrared = A_i c_id + noise, two random projections of
one identity code). Needs the ``pml`` extra: ``pip install wrim[pml]``.

Run::

    python examples/cmkic_with_pml.py                    # 300 steps, NTXentLoss
    python examples/cmkic_with_pml.py --loss contrastive # the same miner feeding ContrastiveLoss
    python examples/cmkic_with_pml.py --memory 256       # against a memory of the last 256 embeddings
    python examples/cmkic_with_pml.py --fast             # a few seconds (what the test runs)
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch import nn

import wrim
from wrim.losses import CMKICLoss, CrossModalityMemory
from wrim.miners import CrossModalityKeyInstanceMiner

__all__ = ["TwoModalityFeatures", "main"]


class TwoModalityFeatures:
    """Synthetic features: identity ``c`` seen through a visible and an infrared random projection, plus noise.

    Args:
        num_ids: number of identities.
        code_dim: size of the identity code.
        feat_dim: size of the observed feature vectors.
        noise: standard deviation of the per-sample noise.
        seed: generator seed.
    """

    def __init__(self, num_ids: int, code_dim: int = 8, feat_dim: int = 64, noise: float = 0.3, seed: int = 0) -> None:
        self.generator = torch.Generator().manual_seed(seed)
        self.num_ids = num_ids
        self.noise = noise
        self.codes = torch.randn(num_ids, code_dim, generator=self.generator)  # (num_ids, code_dim)
        self.proj = torch.randn(2, code_dim, feat_dim, generator=self.generator) / code_dim**0.5  # one per modality

    def sample(self, ids: torch.Tensor, modalities: torch.Tensor) -> torch.Tensor:
        """Draws one feature vector per (id, modality): (N,), (N,) -> (N, feat_dim)."""
        clean = torch.einsum("nc,ncf->nf", self.codes[ids], self.proj[modalities])  # (N, feat_dim)
        return clean + self.noise * torch.randn(clean.shape, generator=self.generator)

    def batch(self, num_ids: int, num_instances: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A sampler-shaped batch: ``num_ids`` identities x (``num_instances`` visible + ``num_instances`` infrared)."""
        ids = torch.randperm(self.num_ids, generator=self.generator)[:num_ids]
        labels = ids.repeat_interleave(2 * num_instances)  # (B,)
        modalities = torch.tensor([wrim.VISIBLE] * num_instances + [wrim.INFRARED] * num_instances).repeat(num_ids)
        return self.sample(labels, modalities), labels, modalities


@torch.no_grad()
def cross_modality_rank1(model: nn.Module, data: TwoModalityFeatures, gallery_per_id: int = 4) -> float:
    """Rank-1 of one visible query per identity against ``gallery_per_id`` infrared samples per identity."""
    ids = torch.arange(data.num_ids)
    query = F.normalize(model(data.sample(ids, torch.full_like(ids, wrim.VISIBLE))), dim=1)  # (num_ids, D)
    gallery_ids = ids.repeat_interleave(gallery_per_id)
    gallery = F.normalize(model(data.sample(gallery_ids, torch.full_like(gallery_ids, wrim.INFRARED))), dim=1)
    top1 = (query @ gallery.T).argmax(dim=1)  # (num_ids, num_ids * gallery_per_id) -> (num_ids,)
    return (gallery_ids[top1] == ids).float().mean().item()


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description="CrossModalityKeyInstanceMiner + a pytorch-metric-learning loss")
    parser.add_argument("--loss", choices=["ntxent", "contrastive"], default="ntxent")
    parser.add_argument("--k", type=int, default=2, help="key instances per anchor")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--num-ids", type=int, default=64, help="identities in the synthetic set")
    parser.add_argument("--batch-ids", type=int, default=8, help="identities per batch")
    parser.add_argument("--num-instances", type=int, default=4, help="samples per identity and modality per batch")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--memory", type=int, default=0, help="memory size (0: no cross-batch memory)")
    parser.add_argument("--fast", action="store_true", help="a few seconds: fewer identities and steps")
    args = parser.parse_args(argv)
    if args.fast:
        args.steps, args.num_ids = 40, 24

    try:
        from pytorch_metric_learning import losses as pml_losses
    except ImportError as err:
        raise SystemExit("this example needs pytorch-metric-learning: pip install 'wrim[pml]'") from err

    torch.manual_seed(args.seed)
    data = TwoModalityFeatures(args.num_ids, seed=args.seed)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 32))  # (B, 64) -> (B, 32)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    miner = CrossModalityKeyInstanceMiner(k=args.k)
    if args.loss == "ntxent":
        loss_fn = pml_losses.NTXentLoss(temperature=0.1)
    else:
        loss_fn = pml_losses.ContrastiveLoss(pos_margin=0.0, neg_margin=1.0)
    cmkic = CMKICLoss(k=args.k, temperature=0.1)  # wrim's own loss on the same batch, for comparison
    memory = (
        CrossModalityMemory(loss_fn, embedding_size=32, memory_size=args.memory, miner=miner) if args.memory else None
    )

    rank1_before = cross_modality_rank1(model, data)
    print(f"{type(miner).__name__}(k={args.k}) -> {type(loss_fn).__name__}; Rank-1 before training: {rank1_before:.2%}")
    losses = []
    for step in range(1, args.steps + 1):
        features, labels, modalities = data.batch(args.batch_ids, args.num_instances)  # (B, 64), (B,), (B,)
        embeddings = model(features)  # (B, 32)
        if memory is None:
            indices_tuple = miner(embeddings, labels, modalities=modalities)  # (a1, p, a2, n), without gradient
            loss = loss_fn(embeddings, labels, indices_tuple)  # any PML pair loss takes the tuple unchanged
        else:  # the miner pairs the batch with the memory; the PML loss gets (emb, labels, pairs, E_mem, L_mem)
            loss = memory(embeddings, labels, modalities=modalities)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if step == 1 or step % max(1, args.steps // 5) == 0 or step == args.steps:
            with torch.no_grad():
                reference = cmkic(embeddings, labels, modalities=modalities).item()
            print(
                f"step {step:4d} | {type(loss_fn).__name__} loss {loss.item():.4f} | CMKIC {reference:.4f} | "
                f"pairs +{miner.num_pos_pairs} / -{miner.num_neg_pairs}"
            )
    rank1_after = cross_modality_rank1(model, data)
    print(f"final loss {losses[-1]:.4f} (first {losses[0]:.4f}); Rank-1 after training: {rank1_after:.2%}")
    return {"first_loss": losses[0], "last_loss": losses[-1], "rank1_before": rank1_before, "rank1_after": rank1_after}


if __name__ == "__main__":
    main()
