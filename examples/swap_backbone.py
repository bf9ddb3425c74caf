"""WRIMNet on another timm backbone: ConvNeXt or a ViT instead of the paper's ResNet-50, in one argument.

``wrim.models.WRIMNet(backbone=<any timm name>)`` builds timm's feature extractor once and hooks a MIIM after
the module that ends each of four stages (paper.md §1): for CNNs timm's last four feature levels (channels from
``feature_info``); for ViTs the ends of four equal groups of blocks, whose patch tokens are viewed as a
(B, D, h, w) grid for the MIIM (positional embeddings resized to ``--img-size``). This script prints the
per-stage cost table (``summary``), trains a few steps with the ID loss on every head plus AICL (CMKIC on the P5
and P4 projections), and embeds a batch in eval mode with flip averaging.

Run::

    python examples/swap_backbone.py                                   # convnext_tiny, synthetic set, 256x128
    python examples/swap_backbone.py --backbone vit_small_patch16_224  # ViT-S/16, MIIM stride 1 on its grid
    python examples/swap_backbone.py --fast                            # convnext_atto + vit_tiny, random images
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from wrim.losses import AICLLoss, CMKICLoss
from wrim.models import WRIMNet, summary

__all__ = ["build", "main", "train_steps"]


def build(backbone: str, num_classes: int, img_size: tuple[int, int]) -> WRIMNet:
    """WRIM-Net over ``backbone`` with the paper's placements (separate MIIMs after stages 1-2, shared after 3-4).

    Default arguments only: ``token_stride=16`` gives each MIIM the stride that brings its stage to the paper's
    1/16 token grid (4, 2, 1, 1 on a CNN with last stride 1; 1 everywhere on a ViT/16), and the GRI head count
    defaults to the largest divisor of the reduced width not above 8 (5 for convnext_atto's 40 / 2 = 20).
    """
    return WRIMNet(backbone, num_classes=num_classes, img_size=img_size)


def random_batches(num_ids: int, per_modality: int, img_size: tuple[int, int], seed: int = 0):
    """Endless (images, pids, modalities) batches of random images: each identity has a fixed random pattern,
    seen by both modalities with noise (infrared: grey), so the losses have something to learn."""
    generator = torch.Generator().manual_seed(seed)
    patterns = torch.randn(num_ids, 3, *img_size, generator=generator)
    pids = torch.arange(num_ids).repeat_interleave(2 * per_modality)  # (B,)
    modalities = torch.tensor([0] * per_modality + [1] * per_modality).repeat(num_ids)  # (B,)
    while True:
        images = patterns[pids] + 0.5 * torch.randn(len(pids), 3, *img_size, generator=generator)
        infrared = modalities == 1
        images[infrared] = images[infrared].mean(1, keepdim=True).expand(-1, 3, -1, -1)
        yield images, pids, modalities


def synthetic_batches(img_size: tuple[int, int], num_ids: int):
    """Endless (images, pids, modalities) batches from wrim's synthetic VI-ReID set, and its class count."""
    from wrim.data import SyntheticVIReID, build_train_loader

    dataset = SyntheticVIReID()
    loader = build_train_loader(dataset, img_size=img_size, num_ids=num_ids, num_instances=2, num_workers=0)

    def batches():
        while True:
            for images, pids, _camids, modalities in loader:
                yield images, pids, modalities

    return batches(), dataset.num_classes


def train_steps(model: WRIMNet, batches, steps: int, lr: float = 3e-4) -> list[float]:
    """A few AdamW steps with label-smoothed ID loss on every head + AICL; returns the losses."""
    id_loss = nn.CrossEntropyLoss(label_smoothing=0.1)
    aicl = AICLLoss(CMKICLoss(k=2, temperature=0.1), p5_weight=1.0, p4_weight=0.5)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=5e-4)
    model.train()
    losses = []
    for step, (images, pids, modalities) in zip(range(steps), batches):
        out = model(images, modalities)  # WRIMNetOutput, heads p5_global, p5_part0, p5_part1, p4_global
        loss = sum(id_loss(logits, pids) for logits in out.logits.values())
        contrastive = aicl(out.p5_projection, out.p4_projection, pids, modalities=modalities)
        terms = aicl.terms
        loss = loss + contrastive
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        print(
            f"  step {step + 1:3d}  loss {loss.item():.4f}  cmkic_p5 {terms['cmkic_p5']:.4f}  "
            f"cmkic_p4 {terms['cmkic_p4']:.4f}",
            flush=True,
        )
    return losses


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    """Builds, summarises, trains and embeds with each requested backbone; returns per-backbone results.

    Args:
        argv: command-line arguments (default ``sys.argv[1:]``).
    """
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", nargs="+", default=None, help="timm names (default: convnext_tiny)")
    parser.add_argument("--img-size", type=int, nargs=2, default=None, metavar=("H", "W"))
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--fast", action="store_true", help="convnext_atto and vit_tiny on random images, 3 steps")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    if args.fast:
        backbones = args.backbone or ["convnext_atto", "vit_tiny_patch16_224"]
        img_size, steps = tuple(args.img_size or (64, 32)), 3
    else:
        backbones = args.backbone or ["convnext_tiny"]
        img_size, steps = tuple(args.img_size or (256, 128)), args.steps

    results = {}
    for backbone in backbones:
        if args.fast:
            num_classes = 2  # a batch of 2 ids x (2 visible + 2 infrared)
            batches = random_batches(num_classes, per_modality=2, img_size=img_size)
        else:
            batches, num_classes = synthetic_batches(img_size, num_ids=4)
        model = build(backbone, num_classes, img_size)
        print(summary(model))
        start = time.perf_counter()
        losses = train_steps(model, batches, steps)
        model.eval()
        images, _pids, modalities = next(batches)
        with torch.no_grad():
            embedding = model.embed(images, modalities, flip=True)  # (B, D), unit norm
        print(
            f"{backbone}: {steps} steps in {time.perf_counter() - start:.1f} s; test embedding "
            f"{tuple(embedding.shape)} (BNNeck features of {', '.join(model.embed_heads)})"
        )
        results[backbone] = {
            "first_loss": losses[0],
            "last_loss": losses[-1],
            "embedding_dim": float(embedding.shape[1]),
            "embedding_norm": embedding.norm(dim=1).mean().item(),
        }
    return results


if __name__ == "__main__":
    main()
