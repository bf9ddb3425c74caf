"""MIIM's gate modes (learned, constant, static) and test-time interventions, against their equations in float64.

Every expected value below is written out from the block's equation (docs: Layers, section Gate modes and
interventions), ``Out = X + BN(X ⊙ Up_s(G))`` with BatchNorm's batch statistics in training and running statistics
in eval, never computed by the module under test.
"""

from __future__ import annotations

import pytest
import torch

import wrim
from wrim.layers import MIIM, ModalityMIIM

STRIDE = 2


def _up(gate: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Nearest upsampling by the stride, cropped to ``size``: (B, C, h, w) -> (B, C, H, W)."""
    return gate.repeat_interleave(STRIDE, 2).repeat_interleave(STRIDE, 3)[:, :, : size[0], : size[1]]


def _batch_norm_train(y: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Non-affine BatchNorm with the batch's own statistics (biased variance), (B, C, H, W)."""
    mean = y.mean(dim=(0, 2, 3), keepdim=True)
    var = y.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
    return (y - mean) / torch.sqrt(var + eps)


def _batch_norm_eval(y: torch.Tensor, norm: torch.nn.BatchNorm2d) -> torch.Tensor:
    return (y - norm.running_mean[:, None, None]) / torch.sqrt(norm.running_var[:, None, None] + norm.eps)


def _trained_stats(module: torch.nn.Module, channels: int = 8, size: tuple[int, int] = (8, 4)) -> None:
    """Move the running statistics away from 0 / 1 with two training batches, then switch to eval."""
    for _ in range(2):
        module(torch.randn(6, channels, *size, dtype=torch.float64) * 3 + 1)
    module.eval()


@pytest.mark.parametrize("value", [0.5, 0.8])
def test_constant_gate_is_x_plus_bn_of_x_times_c(value: float) -> None:
    module = MIIM(8, stride=STRIDE, gate="constant", gate_value=value).double()
    assert module.compress is None and module.gri is None and module.restore is None  # nothing image-dependent
    assert list(module.parameters()) == []
    x = torch.randn(5, 8, 7, 5, dtype=torch.float64)
    torch.testing.assert_close(module(x), x + _batch_norm_train(x * value), rtol=1e-12, atol=1e-12)
    _trained_stats(module, size=(7, 5))
    expected = x + _batch_norm_eval(x * value, module.norm)
    torch.testing.assert_close(module(x), expected, rtol=1e-12, atol=1e-12)


def test_constant_gate_is_bn_of_x_up_to_epsilon() -> None:
    """``BN(X ⊙ c) = BN(X)`` but for BatchNorm's ε: the control keeps the normalised residual ``X + BN(X)``."""
    x = torch.randn(6, 8, 8, 4, dtype=torch.float64)
    module = MIIM(8, stride=STRIDE, gate="constant").double()
    torch.testing.assert_close(module(x), x + _batch_norm_train(x), rtol=1e-4, atol=1e-4)


def test_static_gate_is_a_trained_map_the_same_for_every_image() -> None:
    module = MIIM(8, stride=STRIDE, gate="static", gate_grid=(4, 3)).double()
    assert [name for name, _ in module.named_parameters()] == ["gate_logits"]
    torch.testing.assert_close(module.gate_logits, torch.zeros(8, 4, 3, dtype=torch.float64))  # σ(0) = ½ at start
    with torch.no_grad():
        module.gate_logits.normal_()
    x = torch.randn(5, 8, 7, 5, dtype=torch.float64, requires_grad=True)
    gate = torch.sigmoid(module.gate_logits)[None].expand(5, -1, -1, -1)  # (B, C, h, w)
    expected = x + _batch_norm_train(x * _up(gate, (7, 5)))
    out = module(x)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    out.square().sum().backward()
    assert module.gate_logits.grad is not None and module.gate_logits.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="4x3 region grid; the input gives 5x3"):
        module(torch.randn(2, 8, 9, 5, dtype=torch.float64))


def test_gate_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="gate must be one of"):
        MIIM(8, gate="fixed")
    with pytest.raises(ValueError, match=r"gate_value must be in \(0, 1\]"):
        MIIM(8, gate="constant", gate_value=0.0)
    with pytest.raises(ValueError, match="needs gate_grid"):
        MIIM(8, gate="static")


