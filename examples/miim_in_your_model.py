"""Put the paper's MIIMs into your own ResNet without touching its state-dict keys, then train it a few steps.

The recipe of docs/layers.md, section "MIIM in your own pretrained ResNet-50":

- forward hooks on the stages, not ``nn.Sequential(stage, miim)`` (which renames every key below the stage, so your
  checkpoint no longer loads);
- the paper's placements: a modality-specific ``wrim.ModalityMIIM`` after ``layer1`` and ``layer2`` and a shared
  ``wrim.MIIM`` after ``layer3`` and ``layer4``, reduction (2, 2, 4, 4) and spatial stride (4, 2, 1, 1);
- ``init_values=0``: every MIIM starts as the identity, so a pretrained network's outputs are unchanged at step 0;
- the hooks are small objects (`MIIMHook`), not closures: ``copy.deepcopy(model)`` (an EMA copy) copies them with
  the model, and the copy's hooks run the copy's MIIMs.

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

__all__ = ["PAPER_PLACEMENTS", "MIIMHook", "ResNetWithMIIM", "main"]

#: stage -> (kind, reduction r, spatial stride s): the paper's placements (docs/layers.md, The paper's placements).
PAPER_PLACEMENTS: dict[str, tuple[str, int, int]] = {
    "layer1": ("separate", 2, 4),
    "layer2": ("separate", 2, 2),
    "layer3": ("shared", 4, 1),
    "layer4": ("shared", 4, 1),
}


class MIIMHook:
    """A forward hook on a stage of ``owner.net``: the stage's output through ``owner.miims[stage]``.

    An object that holds its owner, not a closure: ``copy.deepcopy(owner)`` copies the hook along with the model,
    and the copy's hook calls the copy's MIIMs (a closure would keep calling the original's).
    """

    def __init__(self, owner: ResNetWithMIIM, stage: str) -> None:
        self.owner = owner
        self.stage = stage

    def __call__(self, module: nn.Module, args: tuple, out: torch.Tensor) -> torch.Tensor:
        miim = self.owner.miims[self.stage]
        if isinstance(miim, wrim.ModalityMIIM):
            return miim(out, self.owner.modalities)  # (B, C, H, W), (B,) -> (B, C, H, W)
        return miim(out)  # (B, C, H, W) -> (B, C, H, W)


class ResNetWithMIIM(nn.Module):
    """Your ResNet with the paper's four MIIMs added by forward hooks; ``net``'s keys are unchanged.

    Args:
        net: a torchvision or timm ResNet (``layer1`` .. ``layer4``), pretrained or not.
        channels: output channels of the four stages (ResNet-18/34: 64..512; ResNet-50: 256..2048).
        init_values: the MIIMs' LayerScale start; 0 (the recipe) keeps ``net``'s outputs at step 0, ``None`` is
            the paper's MIIM.
    """

    def __init__(
        self, net: nn.Module, channels: tuple[int, ...] = (256, 512, 1024, 2048), init_values: float | None = 0.0
    ) -> None:
        super().__init__()
        self.net = net
        self.miims = nn.ModuleDict()
        for (stage, (kind, reduction, stride)), width in zip(PAPER_PLACEMENTS.items(), channels):
            block = wrim.ModalityMIIM if kind == "separate" else wrim.MIIM
            self.miims[stage] = block(width, reduction=reduction, stride=stride, init_values=init_values)
        self.modalities: torch.Tensor | None = None  # the batch's (B,) ids while forward runs
        for stage in self.miims:
            getattr(net, stage).register_forward_hook(MIIMHook(self, stage))

    def forward(self, images: torch.Tensor, modalities: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W), (B,) wrim.VISIBLE / wrim.INFRARED -> ``net``'s output."""
        self.modalities = modalities
        try:
            return self.net(images)
        finally:
            self.modalities = None


def build_resnet(kind: str) -> ResNetWithMIIM:
    """A randomly initialised ResNet-18 trunk (no classifier, (B, 512) pooled features) with the four MIIMs."""
    if kind == "torchvision":
        import torchvision

        resnet = torchvision.models.resnet18(weights=None)  # yours: load its weights here
        resnet.fc = nn.Identity()
    elif kind == "timm":
        import timm

        resnet = timm.create_model("resnet18", pretrained=False, num_classes=0)
    else:
        raise ValueError(f"--backbone must be 'torchvision' or 'timm', got {kind!r}")
    return ResNetWithMIIM(resnet, channels=(64, 128, 256, 512))


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Trains the MIIM-augmented ResNet for a few steps; returns the first and last loss and the MIIM counts.

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
    optimizer = torch.optim.AdamW(  # the pretrained network at a tenth of the rate of the new parts
        [
            {"params": model.net.parameters(), "lr": 1e-4},
            {"params": [*model.miims.parameters(), *classifier.parameters()], "lr": 1e-3},
        ],
        weight_decay=5e-4,
    )

    losses = []
    start = time.perf_counter()
    model.train()
    while len(losses) < steps:
        for images, pids, _camids, modalities in loader:  # (B, 3, H, W), (B,), (B,), (B,)
            features = model(images, modalities)  # (B, 512)
            loss = id_loss(classifier(features), pids) + contrastive(features, pids, modalities=modalities)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            print(f"step {len(losses):3d}  loss {loss.item():.4f}", flush=True)
            if len(losses) == steps:
                break
    separate = sum(isinstance(m, wrim.ModalityMIIM) for m in model.miims.values())
    print(
        f"{args.backbone} ResNet-18 with {len(model.miims)} MIIMs ({separate} separate): {steps} steps in "
        f"{time.perf_counter() - start:.1f} s"
    )
    return {"first_loss": losses[0], "last_loss": losses[-1], "num_miim": len(model.miims), "num_separate": separate}


if __name__ == "__main__":
    main()
