"""Put WRIM-Net's MIIM into your own ResNet in a few lines, then train it a few steps on the synthetic set.

MIIM (paper.md §1) maps (B, C, H, W) -> (B, C, H, W), so it drops in after any stage of any CNN. The four lines
marked "MIIM" below are all it takes; the paper's placements are reduction r = (2, 2, 4, 4) and spatial stride
s = (4, 2, 1, 1) after blocks 1-4. (WRIM-Net itself uses modality-specific MIIMs, ``wrim.ModalityMIIM``, in the two
shallow stages; see ``wrim.models.WRIMNet``.)

Run::

    python examples/miim_in_your_model.py                 # torchvision ResNet-18, 30 steps
    python examples/miim_in_your_model.py --backbone timm # the same with timm's resnet18
    python examples/miim_in_your_model.py --fast          # a few steps on a tiny set (what the test runs)
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

import wrim
from wrim.data import SyntheticVIReID, build_train_loader
from wrim.losses import CMKICLoss

__all__ = ["add_miim", "main"]


def add_miim(
    resnet: nn.Module, channels: tuple[int, ...] = (64, 128, 256, 512), init_values: float | None = None
) -> nn.Module:
    """Appends a MIIM to ``layer1`` .. ``layer4`` of a torchvision or timm ResNet (in place).

    Args:
        resnet: a model with ``layer1`` .. ``layer4`` attributes (torchvision and timm ResNets both have them).
        channels: output channels of the four stages (ResNet-18/34: 64..512; ResNet-50: 256..2048).
        init_values: None keeps the paper's MIIM; 0 starts each MIIM as the identity (a LayerScale γ = 0 on its
            branch), so a *pretrained* ResNet's outputs are unchanged at step 0 (docs/layers.md, "Inserting MIIM
            into a pretrained network").
    """
    kw = {"init_values": init_values}
    resnet.layer1 = nn.Sequential(resnet.layer1, wrim.MIIM(channels[0], reduction=2, stride=4, **kw))  # MIIM
    resnet.layer2 = nn.Sequential(resnet.layer2, wrim.MIIM(channels[1], reduction=2, stride=2, **kw))  # MIIM
    resnet.layer3 = nn.Sequential(resnet.layer3, wrim.MIIM(channels[2], reduction=4, stride=1, **kw))  # MIIM
    resnet.layer4 = nn.Sequential(resnet.layer4, wrim.MIIM(channels[3], reduction=4, stride=1, **kw))  # MIIM
    return resnet


def build_resnet(kind: str) -> nn.Module:
    """A randomly initialised ResNet-18 trunk (no classifier) from torchvision or timm, with MIIMs added."""
    if kind == "torchvision":
        import torchvision

        resnet = torchvision.models.resnet18(weights=None)
        resnet.fc = nn.Identity()  # (B, 512) pooled features
    elif kind == "timm":
        import timm

        resnet = timm.create_model("resnet18", pretrained=False, num_classes=0)  # (B, 512) pooled features
    else:
        raise ValueError(f"--backbone must be 'torchvision' or 'timm', got {kind!r}")
    return add_miim(resnet)


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Trains the MIIM-augmented ResNet for a few steps; returns the first and last loss.

    Args:
        argv: command-line arguments (default ``sys.argv[1:]``).
    """
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backbone", default="torchvision", choices=["torchvision", "timm"])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--fast", action="store_true", help="a tiny set, small images, 4 steps")
    args = parser.parse_args(argv)
    torch.manual_seed(0)

    # the synthetic set: rendered once into ~/.cache/wrim (seconds), read like SYSU-MM01
    if args.fast:
        dataset = SyntheticVIReID(num_ids=16, num_test_ids=8, images_per_camera=2)
        img_size, num_ids, steps = (64, 32), 4, 4
    else:
        dataset = SyntheticVIReID()
        img_size, num_ids, steps = (128, 64), 8, args.steps
    loader = build_train_loader(dataset, img_size=img_size, num_ids=num_ids, num_instances=2, num_workers=0)

    model = build_resnet(args.backbone)
    classifier = nn.Linear(512, dataset.num_classes)
    id_loss = nn.CrossEntropyLoss(label_smoothing=0.1)
    contrastive = CMKICLoss(k=2, temperature=0.1)  # WRIM-Net's cross-modality key-instance loss
    params = list(model.parameters()) + list(classifier.parameters())
    optimizer = torch.optim.AdamW(params, lr=1e-3, weight_decay=5e-4)

    losses = []
    start = time.perf_counter()
    model.train()
    while len(losses) < steps:
        for images, pids, _camids, modalities in loader:  # (B, 3, H, W), (B,), (B,), (B,)
            features = model(images)  # (B, 512)
            loss = id_loss(classifier(features), pids) + contrastive(features, pids, modalities=modalities)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            print(f"step {len(losses):3d}  loss {loss.item():.4f}", flush=True)
            if len(losses) == steps:
                break
    n_miim = sum(isinstance(m, wrim.MIIM) for m in model.modules())
    print(f"{args.backbone} ResNet-18 with {n_miim} MIIMs: {steps} steps in {time.perf_counter() - start:.1f} s")
    return {"first_loss": losses[0], "last_loss": losses[-1], "num_miim": float(n_miim)}


if __name__ == "__main__":
    main()
