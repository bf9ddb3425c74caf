"""examples/miim_in_your_model.py: the recipe of docs/layers.md (hooks, separate + shared MIIMs, init_values=0),
its training run, and an EMA copy made with ``copy.deepcopy``."""

import copy
import math
import runpy
from pathlib import Path

import pytest
import torch
import torchvision

import wrim

pytestmark = pytest.mark.repo  # runs the scripts in examples/

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "miim_in_your_model.py"
if not SCRIPT.is_file():  # the script is read at import, before the marker can skip
    pytest.skip("needs the repository's files; absent here: examples", allow_module_level=True)
EXAMPLE = runpy.run_path(str(SCRIPT))


@pytest.mark.parametrize("backbone", ["torchvision", "timm"])
def test_miim_in_your_model_fast(backbone, capsys):
    result = EXAMPLE["main"](["--fast", "--backbone", backbone])
    assert result["num_miim"] == 4 and result["num_separate"] == 2
    assert math.isfinite(result["first_loss"]) and math.isfinite(result["last_loss"])
    assert "4 MIIMs (2 separate)" in capsys.readouterr().out


def _pretrained_like() -> torch.nn.Module:
    torch.manual_seed(0)
    net = torchvision.models.resnet18(weights=None, num_classes=7)
    for module in net.modules():  # running statistics of a trained network, not the fresh 0 / 1
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    return net.eval()


def test_the_paper_placements_keep_the_keys_and_the_outputs_at_step_0():
    net = _pretrained_like()
    keys, images = set(net.state_dict()), torch.randn(4, 3, 64, 32)  # (B, 3, H, W)
    modalities = torch.tensor([wrim.VISIBLE, wrim.INFRARED, wrim.INFRARED, wrim.VISIBLE])
    with torch.no_grad():
        before = net(images)  # (4, 7)
    model = EXAMPLE["ResNetWithMIIM"](net, channels=(64, 128, 256, 512)).eval()
    kinds = {stage: type(m).__name__ for stage, m in model.miims.items()}
    assert kinds == {"layer1": "ModalityMIIM", "layer2": "ModalityMIIM", "layer3": "MIIM", "layer4": "MIIM"}
    assert [model.miims[s].stride for s in ("layer3", "layer4")] == [1, 1]
    assert set(model.net.state_dict()) == keys  # a checkpoint of your network still loads into model.net
    with torch.no_grad():
        torch.testing.assert_close(model(images, modalities), before)


def test_an_ema_copy_runs_its_own_miims():
    """``copy.deepcopy`` of the model: the copy equals the original, and once the copy's MIIMs change (here their
    LayerScale gammas, as EMA updates would change them) its output follows its own MIIMs, not the original's."""
    model = EXAMPLE["ResNetWithMIIM"](_pretrained_like(), channels=(64, 128, 256, 512)).eval()
    images = torch.randn(4, 3, 64, 32)
    modalities = torch.tensor([wrim.VISIBLE, wrim.INFRARED, wrim.VISIBLE, wrim.INFRARED])
    ema = copy.deepcopy(model)
    hooks = [h for stage in model.miims for h in getattr(ema.net, stage)._forward_hooks.values()]
    assert len(hooks) == 4 and all(h.owner is ema for h in hooks)
    with torch.no_grad():
        original = model(images, modalities)
        torch.testing.assert_close(ema(images, modalities), original)
        for name, param in ema.miims.named_parameters():
            if name.endswith("gamma"):
                param.fill_(1.0)
        moved = ema(images, modalities)
        assert (moved - original).abs().max() > 1e-3  # a closure hook would still run the original's MIIMs
        torch.testing.assert_close(model(images, modalities), original)  # the original is untouched
        model.load_state_dict(ema.state_dict())
        torch.testing.assert_close(model(images, modalities), moved)


def test_a_mixed_batch_equals_each_copys_output_row_by_row():
    """The recipe's network with the paper's MIIMs (``init_values=None``: no identity start): each row of a mixed
    batch equals that sample's output in a batch of its own modality alone, so every sample went through its own
    copy (eval mode: running statistics, no coupling between samples); with the ids swapped the rows change."""
    model = EXAMPLE["ResNetWithMIIM"](_pretrained_like(), channels=(64, 128, 256, 512), init_values=None).eval()
    images = torch.randn(6, 3, 64, 32)  # (B, 3, H, W)
    modalities = torch.tensor([wrim.VISIBLE, wrim.INFRARED, wrim.INFRARED, wrim.VISIBLE, wrim.INFRARED, wrim.VISIBLE])
    with torch.no_grad():
        mixed = model(images, modalities)  # (6, 7)
        for modality in (wrim.VISIBLE, wrim.INFRARED):
            rows = modalities == modality
            alone = model(images[rows], torch.full((int(rows.sum()),), modality))
            torch.testing.assert_close(mixed[rows], alone, rtol=1e-5, atol=1e-5)
        swapped = model(images, 1 - modalities)
    assert (swapped - mixed).abs().amax(dim=1).min() > 1e-3  # every row depends on its copy
