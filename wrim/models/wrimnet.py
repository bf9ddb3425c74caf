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

import functools
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from wrim._checks import checks_enabled
from wrim.flip import flip_average
from wrim.layers import MIIM, ModalityBatch, ModalityMIIM
from wrim.modality import VISIBLE
from wrim.models._arguments import check_heads, check_images, check_placements, miim_arguments, min_image_size, pair
from wrim.models._factory import records_init_args
from wrim.models._registry import register_model
from wrim.models.backbone import NUM_STAGES, StagedBackbone
from wrim.models.heads import EmbeddingHead, WRIMNetOutput

__all__ = ["WRIMNet", "WRIMNetOutput"]


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
        self.img_size = pair(img_size, "img_size")
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
        per_stage = miim_arguments(self.backbone.reductions, token_stride, stride, reduction, num_heads, kv_pool)
        self.token_stride, self.miim_strides = token_stride, per_stage["stride"]
        self._build_miims(backbone, per_stage, pos_embed=pos_embed, **(miim_kwargs or {}))
        self.check_image_size(self.img_size)
        self._build_heads(num_classes, proj_dim, projection_heads, embed_heads, head_kwargs or {})
        self.grad_checkpointing = False
        self._architecture: str | None = None  # set by create_model

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
        self.separate_stages, self.shared_stages = check_placements(separate_stages, shared_stages)

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
        self.projection_heads = check_heads(projection_heads, self.head_names, "projection_heads")
        self.embed_heads = check_heads(embed_heads, self.head_names, "embed_heads")
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

    @property
    def architecture(self) -> str | None:
        """The registered name that rebuilds this model (what ``save_pretrained`` writes): the one
        ``create_model`` built it by, else the entrypoint of its backbone (``WRIMNet("resnet18")``:
        ``wrimnet_resnet18``, ``baseline_resnet18`` without MIIMs); None when no registered name applies."""
        return self._architecture or _variant_of(self.backbone.name, bool(self.miims))

    @architecture.setter
    def architecture(self, name: str) -> None:
        self._architecture = name

    def check_image_size(self, img_size: tuple[int, int]) -> None:
        """Raise a ValueError unless (H, W) images give every MIIM and the P5 strips at least one region."""
        height, width = img_size
        if self.backbone.fixed_size and (height, width) != self.backbone.img_size:
            raise ValueError(
                f"this WRIMNet's backbone {self.backbone.name!r} runs only at the size it was built for, "
                f"img_size={self.backbone.img_size}; got images of "
                f"{(height, width)}. Resize the images or build the model with img_size=({height}, {width})"
            )
        strides = [self.miim_strides[k] if f"stage{k + 1}" in self.miims else 1 for k in range(NUM_STAGES)]
        need_h, need_w = min_image_size(self.backbone.reductions, strides, self.local_parts)
        if height < need_h or width < need_w:
            raise ValueError(
                f"images of {(height, width)} are too small for {self.backbone.name!r} with MIIM strides "
                f"{self.miim_strides} and {self.local_parts} P5 strips (stage reductions {self.backbone.reductions});"
                f" use at least ({need_h}, {need_w}), e.g. the field's (288, 144)"
            )

    def _modality_batch(
        self, images: torch.Tensor, modalities: torch.Tensor | ModalityBatch | None, num_visible: int | None
    ) -> ModalityBatch | None:
        """The inputs checked once, here (the images and, into one checked value, the modalities); the
        ModalityMIIMs trust the value. None without modalities; ``num_visible`` is dropped where no block uses it."""
        if isinstance(modalities, ModalityBatch) and modalities.checked:
            return modalities  # from forward, which checked the inputs
        if checks_enabled():
            check_images(images, self.backbone.in_chans)
            self.check_image_size(tuple(images.shape[-2:]))
        if modalities is None:
            if self.separate_stages and checks_enabled():
                raise ValueError(
                    f"modalities is required: this model has modality-specific MIIMs after stages "
                    f"{self.separate_stages}; pass a (B,) tensor with 0 = visible, 1 = infrared"
                )
            return None
        batch = modalities if isinstance(modalities, ModalityBatch) else ModalityBatch.of(modalities, num_visible)
        if not self.separate_stages:
            batch = ModalityBatch(batch.ids, None, batch.checked)
        return batch.validated(images.shape[0], images.device)

    # ------------------------------------------------------------------------------------------------ forward

    def forward_features(
        self,
        images: torch.Tensor,
        modalities: torch.Tensor | ModalityBatch | None = None,
        *,
        num_visible: int | None = None,
    ) -> dict[str, torch.Tensor]:
        """Backbone stages with their MIIMs.

        Args:
            images: (B, 3, H, W) float images.
            modalities: (B,) ids, 0 = visible, 1 = infrared (needed when there are separate stages); or a
                [`ModalityBatch`][wrim.layers.ModalityBatch] (a checked one is trusted).
            num_visible: keyword-only; for a modality-sorted batch (``n`` visible rows first, checked), ``n``: each
                ``ModalityMIIM`` copy then runs on its own rows only. None (default) for any order.

        Returns:
            ``{"p4": (B, C_3, H_3, W_3), "p5": (B, C_4, H_4, W_4)}``, both after their MIIMs.
        """
        batch = self._modality_batch(images, modalities, num_visible)
        maps = self.backbone(images, batch)  # [(B, C_k, H_k, W_k)] after the MIIMs, which get the checked batch
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
        order = None
        if self.separate_stages and _mixed(modalities, num_visible, images.shape[0]):
            order = torch.argsort(modalities, stable=True)  # (B,) visible rows first, each in input order
            images, modalities = images[order], modalities[order]
        batch = self._modality_batch(images, modalities, num_visible)  # checked once: the split after the sort
        output = self.forward_head(self.forward_features(images, batch), pre_logits=not self.training)
        if order is None:
            return output
        back = torch.argsort(order)  # (B,) every row back in the input order
        return output[back] if isinstance(output, torch.Tensor) else output.rows(back)

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
        if flip:
            return flip_average(functools.partial(self.embed, flip=False), images, modalities)
        if self.training:  # forward would return the training outputs
            return self.forward_head(self.forward_features(images, modalities), pre_logits=True)
        countable = isinstance(modalities, torch.Tensor) and modalities.dim() == 1 and bool(self.separate_stages)
        eager = checks_enabled() and not torch.jit.is_tracing() and not torch.compiler.is_compiling()  # no fx either
        num_visible = int((modalities == VISIBLE).sum()) if countable and eager else None
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


