"""The user's network of the open-engine tests: a torchvision ResNet-18 with the paper's four MIIMs added by the
hooks of examples/miim_in_your_model.py (``ResNetWithMIIM``: separate MIIMs after layer1-2, shared after layer3-4)
that returns a ``WRIMNetOutput`` in training mode (so the default loss trains it).
Importing it registers nothing; ``_plugin_parts.py`` registers it as a plugin would."""

import functools
import importlib.util
from pathlib import Path
from types import ModuleType

import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from wrim.models import WRIMNetOutput

_EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "miim_in_your_model.py"


@functools.cache
def _example() -> ModuleType:
    """The example, loaded on first use (the tests that build this network are marked ``repo``)."""
    spec = importlib.util.spec_from_file_location("miim_in_your_model", _EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class ResNetMIIM(nn.Module):
    """torchvision ResNet-18 + four MIIMs, a BNNeck and a classifier; P4 / P5 projections are the pooled stages.

    Trained from scratch, so the MIIMs are the paper's (``init_values=None``), not the identity start of the
    recipe for a pretrained network. Training: a ``WRIMNetOutput`` (logits and projections for ``WRIMNetLoss``);
    eval: the (B, 512) L2-normalised BNNeck feature.
    """

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        trunk = torchvision.models.resnet18(weights=None)
        trunk.fc = nn.Identity()
        self.trunk = _example().ResNetWithMIIM(trunk, channels=(64, 128, 256, 512), init_values=None)
        self.neck = nn.BatchNorm1d(512)
        self.classifier = nn.Linear(512, num_classes, bias=False)

    def forward(self, images: torch.Tensor, modalities: torch.Tensor) -> WRIMNetOutput | torch.Tensor:
        """(B, 3, H, W), (B,) -> WRIMNetOutput (training) or (B, 512) embeddings (eval)."""
        t = self.trunk.net
        self.trunk.modalities = modalities  # what the separate MIIMs' hooks read (ResNetWithMIIM.forward sets it)
        try:
            x = t.maxpool(t.relu(t.bn1(t.conv1(images))))  # (B, 64, H/4, W/4)
            p4 = t.layer3(t.layer2(t.layer1(x)))  # (B, 256, H/16, W/16)
            p5 = t.layer4(p4)  # (B, 512, H/32, W/32)
        finally:
            self.trunk.modalities = None
        pooled4, pooled5 = p4.mean((2, 3)), p5.mean((2, 3))  # (B, 256), (B, 512)
        feature = self.neck(pooled5)  # (B, 512)
        if not self.training:
            return F.normalize(feature, dim=1)
        return WRIMNetOutput(
            logits={"p5_global": self.classifier(feature)},  # (B, K)
            features={"p5_global": feature},
            projections={"p5_global": pooled5, "p4_global": pooled4},
        )
