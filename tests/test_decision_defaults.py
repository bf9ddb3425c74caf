"""Every [D] default's *effect*, one table row each: (owner, argument, default, what a user observes).

A planted change of a [D] default must fail a test here, not only a test that the argument exists. Each row builds
the object as a user would (no arguments beyond what the row needs) and checks the observable effect against an
independent computation: the loop references of tests/losses/losses_loop_reference.py for the losses, torch's own
cross-entropy, or a training step. The layers' [D] alternatives are tested against their equations in
tests/layers/test_decisions.py; ``WRIMNetLoss(gather_across_ranks=True)``'s effect needs two processes and is
tested in tests/test_distributed.py (slow: gather on vs off).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F

from tests.losses.losses_loop_reference import cmkic_reference
from wrim.evaluation import flip_average
from wrim.losses import AICLLoss, CMKICLoss, WRIMNetLoss
from wrim.miners import CrossModalityKeyInstanceMiner, KeyInstanceMiner
from wrim.models import create_model
from wrim.models.backbone import StagedBackbone
from wrim.models.heads import EmbeddingHead

IMG = (64, 32)


def _batch(seed: int = 0, dim: int = 8) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """4 identities x (3 visible + 3 infrared): every anchor has 3 cross-modality positives (more than k = 2)."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(4).repeat_interleave(6)  # (24,)
    modalities = torch.tensor([0, 0, 0, 1, 1, 1]).repeat(4)  # (24,)
    return torch.randn(24, dim, generator=g, dtype=torch.float64), labels, modalities


def _training_step(model: torch.nn.Module) -> None:
    """One AdamW step (the synthetic config's optimiser) of WRIMNet under its default loss."""
    images = torch.randn(8, 3, *IMG)
    labels = torch.tensor([0, 0, 1, 1, 0, 0, 1, 1])
    modalities = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=0.01, weight_decay=5e-4)
    WRIMNetLoss(AICLLoss())(model.train()(images, modalities), labels, modalities=modalities).backward()
    optimizer.step()


def _bnneck_biases(model: torch.nn.Module) -> list[torch.Tensor]:
    return [m.bnneck.bias.detach().clone() for m in model.modules() if isinstance(m, EmbeddingHead)]


def bnneck_bias_frozen() -> None:
    torch.manual_seed(0)
    model = create_model("wrimnet_resnet18", num_classes=2, img_size=IMG)
    _training_step(model)
    assert all(torch.equal(b, torch.zeros_like(b)) for b in _bnneck_biases(model))  # still exactly 0
    torch.manual_seed(0)
    trained = create_model("wrimnet_resnet18", num_classes=2, img_size=IMG, head_kwargs={"freeze_bnneck_bias": False})
    _training_step(trained)
    assert any(b.abs().max() > 0 for b in _bnneck_biases(trained))  # the alternative moves it


def classifier_std() -> None:
    torch.manual_seed(3)
    std = EmbeddingHead(256, 1000).classifier.weight.std().item()
    assert 0.0008 < std < 0.0012  # N(0, 0.001²) over 256k weights


def cmkic_k_and_temperature() -> None:
    emb, labels, mods = _batch()
    expected = cmkic_reference(emb, labels, mods, k=2, temperature=0.1)
    assert CMKICLoss()(emb, labels, modalities=mods).item() == pytest.approx(expected, rel=1e-9)
    other = cmkic_reference(emb, labels, mods, k=1, temperature=0.1)
    assert abs(other - expected) > 1e-6  # the batch tells k = 1 and k = 2 apart


def miners_k() -> None:
    emb, labels, mods = _batch(1)
    a1, _, _, _ = CrossModalityKeyInstanceMiner()(emb, labels, modalities=mods)
    assert torch.bincount(a1, minlength=24).tolist() == [2] * 24  # 3 candidates each, 2 kept
    a1, _, _, _ = KeyInstanceMiner()(emb, labels)
    assert torch.bincount(a1, minlength=24).tolist() == [2] * 24  # 5 same-label candidates each, 2 kept