def _mixed(modalities: torch.Tensor | None, num_visible: int | None, batch: int) -> bool:
    """Whether ``forward`` sorts the batch: (B,) ids with an int ``num_visible`` of both modalities (anything else,
    invalid input included, goes unsorted to the checks; a traced ``num_visible`` is no int)."""
    shaped = isinstance(modalities, torch.Tensor) and modalities.dim() == 1 and modalities.shape[0] == batch
    return shaped and isinstance(num_visible, int) and 0 < num_visible < batch


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
#: each registered WRIMNet: the arguments its entrypoint fixes (any other WRIMNet argument may be given to it)
_VARIANTS: dict[str, dict] = {
    "wrimnet_resnet50": {"backbone": "resnet50"},
    "wrimnet_resnet18": {"backbone": "resnet18"},
    "wrimnet_resnet101": {"backbone": "resnet101"},
    "wrimnet_convnext_tiny": {"backbone": "convnext_tiny"},
    "wrimnet_vit_small": {"backbone": "vit_small_patch16_224"},
    "baseline_resnet50": {"backbone": "resnet50", **_NO_MIIM},
    "baseline_resnet18": {"backbone": "resnet18", **_NO_MIIM},
}


def _variant_of(backbone: str, has_miims: bool) -> str | None:
    """The registered WRIMNet of ``backbone`` (its weight tag aside): ``wrimnet_*`` with MIIMs, ``baseline_*``
    without; None when none is registered."""
    for name, fixed in _VARIANTS.items():
        if fixed["backbone"] == backbone.partition(".")[0] and ("shared_stages" not in fixed) == has_miims:
            return name
    return None


@register_model
def wrimnet_resnet50(pretrained: bool = False, **kwargs) -> WRIMNet:
    """WRIM-Net as in the paper: ResNet-50, last stride 1, separate MIIMs after stages 1-2, shared after 3-4."""
    return _create_wrimnet(pretrained, _VARIANTS["wrimnet_resnet50"], **kwargs)


@register_model
def wrimnet_resnet18(pretrained: bool = False, **kwargs) -> WRIMNet:
    """WRIM-Net on ResNet-18 (CPU-sized; same placements and strides as the paper)."""
    return _create_wrimnet(pretrained, _VARIANTS["wrimnet_resnet18"], **kwargs)


@register_model
def wrimnet_resnet101(pretrained: bool = False, **kwargs) -> WRIMNet:
    """WRIM-Net on ResNet-101."""
    return _create_wrimnet(pretrained, _VARIANTS["wrimnet_resnet101"], **kwargs)


@register_model
def wrimnet_convnext_tiny(pretrained: bool = False, **kwargs) -> WRIMNet:
    """WRIM-Net on ConvNeXt-Tiny (last stage at stride 1, undilated; the paper's placements and strides)."""
    return _create_wrimnet(pretrained, _VARIANTS["wrimnet_convnext_tiny"], **kwargs)


@register_model
def wrimnet_vit_small(pretrained: bool = False, **kwargs) -> WRIMNet:
    """WRIM-Net on ViT-S/16: MIIMs after the four 3-block groups, stride 1 everywhere.

    Every ViT stage already sits at 1/16 resolution, the grid ``token_stride=16`` asks for (the paper's strides
    4, 2, 1, 1 on ResNet-50), so the MIIMs attend over the same token grid without further compression. [D]
    """
    return _create_wrimnet(pretrained, _VARIANTS["wrimnet_vit_small"], **kwargs)


@register_model
def baseline_resnet50(pretrained: bool = False, **kwargs) -> WRIMNet:
    """The AGW-style baseline: ResNet-50, last stride 1, the same BNNeck heads, no MIIM."""
    return _create_wrimnet(pretrained, _VARIANTS["baseline_resnet50"], **kwargs)


@register_model
def baseline_resnet18(pretrained: bool = False, **kwargs) -> WRIMNet:
    """The baseline on ResNet-18 (CPU-sized), no MIIM."""
    return _create_wrimnet(pretrained, _VARIANTS["baseline_resnet18"], **kwargs)
