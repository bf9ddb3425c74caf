"""The open decisions of the paper as arguments: each alternative against its equation, defaults unchanged."""

import pytest
import torch
import torch.nn.functional as F

from wrim.layers import GRI, MIIM, ModalityMIIM, sincos_2d_pos_embed
from wrim.models.heads import EmbeddingHead


def _bn(y: torch.Tensor) -> torch.Tensor:
    """Non-affine BatchNorm in training mode: per-channel batch statistics, biased variance, eps 1e-5."""
    mean = y.mean(dim=(0, 2, 3), keepdim=True)
    var = y.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
    return (y - mean) / torch.sqrt(var + 1e-5)


@pytest.mark.parametrize("combine", ["add", "add_relu", "gate"])
def test_miim_combine_follows_its_equation(combine):
    torch.manual_seed(0)
    x = torch.randn(4, 16, 8, 4)
    miim = MIIM(16, reduction=2, stride=2, num_heads=2, combine=combine).train()
    gate = F.interpolate(miim.gate(x), scale_factor=2, mode="nearest")  # (B, C, H, W) = Up_s(G)
    normed = _bn(x * gate)
    expected = {"add": x + normed, "add_relu": F.relu(x + normed), "gate": normed}[combine]
    torch.testing.assert_close(miim(x), expected, atol=1e-5, rtol=1e-5)


def test_miim_default_is_the_documented_add():
    assert MIIM(16, num_heads=2).combine == "add"
    with pytest.raises(ValueError, match="combine must be one of"):
        MIIM(16, num_heads=2, combine="mul")


@pytest.mark.parametrize("combine", ["add_relu", "gate"])
def test_modality_miim_uses_the_same_combination(combine):
    torch.manual_seed(1)
    x = torch.randn(4, 16, 8, 4)
    modalities = torch.tensor([1, 1, 1, 1])  # one modality: the infrared copy on its own
    layer = ModalityMIIM(16, reduction=2, stride=2, num_heads=2, combine=combine).train()
    alone = layer.infrared
    torch.testing.assert_close(layer(x, modalities), alone(x), atol=1e-5, rtol=1e-5)


def test_gri_residual_without_positional_encoding_differs_by_exactly_the_encoding():
    torch.manual_seed(2)
    x = torch.randn(2, 16, 6, 4)
    with_pe = GRI(16, num_heads=2)
    without = GRI(16, num_heads=2, residual_pos_embed=False)
    without.load_state_dict(with_pe.state_dict())
    assert with_pe.residual_pos_embed  # [D] default: the encoded tokens are the residual
    difference = with_pe(x) - without(x)  # (B, N, C): only the shortcut differs
    torch.testing.assert_close(difference, sincos_2d_pos_embed(6, 4, 16).expand_as(difference), atol=1e-6, rtol=0)


def test_miim_passes_the_residual_choice_to_gri():
    assert MIIM(16, num_heads=2, attn_residual_pos_embed=False).gri.residual_pos_embed is False


def test_head_bnneck_bias_and_classifier_std():
    torch.manual_seed(3)
    default = EmbeddingHead(256, 1000)
    assert not default.bnneck.bias.requires_grad  # [D] frozen as AGW / BoT
    assert 0.0008 < default.classifier.weight.std().item() < 0.0012  # N(0, 0.001²) over 256k weights
    trained = EmbeddingHead(256, 1000, freeze_bnneck_bias=False, classifier_init_std=0.01)
    assert trained.bnneck.bias.requires_grad
    assert 0.008 < trained.classifier.weight.std().item() < 0.012
    trained.reset_classifier(10)  # a fresh classifier keeps the chosen std
    assert trained.classifier_init_std == 0.01
    with pytest.raises(ValueError, match="classifier_init_std"):
        EmbeddingHead(8, 4, classifier_init_std=0)
