"""``init_values=0``: MIIMs inserted into a (pretrained) timm ResNet leave its outputs unchanged at step 0."""

from __future__ import annotations

import pytest
import timm
import torch
from torch import nn

from wrim import MIIM, ModalityMIIM


def _pretrained_like_resnet() -> nn.Module:
    """A timm ResNet-18 with non-trivial BatchNorm parameters and statistics, as pretrained weights would have."""
    torch.manual_seed(0)
    net = timm.create_model("resnet18", num_classes=10)
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):
            nn.init.uniform_(module.weight, 0.5, 1.5)
            nn.init.uniform_(module.bias, -0.2, 0.2)
            module.running_var.uniform_(0.5, 2.0)
    return net


@pytest.mark.parametrize("train", [False, True])
def test_zero_init_miims_keep_pretrained_outputs(train: bool) -> None:
    net = _pretrained_like_resnet().train(train)
    images = torch.randn(4, 3, 96, 48)
    with torch.no_grad():
        before = net(images)
    net.miims = nn.ModuleDict({"layer1": MIIM(64, stride=4, init_values=0), "layer3": MIIM(256, init_values=0)})
    for name, miim in net.miims.items():
        getattr(net, name).register_forward_hook(lambda module, args, out, miim=miim: miim(out))
    net.miims.train(train)
    out = net(images)
    torch.testing.assert_close(out, before, rtol=0, atol=0)
    # only γ gets a gradient at step 0; after one step the MIIMs act
    out.logsumexp(1).mean().backward()
    for miim in net.miims.values():
        assert miim.gamma.grad is not None and miim.gamma.grad.abs().sum() > 0
    with torch.no_grad():
        for miim in net.miims.values():
            miim.gamma.sub_(0.1 * miim.gamma.grad)
        assert not torch.allclose(net(images), before)


def test_default_keeps_the_paper_form() -> None:
    """Without init_values a fresh MIIM moves the features (the issue's 0.29 -> 1.29 std), and has no γ."""
    torch.manual_seed(0)
    x = torch.relu(torch.randn(2, 256, 24, 12)) * 0.5
    plain, scaled = MIIM(256, stride=4), MIIM(256, stride=4, init_values=0)
    assert plain.gamma is None and scaled.gamma.shape == (256,)
    assert (plain(x) - x).std() > 0.5  # the non-affine BatchNorm brings the branch to unit variance
    assert torch.equal(scaled(x), x)


def test_modality_miim_zero_init_is_identity() -> None:
    module = ModalityMIIM(32, stride=2, init_values=0)
    x = torch.randn(4, 32, 8, 4)
    assert torch.equal(module(x, torch.tensor([0, 1, 1, 0])), x)
    module.infrared.gamma.data.fill_(1.0)  # each sample uses its own copy's γ
    out = module(x, torch.tensor([0, 1, 1, 0]))
    assert torch.equal(out[[0, 3]], x[[0, 3]]) and not torch.equal(out[[1, 2]], x[[1, 2]])
