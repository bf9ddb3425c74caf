"""EmbeddingHead - one WRIM-Net head ("ConEmbeddingHead" in [N]): BNNeck, ID classifier and contrastive projection.

Shapes: ``B`` batch, ``C`` pooled feature width, ``K`` identities (``num_classes``), ``P`` projection width.

docs: The paper, section Heads [N]: every head pools its map (the pooling is done by the caller: global average
pooling or a horizontal strip) and then:

```text
f = BN(g)                                     BNNeck; its bias frozen at 0 as in AGW / BoT [D] (argument)
logits = W f                                  ID classifier, Linear(C, K) without bias
z = Linear(C, P)(ReLU(BN(Linear(C, C)(f))))   contrastive projection MLP (P = 128 in [N])
```

``f`` is what the test-time embedding concatenates; ``z`` is what CMKIC / AICL consume (they L2-normalise it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import torch
from torch import nn

__all__ = ["EmbeddingHead", "HeadOutput", "WRIMNetOutput"]


class HeadOutput(NamedTuple):
    """What one head gives in training."""

    features: torch.Tensor  # (B, C) BNNeck features
    logits: torch.Tensor | None  # (B, K), None when the head has no classifier
    projection: torch.Tensor | None  # (B, P), None when the head has no projection


class EmbeddingHead(nn.Module):
    """BNNeck -> ID classifier (no bias) and projection MLP, on a pooled (B, C) feature."""

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        proj_dim: int = 128,
        freeze_bnneck_bias: bool = True,
        classifier_init_std: float = 0.001,
    ) -> None:
        """
        Args:
            in_channels: pooled feature width ``C``.
            num_classes: identities ``K`` of the ID classifier; 0 builds no classifier.
            proj_dim: output width ``P`` of the projection MLP (128 in [N]); 0 builds no projection.
            freeze_bnneck_bias: keep the BNNeck's bias at 0 (not trained). [D] True, as AGW / BoT.
            classifier_init_std: the ID classifier's weights start from N(0, std²). [D] 0.001, as AGW.
        """
        super().__init__()
        if in_channels < 1 or proj_dim < 0:
            raise ValueError(f"in_channels must be >= 1 and proj_dim >= 0; got {in_channels}, {proj_dim}")
        if not classifier_init_std > 0:
            raise ValueError(f"classifier_init_std must be > 0; got {classifier_init_std!r}")
        self.in_channels = in_channels
        self.classifier_init_std = float(classifier_init_std)
        self.bnneck = nn.BatchNorm1d(in_channels)
        self.bnneck.bias.requires_grad_(not freeze_bnneck_bias)
        self.classifier: nn.Linear | None = None
        self.reset_classifier(num_classes)
        self.projection: nn.Sequential | None = None
        if proj_dim > 0:
            self.projection = nn.Sequential(
                nn.Linear(in_channels, in_channels),
                nn.BatchNorm1d(in_channels),
                nn.ReLU(inplace=True),
                nn.Linear(in_channels, proj_dim),
            )

    @property
    def num_classes(self) -> int:
        """Identities of the ID classifier (0 when there is none)."""
        return 0 if self.classifier is None else self.classifier.out_features

    def reset_classifier(self, num_classes: int) -> None:
        """Replace the ID classifier by a fresh one for ``num_classes`` identities (0: none).

        The weights start from N(0, ``classifier_init_std``²) (0.001 as in AGW).
        """
        if not isinstance(num_classes, int) or num_classes < 0:
            raise ValueError(f"num_classes must be an int >= 0 (0: no classifier); got {num_classes!r}")
        self.classifier = None
        if num_classes > 0:
            weight = self.bnneck.weight
            self.classifier = nn.Linear(
                self.in_channels, num_classes, bias=False, device=weight.device, dtype=weight.dtype
            )
            nn.init.normal_(self.classifier.weight, std=self.classifier_init_std)

    def forward(self, pooled: torch.Tensor, pre_logits: bool = False) -> HeadOutput | torch.Tensor:
        """
        Args:
            pooled: the pooled feature, (B, C).
            pre_logits: return only the BNNeck features (the test-time embedding part).

        Returns:
            (B, C) BNNeck features with ``pre_logits``, else a [`HeadOutput`][wrim.models.HeadOutput].
        """
        features = self.bnneck(pooled)  # (B, C)
        if pre_logits:
            return features
        logits = None if self.classifier is None else self.classifier(features)  # (B, K)
        projection = None if self.projection is None else self.projection(features)  # (B, P)
        return HeadOutput(features, logits, projection)


@dataclass
class WRIMNetOutput:
    """What [`WRIMNet`][wrim.models.WRIMNet] returns in training mode; every dict is keyed by head name.

    Head names: ``"p5_global"``, ``"p5_part0"``, ..., ``"p5_part{local_parts-1}"``, ``"p4_global"``.
    """

    logits: dict[str, torch.Tensor]  # (B, K) per head; empty when the model has num_classes=0
    features: dict[str, torch.Tensor]  # (B, C_head) BNNeck features
    projections: dict[str, torch.Tensor]  # (B, P) contrastive projections (not normalised) of the projection_heads
    pooled: dict[str, torch.Tensor] = field(default_factory=dict)  # (B, C_head) pooled features before the BNNeck

    @property
    def p5_projection(self) -> torch.Tensor:
        """The P5 global projection, (B, P): CMKIC's / AICL's P5 input."""
        return self.projections["p5_global"]

    @property
    def p4_projection(self) -> torch.Tensor:
        """The P4 global projection, (B, P): AICL's auxiliary input."""
        return self.projections["p4_global"]

    def rows(self, index: torch.Tensor) -> WRIMNetOutput:
        """This output with every (B, ...) tensor's rows taken in ``index`` order (B,)."""
        return WRIMNetOutput(
            logits={name: value[index] for name, value in self.logits.items()},
            features={name: value[index] for name, value in self.features.items()},
            projections={name: value[index] for name, value in self.projections.items()},
            pooled={name: value[index] for name, value in self.pooled.items()},
        )
