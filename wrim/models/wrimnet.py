"""WRIMNet - WRIM-Net (Wu et al., ECCV 2024, arXiv:2408.10624) over any timm backbone, and its registered variants.

Shapes: ``B`` batch, ``C_k`` channels of stage ``k``, ``H_k, W_k`` its map, ``K`` identities, ``P`` projection
width, ``D`` test embedding width (the sum of the embedded heads' widths).

docs: The paper, section Network:

```text
X_k  = Stage_k(X_{k-1})                              backbone stage k (Block1..Block4)      [P][N]
X_k  = MIIM^{m}_k(X_k)   k in separate_stages       one copy per modality m                [P][N]
X_k  = MIIM_k(X_k)       k in shared_stages         one copy for both modalities           [P][N]
P4 = X_3,  P5 = X_4                                 maps after their MIIMs                 [N]
heads: p5_global = GAP(P5); p5_part{i} = GAP(i-th horizontal strip of P5) ([D] strips);
       p4_global = GAP(P4)                           each -> BNNeck -> classifier / projection  [N]
eval:  e = L2norm(concat_h BNNeck_h)                 all heads by default                   [P] + [D]
```

With no MIIM (``separate_stages=(), shared_stages=()``) this is the AGW-style BNNeck baseline the paper improves
on (``baseline_resnet50``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from wrim._checks import check_modalities, check_modality_split, checks_enabled
from wrim.flip import flip_average
from wrim.layers import MIIM, ModalityMIIM
from wrim.modality import VISIBLE
from wrim.models._factory import records_init_args
from wrim.models._registry import register_model
from wrim.models.backbone import NUM_STAGES, StagedBackbone, _pair
from wrim.models.heads import EmbeddingHead

__all__ = ["WRIMNet", "WRIMNetOutput"]


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


class WRIMNet(nn.Module):
    """WRIM-Net: a staged timm backbone with MIIMs after chosen stages and four BNNeck heads.

    ``forward(images, modalities)``: training -> [`WRIMNetOutput`][wrim.models.WRIMNetOutput]; eval -> the (B, D)
    L2-normalised test embedding. ``embed(images, modalities, flip=True)`` adds flip averaging.
    """

    @records_init_args  # init_args: what save_pretrained writes to rebuild the model
    def __init__(
        self,
        backbone: str = "resnet50",
        num_classes: int | None = None,
        *,
        pretrained: bool = False,
        pretrained_file: str | Path | None = None,
        img_size: int | tuple[int, int] = (288, 144),
        separate_stages: Sequence[int] = (1, 2),
        shared_stages: Sequence[int] = (3, 4),
        reduction: int | Sequence[int] = (2, 2, 4, 4),
        token_stride: int = 16,
        stride: int | Sequence[int] | None = None,
        num_heads: int | Sequence[int] | None = None,
        kv_pool: int | Sequence[int] = 1,
        pos_embed: str | None = "sincos",
        last_stride: int | None = None,
        last_stage_dilation: bool = False,
        local_parts: int = 2,
        proj_dim: int = 128,
        projection_heads: Sequence[str] | None = ("p5_global", "p4_global"),
        embed_heads: Sequence[str] | None = None,
        miim_kwargs: dict | None = None,
        backbone_kwargs: dict | None = None,
        head_kwargs: dict | None = None,
    ) -> None:
        """
        Args:
            backbone: any timm model name with a ``feature_info`` of at least four levels (CNNs, Swin, ViTs, ...);
                see [`StagedBackbone`][wrim.models.StagedBackbone] for where the stages end.
            num_classes: training identities ``K`` of the ID classifiers (395 on SYSU-MM01); 0 builds none.
                Required.
            pretrained: load timm's ImageNet weights into the backbone (needs internet).
            pretrained_file: local backbone weights (``.safetensors`` or a torch file, loaded safely); implies
                ``pretrained``.
            img_size: (H, W) training/test size: 288x144 (the field) or 384x128 ([N]). Token-sequence and
                fixed-size backbones (ViTs, Swin, MaxViT, ...) run only at this size; CNNs accept any size large
                enough for the stages.
            separate_stages: 1-based stages followed by a modality-specific ``ModalityMIIM`` ([P][N]: 1, 2).
            shared_stages: 1-based stages followed by a shared ``MIIM`` ([P][N]: 3, 4).
            reduction: MIIM channel reduction ``r`` per stage 1..4 (or one int for all) ([N]: 2, 2, 4, 4).
            token_stride: the input stride of the one token grid every GRI attends over (paper: 16, the 18x9 grid
                at 288x144): stage ``k``'s MIIM stride is ``max(1, token_stride // R_k)`` for its measured reduction
                ``R_k``, i.e. 4, 2, 1, 1 on a last-stride-1 ResNet and 1 everywhere on a ViT/16. [P][N] + [D]
            stride: explicit MIIM spatial stride ``s`` per stage 1..4 (or one int); overrides ``token_stride``.
            num_heads: GRI heads per stage (or one int); must divide ``C_k / r_k``. None: 8 ([N]), or the largest
                divisor of ``C_k / r_k`` below 8 where 8 does not divide it. [D]
            kv_pool: GRI key/value pooling per stage (or one int), 1 = none. [D]
            pos_embed: GRI positional encoding, ``"sincos"`` or None. [D]
            last_stride: None (default): stage 4 at stage 3's resolution ([P][N]) where the backbone allows it, else
                its own stride with a warning; 1: the same, but a ValueError where it cannot; 2: the backbone's own.
            last_stage_dilation: with last stride 1 through timm's ``output_stride``, keep timm's dilated last stage
                instead of the re-id convention (stride 1, dilation 1). [D]
            local_parts: horizontal strips of P5, each with its own head ([N]: two, b11 and b12; strips [D]);
                0 for none.
            proj_dim: contrastive projection width ``P`` ([N]: 128).
            projection_heads: heads with a projection MLP; None = all. [N] gives every head one, but only the P5
                and P4 global projections have a loss (CMKIC / AICL, docs: The paper, section Losses), so by default
                the part heads get none: no parameter without gradient (which DistributedDataParallel would reject). [D]
            embed_heads: heads whose BNNeck features form the test embedding, in order; None = all heads. [D]
            miim_kwargs: further [`MIIM`][wrim.layers.MIIM] arguments for every MIIM (e.g. ``out_norm``).
            backbone_kwargs: further ``timm.create_model`` arguments (e.g. ``drop_path_rate``).
            head_kwargs: further ``wrim.models.heads.EmbeddingHead`` arguments for every head (e.g.
                ``freeze_bnneck_bias``, ``classifier_init_std``).
        """
        super().__init__()
        self._check_arguments(num_classes, local_parts, separate_stages, shared_stages)
        self.img_size = _pair(img_size, "img_size")
        self.local_parts = local_parts
        self.backbone = StagedBackbone(
            backbone,
            pretrained=pretrained,
            pretrained_file=pretrained_file,
            img_size=self.img_size,
            last_stride=last_stride,
            last_stage_dilation=last_stage_dilation,
            **(backbone_kwargs or {}),
        )
        per_stage = self._miim_arguments(token_stride, stride, reduction, num_heads, kv_pool)
        self._build_miims(backbone, per_stage, pos_embed=pos_embed, **(miim_kwargs or {}))
        self.check_image_size(self.img_size)
        self._build_heads(num_classes, proj_dim, projection_heads, embed_heads, head_kwargs or {})
        self.grad_checkpointing = False

    # ------------------------------------------------------------------------------------------ build steps

    def _check_arguments(
        self, num_classes: int | None, local_parts: int, separate_stages: Sequence[int], shared_stages: Sequence[int]
    ) -> None:
        """Validate the arguments that need no backbone; set ``separate_stages`` and ``shared_stages``."""
        if num_classes is None:
            raise TypeError(
                "WRIMNet needs num_classes: the number of training identities (e.g. 395 for SYSU-MM01, "
                "206 for RegDB, 713 for LLCM), or 0 for no ID classifier"
            )
        if not isinstance(local_parts, int) or local_parts < 0:
            raise ValueError(f"local_parts must be an int >= 0; got {local_parts!r}")
        self.separate_stages = _check_stages(separate_stages, "separate_stages")
        self.shared_stages = _check_stages(shared_stages, "shared_stages")
        both = set(self.separate_stages) & set(self.shared_stages)
        if both:
            raise ValueError(
                f"stages {sorted(both)} are in both separate_stages and shared_stages; a stage gets one MIIM kind"
            )

    def _miim_arguments(
        self,
        token_stride: int,
        stride: int | Sequence[int] | None,
        reduction: int | Sequence[int],
        num_heads: int | Sequence[int] | None,
        kv_pool: int | Sequence[int],
    ) -> dict[str, tuple[int | None, ...]]:
        """Each per-stage MIIM argument as a 4-tuple (strides from ``token_stride`` unless given); sets
        ``token_stride`` and ``miim_strides``."""
        if not isinstance(token_stride, int) or token_stride < 1:
            raise ValueError(f"token_stride must be a positive int (paper: 16); got {token_stride!r}")
        if stride is None:
            stride = tuple(max(1, token_stride // r) for r in self.backbone.reductions)
        per_stage = {
            "reduction": _per_stage(reduction, "reduction"),
            "stride": _per_stage(stride, "stride"),
            "num_heads": _per_stage(num_heads, "num_heads", allow_none=True),
            "kv_pool": _per_stage(kv_pool, "kv_pool"),
        }
        self.token_stride = token_stride
        self.miim_strides = per_stage["stride"]
        return per_stage

    def _build_miims(self, backbone: str, per_stage: dict[str, tuple[int | None, ...]], **miim_kwargs) -> None:
        """A ``ModalityMIIM`` after each separate stage and a ``MIIM`` after each shared one, hooked into the
        backbone (``miims``)."""
        self.miims = nn.ModuleDict()
        for index in sorted(self.separate_stages + self.shared_stages):
            kwargs = {key: values[index - 1] for key, values in per_stage.items()}
            if miim_kwargs.get("gate") == "static" and "gate_grid" not in miim_kwargs:  # the stage's region grid
                kwargs["gate_grid"] = self._region_grid(index, kwargs["stride"])
            kind = ModalityMIIM if index in self.separate_stages else MIIM
            try:
                self.miims[f"stage{index}"] = kind(self.backbone.channels[index - 1], **kwargs, **miim_kwargs)
            except ValueError as err:
                raise ValueError(
                    f"cannot build the {kind.__name__} after stage {index} of {backbone!r} "
                    f"({self.backbone.channels[index - 1]} channels, {kwargs}): {err}"
                ) from err
            self.backbone.set_block(index, self.miims[f"stage{index}"], takes_modalities=kind is ModalityMIIM)

    def _region_grid(self, stage: int, stride: int) -> tuple[int, int]:
        """``(⌈H_k / s⌉, ⌈W_k / s⌉)`` of stage ``stage`` at ``img_size``, ``H_k = ⌈H / R_k⌉`` (a static gate's grid)."""
        reduction = self.backbone.reductions[stage - 1]
        stage_size = [-(-size // reduction) for size in self.img_size]  # (H_k, W_k)
        return tuple(-(-size // stride) for size in stage_size)

    def _build_heads(
        self,
        num_classes: int,
        proj_dim: int,
        projection_heads: Sequence[str] | None,
        embed_heads: Sequence[str] | None,
        head_kwargs: dict,
    ) -> None:
        """The BNNeck heads (P5 global, the P5 strips, P4 global); sets ``head_names``, ``projection_heads``,
        ``embed_heads`` and ``num_features``."""
        channels = self.backbone.channels
        head_channels = {"p5_global": channels[3]}
        head_channels.update({f"p5_part{i}": channels[3] for i in range(self.local_parts)})
        head_channels["p4_global"] = channels[2]
        self.head_names: tuple[str, ...] = tuple(head_channels)
        self.projection_heads = _check_heads(projection_heads, self.head_names, "projection_heads")
        self.embed_heads = _check_heads(embed_heads, self.head_names, "embed_heads")
        self.heads = nn.ModuleDict(
            {
                name: EmbeddingHead(width, num_classes, proj_dim if name in self.projection_heads else 0, **head_kwargs)
                for name, width in head_channels.items()
            }
        )
        self.num_features = sum(head_channels[name] for name in self.embed_heads)

    # --------------------------------------------------------------------------------------------- validation

    @property
    def num_classes(self) -> int:
        """Identities of the ID classifiers (0 when there are none)."""
        return self.heads["p5_global"].num_classes

    def check_image_size(self, img_size: tuple[int, int]) -> None:
        """Raise a ValueError unless (H, W) images give every MIIM and the P5 strips at least one region."""
        height, width = img_size
        if self.backbone.fixed_size and (height, width) != self.backbone.img_size:
            raise ValueError(
                f"this WRIMNet's backbone {self.backbone.name!r} runs only at the size it was built for, "
                f"img_size={self.backbone.img_size}; got images of "
                f"{(height, width)}. Resize the images or build the model with img_size=({height}, {width})"
            )
        need_h, need_w = 1, 1
        for index in range(1, NUM_STAGES + 1):
            stride = self.miim_strides[index - 1] if f"stage{index}" in self.miims else 1
            parts = max(self.local_parts, 1) if index == NUM_STAGES else 1
            reduction = self.backbone.reductions[index - 1]
            need_h, need_w = max(need_h, reduction * stride, reduction * parts), max(need_w, reduction * stride)
        if height < need_h or width < need_w:
            raise ValueError(
                f"images of {(height, width)} are too small for {self.backbone.name!r} with MIIM strides "
                f"{self.miim_strides} and {self.local_parts} P5 strips (stage reductions {self.backbone.reductions});"
                f" use at least ({need_h}, {need_w}), e.g. the field's (288, 144)"
            )

    def _check_inputs(self, images: torch.Tensor, modalities: torch.Tensor | None) -> torch.Tensor | None:
        if not isinstance(images, torch.Tensor):
            raise TypeError(f"images must be a torch.Tensor (B, 3, H, W); got {type(images).__name__}")
        if images.dim() != 4 or images.shape[1] != self.backbone.in_chans:
            raise ValueError(
                f"images must be (B, {self.backbone.in_chans}, H, W); got shape {tuple(images.shape)}"
                + (" - add a batch dimension with images[None]" if images.dim() == 3 else "")
            )
        if not images.is_floating_point():
            raise TypeError(f"images must be a float tensor (normalised); got {images.dtype}")
        self.check_image_size(tuple(images.shape[-2:]))
        if modalities is None:
            if self.separate_stages:
                raise ValueError(
                    f"modalities is required: this model has modality-specific MIIMs after stages "
                    f"{self.separate_stages}; pass a (B,) tensor with 0 = visible, 1 = infrared"
                )
            return None
        return check_modalities(modalities, images.shape[0]).to(images.device)

    # ------------------------------------------------------------------------------------------------ forward

    def forward_features(
        self, images: torch.Tensor, modalities: torch.Tensor | None = None, *, num_visible: int | None = None
    ) -> dict[str, torch.Tensor]:
        """Backbone stages with their MIIMs.

        Args:
            images: (B, 3, H, W) float images.
            modalities: (B,) ids, 0 = visible, 1 = infrared (needed when there are separate stages).
            num_visible: keyword-only; for a modality-sorted batch (``n`` visible rows first, checked), ``n``: each
                ``ModalityMIIM`` copy then runs on its own rows only. None (default) for any order.

        Returns:
            ``{"p4": (B, C_3, H_3, W_3), "p5": (B, C_4, H_4, W_4)}``, both after their MIIMs.
        """
        if checks_enabled():
            modalities = self._check_inputs(images, modalities)
            if num_visible is not None and modalities is not None:
                check_modality_split(modalities, num_visible)
        return self._features(images, modalities, num_visible)

    def _features(
        self, images: torch.Tensor, modalities: torch.Tensor | None, num_visible: int | None
    ) -> dict[str, torch.Tensor]:
        """`forward_features` on validated inputs: the ModalityMIIMs do not check them again."""
        maps = self.backbone(images, modalities, num_visible, checked=True)  # [(B, C_k, H_k, W_k)] after the MIIMs
        return {"p4": maps[2], "p5": maps[3]}

    def pool(self, features: dict[str, torch.Tensor], heads: Sequence[str] | None = None) -> dict[str, torch.Tensor]:
        """Each head's pooled (B, C) input: GAP of P5, of P5's horizontal strips, of P4.

        Strip ``i`` of ``n`` covers rows ``⌊i·H/n⌋ .. ⌈(i+1)·H/n⌉`` (adaptive-pooling bounds).
        """
        p5 = features["p5"]
        height = p5.shape[2]
        pooled = {}
        for name in self.head_names if heads is None else heads:
            if name == "p5_global":
                pooled[name] = p5.mean(dim=(2, 3))  # (B, C_4)
            elif name == "p4_global":
                pooled[name] = features["p4"].mean(dim=(2, 3))  # (B, C_3)
            else:
                part = int(name.removeprefix("p5_part"))
                start = part * height // self.local_parts
                stop = -(-(part + 1) * height // self.local_parts)
                pooled[name] = p5[:, :, start:stop].mean(dim=(2, 3))  # (B, C_4)
        return pooled

    def forward_head(self, features: dict[str, torch.Tensor], pre_logits: bool = False) -> WRIMNetOutput | torch.Tensor:
        """Heads on the maps of [`forward_features()`][wrim.models.WRIMNet.forward_features].

        Args:
            features: ``{"p4": ..., "p5": ...}``.
            pre_logits: return the test embedding (B, D): the BNNeck features of ``embed_heads`` concatenated and
                L2-normalised.

        Returns:
            the (B, D) embedding with ``pre_logits``, else a [`WRIMNetOutput`][wrim.models.WRIMNetOutput].
        """
        if pre_logits:
            pooled = self.pool(features, self.embed_heads)
            parts = [self.heads[name](pooled[name], pre_logits=True) for name in self.embed_heads]
            return F.normalize(torch.cat(parts, dim=1), dim=1)  # (B, D)
        pooled = self.pool(features)
        outputs = {name: self.heads[name](pooled[name]) for name in self.head_names}
        return WRIMNetOutput(
            logits={name: out.logits for name, out in outputs.items() if out.logits is not None},
            features={name: out.features for name, out in outputs.items()},
            projections={name: out.projection for name, out in outputs.items() if out.projection is not None},
            pooled=pooled,
        )

    def forward(
        self, images: torch.Tensor, modalities: torch.Tensor | None = None, num_visible: int | None = None
    ) -> WRIMNetOutput | torch.Tensor:
        """
        Args:
            images: (B, 3, H, W) float images.
            modalities: (B,) ids, 0 = visible, 1 = infrared.
            num_visible: the batch's number of visible samples as a Python int (e.g. counted on the host from the
                loader's CPU ids; positional too, as torch.onnx.export(dynamo=False) passes it), in any order.
                Given, the images are stably sorted by modality at the input and every output row is put back in the
                input order, so each ``ModalityMIIM`` copy
                computes its gate once per sample of its own modality ([D], docs: Layers); the values equal
                those of ``num_visible=None``. A static size: ``torch.compile`` specialises on it.

        Returns:
            In training mode a [`WRIMNetOutput`][wrim.models.WRIMNetOutput]; in eval mode the (B, D)
                L2-normalised test embedding.
        """
        return self._run(images, modalities, num_visible, pre_logits=not self.training)

    def _run(
        self, images: torch.Tensor, modalities: torch.Tensor | None, num_visible: int | None, pre_logits: bool
    ) -> WRIMNetOutput | torch.Tensor:
        """`forward`'s body: validate the inputs once, route the batch by modality, run the heads.

        Check at the entrance, trust inside: ``modalities`` is validated here (and ``num_visible`` against it);
        the ModalityMIIMs get them with ``checked=True``. A single-modality batch (``num_visible`` 0 or B) is not
        reordered.
        """
        if isinstance(num_visible, torch.fx.Proxy):  # fx symbolic tracing: trace the any-order formulation
            num_visible = None
        if checks_enabled():
            modalities = self._check_inputs(images, modalities)
        if num_visible is None or modalities is None or not self.separate_stages:
            return self.forward_head(self._features(images, modalities, None), pre_logits=pre_logits)
        order = None if num_visible in (0, images.shape[0]) else torch.argsort(modalities, stable=True)  # (B,)
        routed = modalities if order is None else modalities[order]  # visible rows first, each in input order
        if checks_enabled():
            check_modality_split(routed, num_visible)
        if order is None:
            return self.forward_head(self._features(images, routed, num_visible), pre_logits=pre_logits)
        features = self._features(images[order], routed, num_visible)
        return _rows(self.forward_head(features, pre_logits=pre_logits), torch.argsort(order))

    def embed(self, images: torch.Tensor, modalities: torch.Tensor | None = None, flip: bool = True) -> torch.Tensor:
        """The test embedding, optionally averaged with the horizontally flipped images'. Call ``eval()`` first.

        With ``flip`` the two embeddings are summed and normalised again ([D],
        [`wrim.evaluation.flip_average()`][wrim.evaluation.flip_average]; DEEN's unnormalised sum:
        docs: Evaluation). In eval mode the batch's visible count is taken on the host ([D]: a device
        synchronisation on an accelerator) and the batch goes through ``self(images, modalities, num_visible=n)``:
        each ModalityMIIM copy computes only its own samples, with the values of the any-order formulation, and a
        ``model.compile()``-d model runs compiled (specialised on the count).

        Args:
            images: (B, 3, H, W) float images.
            modalities: (B,) ids, 0 = visible, 1 = infrared.
            flip: also embed ``images.flip(-1)`` and average (one forward pass on a 2B batch).

        Returns:
            (B, D), unit norm.
        """
        return flip_average(self._embed, images, modalities) if flip else self._embed(images, modalities)

    def _embed(self, images: torch.Tensor, modalities: torch.Tensor | None) -> torch.Tensor:
        """(B, 3, H, W), (B,) -> (B, D): the eval forward with the host-counted ``num_visible``."""
        if self.training:
            return self._run(images, modalities, None, pre_logits=True)
        countable = isinstance(modalities, torch.Tensor) and modalities.dim() == 1 and bool(self.separate_stages)
        num_visible = int((modalities == VISIBLE).sum()) if countable and _eager() else None
        return self(images, modalities, num_visible=num_visible)

    # ------------------------------------------------------------------------------------------- timm interface

    def get_classifier(self) -> dict[str, nn.Linear | None]:
        """Each head's ID classifier."""
        return {name: self.heads[name].classifier for name in self.head_names}

    def reset_classifier(self, num_classes: int) -> None:
        """Give every head a fresh ID classifier for ``num_classes`` identities (0: remove them)."""
        for name in self.head_names:
            self.heads[name].reset_classifier(num_classes)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """timm's gradient checkpointing of the backbone (its stages recomputed in the backward pass).

        A MIIM hooked after a recomputed stage runs again in the recomputation, so BatchNorm running statistics
        update twice per step (as with timm's own checkpointing).
        """
        self.backbone.set_grad_checkpointing(enable)
        self.grad_checkpointing = enable


def _eager() -> bool:
    """Whether this call runs eagerly (not under torch.compile / export, jit tracing or fx symbolic tracing)."""
    return checks_enabled() and not torch.jit.is_tracing() and not torch.compiler.is_compiling()


def _rows(output: WRIMNetOutput | torch.Tensor, index: torch.Tensor) -> WRIMNetOutput | torch.Tensor:
    """``output`` with every (B, ...) tensor's rows taken in ``index`` order (B,)."""
    if isinstance(output, torch.Tensor):
        return output[index]
    return WRIMNetOutput(
        logits={name: value[index] for name, value in output.logits.items()},
        features={name: value[index] for name, value in output.features.items()},
        projections={name: value[index] for name, value in output.projections.items()},
        pooled={name: value[index] for name, value in output.pooled.items()},
    )


def _check_stages(stages: Sequence[int], name: str) -> tuple[int, ...]:
    """Validate 1-based stage indices (Block1..Block4)."""
    if isinstance(stages, int):
        stages = (stages,)
    stages = tuple(stages)
    bad = [s for s in stages if not isinstance(s, int) or not 1 <= s <= NUM_STAGES]
    if bad:
        raise ValueError(
            f"{name} holds 1-based stage indices 1..{NUM_STAGES} (the paper's Block1..Block4); got {bad} in {stages}"
        )
    if len(set(stages)) != len(stages):
        raise ValueError(f"{name} lists a stage twice: {stages}")
    return tuple(sorted(stages))


def _check_heads(heads: Sequence[str] | None, names: tuple[str, ...], argument: str) -> tuple[str, ...]:
    """A non-empty subset of the head names (None = all), in the given order."""
    if heads is None:
        return names
    heads = (heads,) if isinstance(heads, str) else tuple(heads)
    if not heads or any(name not in names for name in heads):
        raise ValueError(f"{argument} must be a non-empty subset of {names}; got {heads!r}")
    return heads


def _per_stage(value: int | Sequence[int] | None, name: str, allow_none: bool = False) -> tuple[int | None, ...]:
    """One positive int per stage 1..4 from an int or a 4-sequence (None entries where ``allow_none``)."""
    values = (value,) * NUM_STAGES if value is None or isinstance(value, int) else tuple(value)

    def valid(v) -> bool:
        return (v is None and allow_none) or (isinstance(v, int) and v >= 1)

    if len(values) != NUM_STAGES or not all(valid(v) for v in values):
        raise ValueError(f"{name} must be a positive int or {NUM_STAGES} of them (stages 1..4); got {value!r}")
    return values


# ----------------------------------------------------------------------------------------------- entrypoints


def _create_wrimnet(pretrained: bool, defaults: dict, pretrained_tag: str | None = None, **kwargs) -> WRIMNet:
    """A WRIMNet from an entrypoint's ``defaults``; every keyword of ``kwargs`` (``backbone`` too) overrides them.

    ``pretrained_tag`` picks timm's weights for the backbone (``"tv_in1k"``: ``resnet50.tv_in1k``, torchvision's
    original ImageNet weights, which AGW / CAJ / DEEN start from; docs: Reproducing the paper, section Which weights).
    """
    kwargs = dict(defaults, **kwargs)
    if pretrained_tag is not None:
        base, _, tag = kwargs["backbone"].partition(".")
        if tag and tag != pretrained_tag:
            raise ValueError(
                f"backbone {kwargs['backbone']!r} already names weights {tag!r}; pretrained_tag={pretrained_tag!r} "
                "contradicts it: give one of the two"
            )
        kwargs["backbone"] = f"{base}.{pretrained_tag}"
    return WRIMNet(pretrained=pretrained, **kwargs)


_NO_MIIM = {"separate_stages": (), "shared_stages": ()}


@register_model
def wrimnet_resnet50(pretrained: bool = False, **kwargs) -> WRIMNet:
    """WRIM-Net as in the paper: ResNet-50, last stride 1, separate MIIMs after stages 1-2, shared after 3-4."""
    return _create_wrimnet(pretrained, {"backbone": "resnet50"}, **kwargs)


@register_model
def wrimnet_resnet18(pretrained: bool = False, **kwargs) -> WRIMNet:
    """WRIM-Net on ResNet-18 (CPU-sized; same placements and strides as the paper)."""
    return _create_wrimnet(pretrained, {"backbone": "resnet18"}, **kwargs)


@register_model
def wrimnet_resnet101(pretrained: bool = False, **kwargs) -> WRIMNet:
    """WRIM-Net on ResNet-101."""
    return _create_wrimnet(pretrained, {"backbone": "resnet101"}, **kwargs)


@register_model
def wrimnet_convnext_tiny(pretrained: bool = False, **kwargs) -> WRIMNet:
    """WRIM-Net on ConvNeXt-Tiny (last stage at stride 1, undilated; the paper's placements and strides)."""
    return _create_wrimnet(pretrained, {"backbone": "convnext_tiny"}, **kwargs)


@register_model
def wrimnet_vit_small(pretrained: bool = False, **kwargs) -> WRIMNet:
    """WRIM-Net on ViT-S/16: MIIMs after the four 3-block groups, stride 1 everywhere.

    Every ViT stage already sits at 1/16 resolution, the grid ``token_stride=16`` asks for (the paper's strides
    4, 2, 1, 1 on ResNet-50), so the MIIMs attend over the same token grid without further compression. [D]
    """
    return _create_wrimnet(pretrained, {"backbone": "vit_small_patch16_224"}, **kwargs)


@register_model
def baseline_resnet50(pretrained: bool = False, **kwargs) -> WRIMNet:
    """The AGW-style baseline: ResNet-50, last stride 1, the same BNNeck heads, no MIIM."""
    return _create_wrimnet(pretrained, {"backbone": "resnet50", **_NO_MIIM}, **kwargs)


@register_model
def baseline_resnet18(pretrained: bool = False, **kwargs) -> WRIMNet:
    """The baseline on ResNet-18 (CPU-sized), no MIIM."""
    return _create_wrimnet(pretrained, {"backbone": "resnet18", **_NO_MIIM}, **kwargs)
