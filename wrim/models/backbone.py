"""StagedBackbone - a timm model cut into four stages (the paper's Block1..Block4) so blocks can sit between them.

Shapes: ``B`` batch, ``C_k`` channels of stage ``k`` (1-based), ``H_k, W_k`` its map size, ``N`` ViT tokens
(prefix tokens first, then the ``h·w`` patch grid row by row), ``D`` ViT width.

docs/models.md [P][N]: WRIM-Net puts a MIIM after ResNet-50's layer1..layer4 and runs layer4 at stride 1.
Any timm backbone is accepted:

- **CNNs** (ResNets, ConvNeXt, ... - anything timm builds with ``features_only=True``): the four stages are the
  backbone's last four feature levels; stage 1 also holds the stem. Channels and reductions come from timm's
  ``feature_info``, never from constants. ``last_stride=1`` asks timm for ``output_stride=16`` and then, by
  default, removes the dilation timm puts in the last stage, so the last stage keeps stage 3's resolution with
  dilation 1, the re-id convention of AGW / fast-reid and [N] ([D] ``last_stage_dilation=False``;
  ``True`` keeps timm's dilated last stage).
- **ViTs** (timm's ``VisionTransformer`` family, ``vit_*`` / ``deit_*``): all blocks work at the patch
  resolution, so "stage k" is the k-th of four evenly sized groups of blocks (block ``i`` of ``depth`` goes to
  group ``⌊4·i / depth⌋ + 1``, e.g. 3 blocks per group for depth 12) [D]; stage 1 also holds the patch
  embedding, stage 4 the final norm. After a group the patch tokens are viewed as a (B, D, h, w) grid, so a
  MIIM applies there, and written back; prefix (class / register) tokens pass through untouched. The model is
  built for ``img_size`` (timm resizes the pretrained positional embeddings to it) and only runs at that size.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import timm
import torch
from timm.models import FeatureDictNet
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from wrim.models.weights import load_state_dict_file

__all__ = ["StagedBackbone", "check_backbone_name"]

NUM_STAGES = 4
_VIT_MODULES = ("timm.models.vision_transformer", "timm.models.deit")


def check_backbone_name(name: str) -> None:
    """Raise a ValueError naming close timm models unless ``name`` is a timm model (a ``.tag`` suffix is allowed)."""
    if not isinstance(name, str):
        raise TypeError(f"backbone must be a timm model name (str); got {type(name).__name__}")
    arch, _ = timm.models.split_model_name_tag(name)
    if timm.is_model(arch):
        return
    close = difflib.get_close_matches(arch, timm.list_models(), n=6, cutoff=0.6)
    hint = f" Close timm names: {', '.join(close)}." if close else " See timm.list_models('pattern*')."
    raise ValueError(f"unknown backbone {name!r}: not a timm model.{hint}")


class StagedBackbone(nn.Module):
    """A timm backbone run stage by stage: ``forward_stage(k, x)`` for k = 1..4, with map views in between.

    The stage state is the (B, C_k, H_k, W_k) map for CNNs and the (B, N, D) token sequence for ViTs;
    [`as_map()`][wrim.models.StagedBackbone.as_map] views it as a map,
    [`with_map()`][wrim.models.StagedBackbone.with_map] writes a (possibly modified) map back.
    """

    def __init__(
        self,
        name: str = "resnet50",
        pretrained: bool = False,
        pretrained_file: str | Path | None = None,
        img_size: tuple[int, int] = (288, 144),
        last_stride: int = 1,
        last_stage_dilation: bool = False,
        in_chans: int = 3,
        **kwargs,
    ) -> None:
        """
        Args:
            name: any timm model name (with an optional ``.tag`` for its pretrained weights).
            pretrained: load timm's ImageNet weights (downloads them; needs internet).
            pretrained_file: a local weights file for the backbone (``.safetensors``, or a ``.pth``/``.pt``/``.bin``
                loaded with ``torch.load(weights_only=True)``) holding the timm classification model's state dict;
                implies ``pretrained``.
            img_size: (H, W) input size; fixes the ViT token grid and positional embeddings, and is the size
                the caller's size checks refer to for CNNs (CNNs also run at other sizes).
            last_stride: 1 (paper) keeps stage 4 at stage 3's resolution; 2 is the backbone's own stride.
            last_stage_dilation: with ``last_stride=1`` on a CNN, keep timm's dilated last stage (True) instead of
                the re-id convention of plain stride 1 with dilation 1 (False, default). [D]
            in_chans: input channels.
            **kwargs: passed on to ``timm.create_model`` (e.g. ``drop_path_rate``).
        """
        super().__init__()
        check_backbone_name(name)
        if last_stride not in (1, 2):
            raise ValueError(
                f"last_stride must be 1 (paper: stage 4 keeps stage 3's resolution) or 2; got {last_stride}"
            )
        img_size = _pair(img_size, "img_size")
        self.name = name
        self.img_size = img_size
        self.in_chans = in_chans
        self.last_stride = last_stride
        arch, _ = timm.models.split_model_name_tag(name)
        self.is_vit = timm.models.model_entrypoint(arch).__module__ in _VIT_MODULES
        timm_kwargs = dict(kwargs, in_chans=in_chans)
        if self.is_vit:
            timm_kwargs["img_size"] = img_size
        elif last_stride == 1:
            timm_kwargs["output_stride"] = 16
        if pretrained_file is not None:
            state_dict = load_state_dict_file(pretrained_file)
            _check_backbone_state(name, state_dict, timm_kwargs, pretrained_file)
            timm_kwargs.update(pretrained=True, pretrained_cfg_overlay={"state_dict": state_dict})
        else:
            timm_kwargs["pretrained"] = bool(pretrained)
        if self.is_vit:
            self._build_vit(name, img_size, last_stride, timm_kwargs, pretrained_file)
        else:
            self._build_cnn(name, last_stride, last_stage_dilation, timm_kwargs, pretrained_file)

    # ----------------------------------------------------------------------------------------------------- build

    def _build_cnn(
        self, name: str, last_stride: int, dilation: bool, timm_kwargs: dict, pretrained_file: str | Path | None
    ) -> None:
        try:
            model = _timm_create(name, pretrained_file, features_only=True, out_indices=(-4, -3, -2, -1), **timm_kwargs)
        except (TypeError, AssertionError, NotImplementedError) as err:
            if last_stride == 1:
                raise ValueError(
                    f"backbone {name!r} cannot run its last stage at stride 1 (timm rejects output_stride=16: {err}); "
                    "pass last_stride=2"
                ) from err
            raise ValueError(
                f"backbone {name!r} has no timm feature pyramid (features_only=True failed: {err}); "
                "WRIMNet supports timm CNNs with features_only and VisionTransformer models (vit_*, deit_*)"
            ) from err
        if not isinstance(model, FeatureDictNet):
            raise ValueError(
                f"backbone {name!r} gives a {type(model).__name__} with features_only=True, which cannot be run stage "
                "by stage; WRIMNet supports timm CNNs whose feature extractor is a FeatureListNet (resnet*, "
                "convnext*, regnet*, ...) and VisionTransformer models (vit_*, deit_*)"
            )
        if str(getattr(model, "output_fmt", "NCHW")).removeprefix("Format.") != "NCHW":
            raise ValueError(
                f"backbone {name!r} gives channels-last (B, H, W, C) features (e.g. Swin); WRIMNet runs timm CNNs with "
                "(B, C, H, W) features and VisionTransformer models (vit_*, deit_*)"
            )
        info = model.feature_info
        if len(info.out_indices) != NUM_STAGES:
            raise ValueError(f"backbone {name!r} has fewer than {NUM_STAGES} feature levels; pick a deeper model")
        self.model = model
        self.feature_info = info
        self.channels: tuple[int, ...] = tuple(info.channels())
        self.reductions: tuple[int, ...] = tuple(info.reduction())
        return_layers = list(model.return_layers)
        self.stage_names: tuple[tuple[str, ...], ...] = _split_at(list(model.keys()), return_layers)
        if last_stride == 1:
            if self.reductions[-1] != self.reductions[-2]:
                raise ValueError(
                    f"backbone {name!r} ignores output_stride=16 (stage reductions {self.reductions}); "
                    "pass last_stride=2"
                )
            if not dilation:
                for module in self.stage_modules(NUM_STAGES):
                    _undilate(module, name)

    def _build_vit(
        self,
        name: str,
        img_size: tuple[int, int],
        last_stride: int,
        timm_kwargs: dict,
        pretrained_file: str | Path | None,
    ) -> None:
        if last_stride != 1:
            raise ValueError(f"ViT backbone {name!r} keeps one resolution in all stages; pass last_stride=1")
        model = _timm_create(name, pretrained_file, num_classes=0, **timm_kwargs)
        if not isinstance(model, VisionTransformer):
            raise ValueError(f"backbone {name!r} is not a timm VisionTransformer; use a vit_* / deit_* model")
        depth = len(model.blocks)
        if depth < NUM_STAGES:
            raise ValueError(f"ViT backbone {name!r} has {depth} blocks; need at least {NUM_STAGES} (one per stage)")
        patch = tuple(model.patch_embed.patch_size)
        if img_size[0] % patch[0] or img_size[1] % patch[1]:
            raise ValueError(
                f"img_size {img_size} is not a multiple of {name!r}'s patch size {patch}; "
                f"use e.g. img_size=({img_size[0] // patch[0] * patch[0]}, {img_size[1] // patch[1] * patch[1]})"
            )
        self.model = model
        self.feature_info = None
        self.patch_size: tuple[int, int] = patch
        self.grid_size: tuple[int, int] = tuple(model.patch_embed.grid_size)
        self.channels = (model.embed_dim,) * NUM_STAGES
        self.reductions = (patch[0],) * NUM_STAGES
        bounds = [k * depth // NUM_STAGES for k in range(NUM_STAGES + 1)]
        self.block_groups: tuple[tuple[int, int], ...] = tuple(zip(bounds[:-1], bounds[1:]))

    # --------------------------------------------------------------------------------------------------- forward

    def forward_stage(self, index: int, x: torch.Tensor) -> torch.Tensor:
        """Run stage ``index`` (1..4).

        Args:
            index: the 1-based stage.
            x: images (B, 3, H, W) for stage 1, else the previous stage's state.

        Returns:
            the stage state: (B, C_k, H_k, W_k) for CNNs, (B, N, D) for ViTs.
        """
        if not self.is_vit:
            for name in self.stage_names[index - 1]:
                x = self.model[name](x)
            return x
        vit = self.model
        if index == 1:
            x = vit.patch_embed(x)  # (B, 3, H, W) -> (B, h·w, D)
            x = vit._pos_embed(x)  # (B, N, D), prefix tokens prepended
            x = vit.norm_pre(vit.patch_drop(x))
        start, stop = self.block_groups[index - 1]
        for block in range(start, stop):
            x = vit.blocks[block](x)  # (B, N, D)
        if index == NUM_STAGES:
            x = vit.norm(x)
        return x

    def as_map(self, x: torch.Tensor) -> torch.Tensor:
        """A stage state as a feature map: (B, C, H, W) as is; ViT tokens (B, N, D) -> patch grid (B, D, h, w)."""
        if not self.is_vit:
            return x
        patches = x[:, self.model.num_prefix_tokens :]  # (B, h·w, D)
        return patches.transpose(1, 2).reshape(x.shape[0], x.shape[2], *self.grid_size)

    def with_map(self, x: torch.Tensor, feature_map: torch.Tensor) -> torch.Tensor:
        """The stage state ``x`` with its map replaced by ``feature_map`` (the inverse of
        [`as_map()`][wrim.models.StagedBackbone.as_map])."""
        if not self.is_vit:
            return feature_map
        patches = feature_map.flatten(2).transpose(1, 2)  # (B, D, h, w) -> (B, h·w, D)
        return torch.cat([x[:, : self.model.num_prefix_tokens], patches], dim=1)  # (B, N, D)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """The plain feature pyramid: (B, 3, H, W) -> [(B, C_k, H_k, W_k) for k = 1..4]."""
        maps = []
        x = images
        for index in range(1, NUM_STAGES + 1):
            x = self.forward_stage(index, x)
            maps.append(self.as_map(x))
        return maps

    # ------------------------------------------------------------------------------------------------ inspection

    def stage_modules(self, index: int) -> list[nn.Module]:
        """The modules that stage ``index`` (1..4) runs (for parameter counts, freezing, hooks)."""
        if not self.is_vit:
            return [self.model[name] for name in self.stage_names[index - 1]]
        vit = self.model
        start, stop = self.block_groups[index - 1]
        modules = [vit.blocks[block] for block in range(start, stop)]
        if index == 1:
            modules = [vit.patch_embed, vit.norm_pre, *modules]
        if index == NUM_STAGES:
            modules.append(vit.norm)
        return modules

    def stage_parameters(self, index: int) -> Iterator[nn.Parameter]:
        """The parameters stage ``index`` uses (a ViT's class/register tokens and positional embedding: stage 1)."""
        for module in self.stage_modules(index):
            yield from module.parameters()
        if self.is_vit and index == 1:
            for name in ("cls_token", "reg_token", "pos_embed"):
                param = getattr(self.model, name, None)
                if isinstance(param, nn.Parameter):
                    yield param

    def map_size(self, index: int, img_size: tuple[int, int]) -> tuple[int, int]:
        """The (H_k, W_k) of stage ``index`` for an input of ``img_size`` (ceil division by the reduction)."""
        reduction = self.reductions[index - 1]
        return math.ceil(img_size[0] / reduction), math.ceil(img_size[1] / reduction)


def _pair(value: int | Sequence[int], name: str) -> tuple[int, int]:
    """An (H, W) pair from an int or a 2-sequence of positive ints."""
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) and v > 0 for v in pair):
        raise ValueError(f"{name} must be (H, W) positive ints, e.g. (288, 144); got {value!r}")
    return pair


