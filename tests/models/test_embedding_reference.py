"""The eval embedding's content: the L2-normalised concatenation of the heads' BNNeck features (docs/models.md),
recomputed here from the P4 / P5 maps and each head's BatchNorm parameters with plain tensor operations."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from wrim.models import create_model

SIZE = (64, 32)


def _bnneck(pooled: torch.Tensor, bn: torch.nn.BatchNorm1d) -> torch.Tensor:
    """Eval BatchNorm1d from its buffers and parameters: (g - μ) / √(σ² + ε) · γ + β."""
    return (pooled - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias


def test_eval_embedding_is_normalised_concat_of_bnneck_features() -> None:
    model = create_model("wrimnet_resnet18", num_classes=5, img_size=SIZE).double().eval()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():  # BNNeck statistics far from (0, 1) and γ far from 1, so raw pooled features differ
        for head in model.heads.values():
            bn = head.bnneck
            bn.running_mean.copy_(torch.randn(bn.num_features, generator=gen, dtype=torch.float64))
            bn.running_var.copy_(0.2 + 2 * torch.rand(bn.num_features, generator=gen, dtype=torch.float64))
            bn.weight.copy_(torch.randn(bn.num_features, generator=gen, dtype=torch.float64))
            bn.bias.copy_(0.5 * torch.randn(bn.num_features, generator=gen, dtype=torch.float64))
    images = torch.randn(3, 3, *SIZE, generator=gen, dtype=torch.float64)
    modalities = torch.tensor([0, 1, 0])
    with torch.no_grad():
        embedding = model(images, modalities)  # (B, D)
        maps = model.forward_features(images, modalities)
    p4, p5 = maps["p4"], maps["p5"]  # (B, C3, H, W), (B, C4, H, W)
    rows = p5.shape[2]
    assert rows % 2 == 0  # the two strips are the top and the bottom half
    pooled = {
        "p5_global": p5.mean(dim=(2, 3)),
        "p5_part0": p5[:, :, : rows // 2].mean(dim=(2, 3)),
        "p5_part1": p5[:, :, rows // 2 :].mean(dim=(2, 3)),
        "p4_global": p4.mean(dim=(2, 3)),
    }
    assert model.head_names == tuple(pooled)
    expected = F.normalize(torch.cat([_bnneck(pooled[name], model.heads[name].bnneck) for name in pooled], 1), dim=1)
    torch.testing.assert_close(embedding, expected, rtol=1e-10, atol=1e-10)
