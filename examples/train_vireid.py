"""Train and evaluate WRIM-Net with the library API, top to bottom: a tutorial of what ``wrim train`` does.

The steps are the ones of the paper (paper.md §1-3) on the synthetic VI-ReID set, which needs no download:

1. data: a dataset in SYSU-MM01's layout and a loader whose batches hold P identities x (K visible + K infrared);
2. model: ``wrim.models.create_model("wrimnet_resnet18", ...)``, MIIMs after the four ResNet stages;
3. losses: cross-entropy on every head's logits + AICL (CMKIC on the P5 and P4 projections);
4. optimisation: AdamW with a cosine schedule;
5. evaluation: the SYSU-MM01 protocol (infrared queries, visible gallery, 10 gallery trials) via
   ``wrim.evaluation.evaluate_protocol``.

For real data swap step 1 for ``wrim.data.SYSUMM01("/path/to/SYSU-MM01")`` (or ``RegDB`` / ``LLCM``) and use
``"wrimnet_resnet50"`` with ``pretrained=True`` at 384x128; ``wrim train --config sysu`` does exactly that with
checkpoints, logs, resume and DDP on top (``wrim.engine.Trainer``). Your own network, loss or data get the same
guarantees through ``Trainer(config, model=..., loss=..., dataset=...)`` (docs/training.md, "Training your own
network").

Run::

    python examples/train_vireid.py            # ~8 epochs on the synthetic set (a few CPU minutes)
    python examples/train_vireid.py --fast     # 1 short epoch on a tiny set (what the test runs)
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from torch import nn

from wrim.data import SyntheticVIReID, build_train_loader
from wrim.evaluation import evaluate_protocol
from wrim.losses import AICLLoss, CMKICLoss
from wrim.models import create_model

__all__ = ["main"]


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Trains and evaluates; returns the final metrics in % (R1, R5, R10, R20, mAP, mINP) and the last loss.

    Args:
        argv: command-line arguments (default ``sys.argv[1:]``).
    """
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--fast", action="store_true", help="a tiny set, small images, one short epoch")
    args = parser.parse_args(argv)
    torch.manual_seed(0)

    # 1. Data. The synthetic set is rendered once into ~/.cache/wrim and read exactly like SYSU-MM01.
    if args.fast:
        dataset = SyntheticVIReID(num_ids=16, num_test_ids=8, images_per_camera=2)
        img_size, num_ids, num_instances, epochs, trials = (64, 32), 4, 2, 1, [0]
    else:
        dataset = SyntheticVIReID()
        img_size, num_ids, num_instances, epochs, trials = (128, 64), 8, 4, args.epochs, None
    loader = build_train_loader(
        dataset, img_size=img_size, num_ids=num_ids, num_instances=num_instances, num_workers=2, seed=0
    )
    print(f"{dataset.num_classes} training identities, {len(dataset.train)} images, {len(loader)} batches/epoch")

    # 2. Model: WRIM-Net on a ResNet-18 from scratch (the paper: "wrimnet_resnet50", pretrained=True).
    model = create_model("wrimnet_resnet18", pretrained=False, num_classes=dataset.num_classes, img_size=img_size)

    # 3. Losses: ID loss on every head (P5 global, P5 parts, P4 global) + AICL on the contrastive projections.
    id_loss = nn.CrossEntropyLoss(label_smoothing=0.1)
    aicl = AICLLoss(CMKICLoss(k=2, temperature=0.1), p5_weight=1.0, p4_weight=0.5)

    # 4. Optimiser and schedule: AdamW, cosine decay over all iterations.
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=5e-4)
    total_steps = epochs * len(loader)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * step / total_steps))
    )

    start = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        loader.batch_sampler.set_epoch(epoch)  # a new identity permutation every epoch
        for images, pids, _camids, modalities in loader:  # (B, 3, H, W), (B,), (B,), (B,)
            out = model(images, modalities)  # WRIMNetOutput: logits / features / projections per head
            loss_id = sum(id_loss(logits, pids) for logits in out.logits.values())
            loss_aicl = aicl(out.p5_projection, out.p4_projection, pids, modalities=modalities)
            loss = loss_id + loss_aicl
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
        print(f"epoch {epoch + 1}/{epochs}: loss {loss.item():.3f} (id {loss_id.item():.3f}, "
              f"aicl {loss_aicl.item():.3f}), {time.perf_counter() - start:.0f} s")  # fmt: skip

    # 5. Evaluation: the model in eval mode returns L2-normalised (B, D) embeddings; evaluate_protocol builds the
    #    query / gallery of every trial, ranks by cosine distance and averages CMC / mAP / mINP over the trials.
    model.eval()
    with torch.no_grad():
        result = evaluate_protocol(model, dataset, trials=trials, img_size=img_size, mode="all")
    metrics = {k: float(v) for k, v in result.as_dict().items()}
    print("SYSU protocol, all-search: " + "  ".join(f"{k} {v:.2f}" for k, v in metrics.items()))
    return {**metrics, "loss": loss.item()}


if __name__ == "__main__":
    main()