def _split_at(names: list[str], ends: list[str]) -> tuple[tuple[str, ...], ...]:
    """Group the ordered module names into consecutive runs, each ending at the next name of ``ends``."""
    groups: list[tuple[str, ...]] = []
    current: list[str] = []
    for name in names:
        current.append(name)
        if len(groups) < len(ends) and name == ends[len(groups)]:
            groups.append(tuple(current))
            current = []
    return tuple(groups)


def _check_backbone_state(
    name: str, state_dict: dict[str, torch.Tensor], timm_kwargs: dict, pretrained_file: str | Path
) -> None:
    """Raise a ValueError listing missing / unexpected / mis-shaped keys of a backbone weights file.

    The reference is the timm classification model (built on the meta device, no memory); its classifier is
    ignored, and so is the shape of a ViT's positional embedding (timm resizes it to ``img_size``).
    """
    with torch.device("meta"):
        reference = timm.create_model(name, **timm_kwargs)
    classifier = reference.pretrained_cfg.get("classifier") or ()
    classifier = (classifier,) if isinstance(classifier, str) else tuple(classifier)

    def is_classifier(key: str) -> bool:
        return any(key.startswith(f"{prefix}.") for prefix in classifier)

    expected = {key: t.shape for key, t in reference.state_dict().items() if not is_classifier(key)}
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(key for key in state_dict if key not in expected and not is_classifier(key))
    mismatched = [
        f"{key}: file {tuple(state_dict[key].shape)} vs model {tuple(shape)}"
        for key, shape in expected.items()
        if key in state_dict and key != "pos_embed" and state_dict[key].shape != shape
    ]
    if missing or unexpected or mismatched:
        raise ValueError(
            f"pretrained_file {str(pretrained_file)!r} does not fit backbone {name!r}: missing keys "
            f"({len(missing)}): {missing[:20]}; unexpected keys ({len(unexpected)}): {unexpected[:20]}; shape "
            f"mismatches ({len(mismatched)}): {mismatched[:10]}. It must hold the timm classification model's "
            f"state dict, named as timm.create_model({name!r}).state_dict() names it"
        )