def test_scripted_control_blocks_equal_eager() -> None:
    for kwargs in ({"gate": "constant"}, {"gate": "static", "gate_grid": (4, 2)}):
        module = MIIM(8, stride=STRIDE, **kwargs)
        module(torch.randn(4, 8, 8, 4))
        module.eval()
        x = torch.randn(2, 8, 8, 4)
        torch.testing.assert_close(torch.jit.script(module)(x), module(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("change", ["channel_only", "spatial_only", "channel_mean", "removed"])
def test_interventions_follow_their_equations_and_restore_the_block(change: str) -> None:
    module = MIIM(8, reduction=2, stride=STRIDE, num_heads=2).double()
    _trained_stats(module, size=(7, 5))
    x = torch.randn(3, 8, 7, 5, dtype=torch.float64)
    with torch.no_grad():
        before = module(x)
        gate = module.gate(x)  # (B, C, h, w), the learned gate
    state = {k: v.clone() for k, v in module.state_dict().items()}
    channel_mean = torch.rand(8, dtype=torch.float64)
    changed = {
        "channel_only": gate.mean(dim=(2, 3), keepdim=True).expand_as(gate),
        "spatial_only": gate.mean(dim=1, keepdim=True).expand_as(gate),
        "channel_mean": channel_mean[None, :, None, None].expand_as(gate),
    }
    expected = x if change == "removed" else x + _batch_norm_eval(x * _up(changed[change], (7, 5)), module.norm)
    with torch.no_grad(), module.intervene(change, channel_mean=channel_mean):
        torch.testing.assert_close(module(x), expected, rtol=1e-12, atol=1e-12)
        module.train()
        module(torch.randn(6, 8, 7, 5, dtype=torch.float64))  # re-estimate the statistics under the change
    assert not module.training  # the mode is restored too
    for name, value in module.state_dict().items():
        torch.testing.assert_close(value, state[name], rtol=0, atol=0)
    with torch.no_grad():
        torch.testing.assert_close(module(x), before, rtol=0, atol=0)


def test_intervention_errors() -> None:
    module = MIIM(8, stride=STRIDE, num_heads=2)
    with pytest.raises(ValueError, match="needs channel_mean"), module.intervene("channel_mean"):
        pass
    with pytest.raises(ValueError, match="intervention must be one of"), module.intervene("zeroed"):
        pass


def test_interventions_nest_outermost_first() -> None:
    module = MIIM(8, stride=STRIDE, num_heads=2).eval()
    x = torch.randn(2, 8, 8, 4)
    seen = []
    with torch.no_grad(), module.intervene("channel_only"), module.intervene(lambda g: seen.append(g) or g):
        module(x)
        gate = module.gate(x)
    torch.testing.assert_close(seen[0], gate.mean(dim=(2, 3), keepdim=True).expand_as(gate))  # the outer change's


def test_modality_miim_removed_copy_keeps_its_rows() -> None:
    block = ModalityMIIM(8, reduction=2, stride=STRIDE, num_heads=2).double()
    _trained_stats_modality(block)
    x = torch.randn(4, 8, 8, 4, dtype=torch.float64)
    modalities = torch.tensor([wrim.VISIBLE, wrim.INFRARED, wrim.INFRARED, wrim.VISIBLE])
    with torch.no_grad():
        intact = block(x, modalities)
        with block.infrared.intervene("removed"):
            out = block(x, modalities)
        with block.intervene("removed"):
            torch.testing.assert_close(block(x, modalities), x, rtol=0, atol=0)
    infrared = modalities == wrim.INFRARED
    torch.testing.assert_close(out[infrared], x[infrared], rtol=0, atol=0)
    torch.testing.assert_close(out[~infrared], intact[~infrared], rtol=0, atol=0)


def test_modality_miim_channel_mean_per_copy() -> None:
    block = ModalityMIIM(8, reduction=2, stride=STRIDE, num_heads=2).double()
    _trained_stats_modality(block)
    x = torch.randn(4, 8, 8, 4, dtype=torch.float64)
    modalities = torch.tensor([0, 1, 1, 0])
    means = torch.rand(2, 8, dtype=torch.float64)  # row 0 visible, row 1 infrared
    with torch.no_grad(), block.intervene("channel_mean", channel_mean=means):
        out = block(x, modalities)
    for row, modality in enumerate(modalities.tolist()):
        copy = block.branch(modality)
        gate = means[modality][None, :, None, None].expand(1, 8, 4, 2)
        expected = x[row : row + 1] + _batch_norm_eval(x[row : row + 1] * _up(gate, (8, 4)), copy.norm)
        torch.testing.assert_close(out[row : row + 1], expected, rtol=1e-12, atol=1e-12)


def _trained_stats_modality(block: ModalityMIIM) -> None:
    for _ in range(2):
        block(torch.randn(6, 8, 8, 4, dtype=torch.float64) * 2 + 1, torch.tensor([0, 1] * 3))
    block.eval()


def test_sync_batchnorm_is_folded_like_batchnorm() -> None:
    """A MIIM whose BatchNorm became ``nn.SyncBatchNorm`` (DDP with ``model.sync_bn``) folds it in eval mode too, and
    gives the folded output of the unconverted block."""
    module = MIIM(8, reduction=2, stride=STRIDE, num_heads=2)
    for _ in range(2):
        module(torch.randn(6, 8, 8, 4) * 2 + 1)
    module.eval()
    converted = torch.nn.SyncBatchNorm.convert_sync_batchnorm(_copy(module)).eval()
    assert isinstance(converted.norm, torch.nn.SyncBatchNorm) and converted.folds_norm()
    x = torch.randn(3, 8, 8, 4)
    with torch.no_grad():
        torch.testing.assert_close(converted(x), module(x), rtol=1e-6, atol=1e-6)


def _copy(module: torch.nn.Module) -> torch.nn.Module:
    import copy

    return copy.deepcopy(module)


@pytest.mark.parametrize("gate", ["constant", "static"])
def test_gate_mode_is_saved_with_the_model(tmp_path, gate: str) -> None:
    model = wrim.create_model("wrimnet_resnet18", num_classes=3, img_size=(128, 64), miim_kwargs={"gate": gate})
    model.eval()
    wrim.save_pretrained(model, tmp_path / "control")
    loaded = wrim.from_pretrained(tmp_path / "control").eval()
    assert {name: m.describe_gate() for name, m in loaded.miims.items()} == {
        name: m.describe_gate() for name, m in model.miims.items()
    }
    images, modalities = torch.randn(2, 3, 128, 64), torch.tensor([0, 1])
    with torch.no_grad():
        torch.testing.assert_close(loaded(images, modalities), model(images, modalities))