def aicl_weights_and_keys() -> None:
    p5, labels, mods = _batch(2)
    p4, _, _ = _batch(3, dim=6)
    expected = 1.0 * cmkic_reference(p5, labels, mods, 2, 0.1) + 0.5 * cmkic_reference(p4, labels, mods, 2, 0.1)
    assert AICLLoss()(p5, p4, labels, modalities=mods).item() == pytest.approx(expected, rel=1e-6)
    p4_keys = cmkic_reference(p5, labels, mods, 2, 0.1, select_embeddings=p4)  # the alternative: keys from P4
    assert abs(p4_keys - cmkic_reference(p5, labels, mods, 2, 0.1)) > 1e-6


def wrimnet_loss_weights_and_smoothing() -> None:
    p5, labels, mods = _batch(4)
    logits = {"p5_global": torch.randn(24, 4, dtype=torch.float64), "p4_global": torch.randn(24, 4)}

    class Output:
        pass

    out = Output()
    out.logits, out.p5_projection, out.p4_projection = logits, p5, p5[:, :6]
    loss = WRIMNetLoss(AICLLoss())
    total = loss(out, labels, modalities=mods)
    id_terms = sum(F.cross_entropy(v.float(), labels, label_smoothing=0.1) for v in logits.values())
    metric = AICLLoss()(p5.float(), p5[:, :6].float(), labels, modalities=mods)
    assert total.item() == pytest.approx((1.0 * id_terms + 1.0 * metric).item(), rel=1e-6)


def _stage4_convs(backbone: StagedBackbone) -> list[torch.nn.Conv2d]:
    modules = [sub for module in backbone.stage_modules(4) for sub in module.modules()]
    return [m for m in modules if isinstance(m, torch.nn.Conv2d)]


def last_stage_undilated() -> None:
    default = StagedBackbone("resnet18", img_size=IMG)
    assert default.last_stride == 1 and default.reductions[2] == default.reductions[3]
    convs = _stage4_convs(default)
    assert convs and all(c.dilation == (1, 1) for c in convs)  # stride 1, dilation 1 (the re-id convention)
    dilated = _stage4_convs(StagedBackbone("resnet18", img_size=IMG, last_stage_dilation=True))
    assert any(c.dilation != (1, 1) for c in dilated)  # the alternative keeps timm's dilation


def heads_embedding_and_projections() -> None:
    torch.manual_seed(0)
    model = create_model("wrimnet_resnet18", num_classes=2, img_size=IMG).eval()
    widths = sum(head.in_channels for head in model.heads.values())
    assert model(torch.randn(2, 3, *IMG), torch.tensor([0, 1])).shape == (2, widths)  # embed_heads=None: all heads
    with_projection = sorted(name for name, head in model.heads.items() if head.projection is not None)
    assert with_projection == ["p4_global", "p5_global"]  # projection_heads=None: the two with a loss


def flip_renormalises() -> None:
    images = torch.randn(3, 3, 4, 6)
    out = flip_average(lambda x, m: x.flatten(1) * 3.0, images)
    torch.testing.assert_close(out.norm(dim=1), torch.ones(3))  # the L2-normalised sum


@dataclass(frozen=True)
class Decision:
    owner: str
    argument: str
    default: object
    effect: Callable[[], None]


DECISIONS = (
    Decision("EmbeddingHead / WRIMNet(head_kwargs)", "freeze_bnneck_bias", True, bnneck_bias_frozen),
    Decision("EmbeddingHead", "classifier_init_std", 0.001, classifier_std),
    Decision("CMKICLoss", "k, temperature", (2, 0.1), cmkic_k_and_temperature),
    Decision("KeyInstanceMiner / CrossModalityKeyInstanceMiner", "k", 2, miners_k),
    Decision("AICLLoss", "p5_weight, p4_weight, p5_keys_from_p4", (1.0, 0.5, False), aicl_weights_and_keys),
    Decision(
        "WRIMNetLoss", "id_weight, metric_weight, label_smoothing", (1.0, 1.0, 0.1), wrimnet_loss_weights_and_smoothing
    ),
    Decision("StagedBackbone / WRIMNet", "last_stage_dilation", False, last_stage_undilated),
    Decision("WRIMNet", "embed_heads, projection_heads", (None, None), heads_embedding_and_projections),
    Decision("flip_average", "renormalize", True, flip_renormalises),
)


@pytest.mark.parametrize("decision", DECISIONS, ids=lambda d: f"{d.owner}.{d.argument}")
def test_decision_default_has_its_effect(decision: Decision) -> None:
    decision.effect()