def _timm_create(name: str, pretrained_file: str | Path | None, **kwargs) -> nn.Module:
    """``timm.create_model`` with clear errors for failed downloads and mismatching local weights."""
    try:
        return timm.create_model(name, **kwargs)
    except (RuntimeError, OSError) as err:  # huggingface_hub / urllib: no internet, no cache, no such weights
        if kwargs.get("pretrained") and pretrained_file is None:
            raise _download_error(name, err) from err
        raise


def _download_error(name: str, err: Exception) -> RuntimeError:
    return RuntimeError(
        f"could not get timm's pretrained weights for {name!r} ({type(err).__name__}: {str(err)[:300]}). "
        "Without internet, download the weights elsewhere (e.g. timm.create_model(name, pretrained=True) and "
        "safetensors.torch.save_file(model.state_dict(), 'backbone.safetensors')) and pass "
        "pretrained_file='backbone.safetensors' instead of pretrained=True"
    )


def _undilate(module: nn.Module, name: str) -> None:
    """Set every dilated conv of ``module`` to dilation 1 with the same output size (re-id last stride 1)."""
    for conv in module.modules():
        if not isinstance(conv, nn.Conv2d) or conv.dilation == (1, 1):
            continue
        kernel, dilation = conv.kernel_size, conv.dilation
        if conv.padding == tuple(d * (k - 1) // 2 for k, d in zip(kernel, dilation)):
            conv.padding = tuple((k - 1) // 2 for k in kernel)
        elif conv.padding != (0, 0) or type(conv) is nn.Conv2d:  # timm's Conv2dSame pads from the dilation itself
            raise ValueError(
                f"cannot remove the dilation of {conv} in {name!r}'s last stage; pass last_stage_dilation=True"
            )
        conv.dilation = (1, 1)
