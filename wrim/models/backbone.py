"""StagedBackbone - a timm feature extractor with four taps (the paper's Block1..Block4) where blocks are hooked in.

Shapes: ``B`` batch, ``C_k`` channels of stage ``k`` (1-based), ``H_k, W_k`` its map size, ``N`` tokens of a
token-sequence backbone (prefix tokens first, then the ``h·w`` grid row by row).

docs: The paper, section Network [P][N]: WRIM-Net puts a MIIM after ResNet-50's layer1..layer4 and runs layer4 at
stride 1.
Any timm backbone is accepted, built once with ``timm.create_model(name, features_only=True)`` [D] (docs: Models):

- **Taps.** The four stages end at four of the modules that timm's ``feature_info`` names: the last module of
  each of the last four resolutions (layer1..layer4 of a ResNet), or, for a single-resolution model (ViT, EVA,
  BEiT), the blocks that end four equal groups (blocks 3, 6, 9, 12 of 12). A forward hook on each tap module
  replaces its output by ``block(output)``, so a stage's block sees exactly that stage's output and the next stage
  consumes the block's output. The hook views any output layout as a (B, C_k, H_k, W_k) map for the block and
  back: NCHW as is, NHWC (Swin, MambaOut) permuted, and (B, N, C) token sequences with their prefix tokens
  (class, register, distillation) passed through untouched.
- **Last stride 1** (``last_stride=None`` or ``1``): timm's ``output_stride=16``, then, by default, the dilation
  timm puts in the last stage is removed (the re-id convention of AGW / fast-reid and [N];
  ``last_stage_dilation=True`` keeps it). Where timm has no ``output_stride``, the stride-2 convolutions / pools
  run in the last stage are set to stride 1 (``padding="same"`` for convs whose padding would shrink the map).
  Where neither works (patch merging by reshaping, ...), ``last_stride=None`` builds at the backbone's own stride
  with one warning, and an explicit ``last_stride=1`` is a ValueError that gives the reason.
- **Fixed-size models** (ViTs, MaxViT, CoAtNet, EfficientFormerV2, Swin, ...) get ``img_size`` at construction;
  a size the model cannot run is a ValueError naming sizes that work. Token-sequence and fixed-size backbones run
  only at ``img_size``.

The taps and each stage's modules are found by one dry run (batch 1, ``img_size``, ``torch.no_grad``) at
construction, which also measures each stage's output layout and grid.
"""

from __future__ import annotations

import copy
import difflib
import math
import warnings
from collections.abc import Iterator
from pathlib import Path

import timm
import torch
from torch import nn

from wrim._versions import at_least
from wrim.layers import ModalityBatch
from wrim.models import _timm_build as build
from wrim.models._arguments import pair
from wrim.models._timm_build import NUM_STAGES, TapLayout
from wrim.models.weights import load_state_dict_file

__all__ = ["StagedBackbone", "check_backbone_name"]

_TIMM_ERRORS = (TypeError, AssertionError, NotImplementedError, ValueError, RuntimeError, KeyError, IndexError)


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


class _TapHook:
    """Forward hook on a tap module: ``output -> from_map(block(to_map(output)))``.

    A plain object (no closure), so ``copy.deepcopy`` of the model copies it along with the block it points to.
    The block is the caller's module (e.g. a MIIM owned by [`WRIMNet`][wrim.models.WRIMNet]); a block that takes
    modalities gets the running call's [`ModalityBatch`][wrim.layers.ModalityBatch] from
    `StagedBackbone.modality_batch` (see there).
    """

    def __init__(self, backbone: StagedBackbone, layout: TapLayout) -> None:
        self.backbone = backbone
        self.layout = layout
        self.block: nn.Module | None = None
        self.takes_modalities = False

    def __call__(self, module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor | None:
        if self.block is None:
            return None
        feature_map = self.layout.to_map(output)  # (B, C_k, H_k, W_k)
        if self.takes_modalities:
            feature_map = self.block(feature_map, self.backbone.modality_batch())
        else:
            feature_map = self.block(feature_map)
        return self.layout.from_map(output, feature_map)


class StagedBackbone(nn.Module):
    """A timm feature extractor with a hook after each of its four stages.

    ``set_block(k, module)`` puts ``module`` after stage ``k``; ``forward(images, modalities)`` returns the four
    stage maps (after their blocks) as (B, C_k, H_k, W_k).
    """

    def __init__(
        self,
        name: str = "resnet50",
        pretrained: bool = False,
        pretrained_file: str | Path | None = None,
        img_size: tuple[int, int] = (288, 144),
        last_stride: int | None = None,
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
            img_size: (H, W) input size: passed to timm models that take it (fixing their token grid / windows)
                and the size of the construction dry run.
            last_stride: None (default): stage 4 at stage 3's resolution where it can be had, else the backbone's
                own stride with a warning; 1: the same but a ValueError where it cannot be had (paper); 2: the
                backbone's own stride.
            last_stage_dilation: with last stride 1 through timm's ``output_stride``, keep timm's dilated last stage
                (True) instead of the re-id convention of plain stride 1 with dilation 1 (False, default). [D]
            in_chans: input channels.
            **kwargs: passed on to ``timm.create_model`` (e.g. ``drop_path_rate``).
        """
        super().__init__()
        check_backbone_name(name)
        if last_stride not in (None, 1, 2):
            raise ValueError(
                "last_stride must be None (stride 1 where the backbone allows it), 1 (paper: stage 4 keeps stage 3's "
                f"resolution) or 2 (the backbone's own stride); got {last_stride!r}"
            )
        self.name = name
        self.img_size = pair(img_size, "img_size")
        self.in_chans = in_chans
        self._batch: ModalityBatch | None = None  # see modality_batch()
        self._depth = 0  # forward calls running (2 while a block calls this backbone again)
        self.grad_checkpointing = False
        timm_kwargs = self._timm_arguments(pretrained, pretrained_file, dict(kwargs, in_chans=in_chans))
        want_stride_one = last_stride in (None, 1)
        reason = ""
        model = None
        if want_stride_one:
            try:
                model = self._create(name, pretrained_file, dict(timm_kwargs, output_stride=16))
            except _TIMM_ERRORS as err:
                reason = f"timm's output_stride=16 is not supported ({type(err).__name__}: {build.first_line(err)})"
        if model is None:
            model = self._create(name, pretrained_file, timm_kwargs)
        self.model = model
        self._install_taps()
        self.last_stride = 2
        if want_stride_one:
            self._make_last_stride_one(pretrained_file, timm_kwargs, reason, last_stride, last_stage_dilation)
        self._check_token_strides()
        self.channels: tuple[int, ...] = tuple(layout.channels for layout in self.layouts)
        self.fixed_size = self.takes_img_size or any(layout.kind == "tokens" for layout in self.layouts)

    # ----------------------------------------------------------------------------------------------------- build

    def _timm_arguments(self, pretrained: bool, pretrained_file: str | Path | None, timm_kwargs: dict) -> dict:
        """``timm.create_model``'s arguments: weights (a local file's state dict checked against the model), the
        chosen taps (``self.out_indices``) and ``img_size`` for the models that take it (``self.takes_img_size``)."""
        if pretrained_file is not None:
            state_dict = load_state_dict_file(pretrained_file)
            timm_kwargs["pretrained"] = True
        else:
            state_dict = None
            timm_kwargs["pretrained"] = bool(pretrained)
        info = build.full_feature_info(self.name, timm_kwargs)
        self.out_indices = build.choose_taps(self.name, info)
        self.takes_img_size = build.takes_img_size(self.name, timm_kwargs)
        if self.takes_img_size:
            timm_kwargs["img_size"] = self.img_size
        if state_dict is not None:
            build.check_backbone_state(self.name, state_dict, timm_kwargs, pretrained_file)
            timm_kwargs["pretrained_cfg_overlay"] = {"state_dict": state_dict}
        return timm_kwargs

    def _make_last_stride_one(
        self,
        pretrained_file: str | Path | None,
        timm_kwargs: dict,
        reason: str,
        last_stride: int | None,
        last_stage_dilation: bool,
    ) -> None:
        """Run stage 4 at stage 3's resolution (``self.last_stride = 1``): timm's ``output_stride=16`` (undilated
        unless ``last_stage_dilation``), else stride-2 layers set to 1; else warn (``None``) or raise (``1``)."""
        name = self.name
        if self._probe_grids()[2] == self._probe_grids()[3]:
            self.last_stride = 1
            if not last_stage_dilation:
                for module in self.stage_modules(NUM_STAGES):
                    build.undilate(module, name)
            return
        reason = reason or "timm ignores output_stride=16"
        changed, failure = self._remove_last_downsampling()
        if failure is None and self._probe_grids()[2] == self._probe_grids()[3]:
            self.last_stride = 1
            return
        reason = f"{reason}; {failure or 'setting its stride-2 convolutions / pools to 1 did not work'}"
        if changed:  # the stride surgery changed layers but did not work: rebuild unchanged
            self.model = self._create(name, pretrained_file, timm_kwargs)
            self._install_taps()
        message = (
            f"backbone {name!r} cannot run its last stage at stride 1 ({reason}); it keeps its own stride "
            f"(stage reductions {self.reductions})"
        )
        if last_stride == 1:
            raise ValueError(f"{message}. Pass last_stride=None (warn and go on) or last_stride=2")
        warnings.warn(f"{message}. Pass last_stride=2 to silence this warning", stacklevel=4)

    def _remove_last_downsampling(self) -> tuple[int, str | None]:
        """Set the stride-2 convs / pools that run in stage 4 to stride 1, then re-measure.

        Returns:
            how many layers changed, and why it did not work (None when the backbone ran).
        """
        changed = build.remove_last_downsampling(self.stage_modules(NUM_STAGES))
        if not changed:
            return 0, "its last stage has no stride-2 convolution or pooling to change (it downsamples otherwise)"
        for handle in self._handles:
            handle.remove()
        try:
            self._install_taps()
            with torch.no_grad():  # a real training-mode pass too (some models cache position biases in eval)
                copy.deepcopy(self.model).train()(torch.zeros(2, self.in_chans, *self.img_size))
        except (ValueError, RuntimeError) as err:
            return changed, f"with its stride-2 layers set to 1 it fails ({build.first_line(err.__cause__ or err)})"
        return changed, None

    def _check_token_strides(self) -> None:
        """A token-sequence stage needs ``img_size`` to be a multiple of its stride (else border pixels drop)."""
        for layout, reduction in zip(self.layouts, self.reductions, strict=True):
            if layout.kind == "tokens" and (self.img_size[0] % reduction or self.img_size[1] % reduction):
                down = tuple(max(reduction, v // reduction * reduction) for v in self.img_size)
                up = tuple(-(-v // reduction) * reduction for v in self.img_size)
                raise ValueError(
                    f"img_size {self.img_size} is not a multiple of {self.name!r}'s token stride {reduction} (the "
                    f"border pixels would be dropped); use img_size={down} or {up}"
                )

    def _create(self, name: str, pretrained_file: str | Path | None, timm_kwargs: dict) -> nn.Module:
        """The timm feature extractor for the chosen taps, with size errors that name working sizes."""
        try:
            return build.timm_create(
                name, pretrained_file, features_only=True, out_indices=self.out_indices, **timm_kwargs
            )
        except (RuntimeError, AssertionError, ValueError) as err:  # e.g. a window size that does not fit img_size
            if "output_stride" in timm_kwargs or "img_size" not in timm_kwargs or "weights" in str(err):
                raise
            raise build.size_error(name, self.img_size, err) from err

    def _install_taps(self) -> None:
        """Find the tap modules, measure their layouts with a dry run and hook them."""
        model = self.model
        info = model.feature_info
        names = info.module_name()
        hook_types = [info.info[i].get("hook_type", "forward") for i in info.out_indices]
        self.tap_names: tuple[str, ...] = tuple(build.resolve_tap(model, name, self.name) for name in names)
        if any(kind != "forward" for kind in hook_types):
            raise ValueError(
                f"backbone {self.name!r} exposes its features through {hook_types} hooks (a stage's input, not its "
                "output), so a block cannot sit after the stage; pick another backbone"
            )
        self.taps = [model.get_submodule(name) for name in self.tap_names]
        self.reductions: tuple[int, ...] = tuple(info.reduction())
        shape = (self.in_chans, *self.img_size)
        measured = build.dry_run(model, self.taps, tuple(info.channels()), self.reductions, shape, self.name)
        self.layouts, self.stage_of = measured.layouts, measured.stage_of
        self._order, self.returned = measured.order, measured.returned  # call order; layouts of the returned maps
        grids = self._probe_grids()
        if grids[2] == grids[3] and self.reductions[3] != self.reductions[2]:
            self.reductions = (*self.reductions[:3], self.reductions[2])
        self.hooks = []
        self._handles = []
        for tap, layout in zip(self.taps, self.layouts, strict=True):
            hook = _TapHook(self, layout)
            self.hooks.append(hook)
            self._handles.append(tap.register_forward_hook(hook, prepend=True))

    def _probe_grids(self) -> list[tuple[int, int]]:
        return [layout.grid for layout in self.layouts]

    # --------------------------------------------------------------------------------------------------- forward

    def set_block(self, index: int, block: nn.Module | None, takes_modalities: bool = False) -> None:
        """Run ``block`` on stage ``index``'s (B, C_k, H_k, W_k) map, before stage ``index + 1`` (None: remove it).

        Args:
            index: the 1-based stage.
            block: a module (B, C_k, H_k, W_k) -> same shape; the caller owns it (it is not registered here).
            takes_modalities: call ``block(map, batch)`` with the [`ModalityBatch`][wrim.layers.ModalityBatch]
                of the ``forward`` call (ids, visible count, checked), which a ``ModalityMIIM`` takes as its
                ``modalities``.
        """
        self.hooks[index - 1].block = block
        self.hooks[index - 1].takes_modalities = takes_modalities

    def forward(
        self,
        images: torch.Tensor,
        modalities: torch.Tensor | ModalityBatch | None = None,
        num_visible: int | None = None,
        *,
        checked: bool = False,
    ) -> list[torch.Tensor]:
        """The feature pyramid after the blocks: (B, 3, H, W) -> [(B, C_k, H_k, W_k) for k = 1..4].

        Args:
            images: (B, 3, H, W).
            modalities: (B,) ids for blocks that take them, or a [`ModalityBatch`][wrim.layers.ModalityBatch]
                (which carries ``num_visible`` and ``checked``: leave both at their defaults).
            num_visible: for a modality-sorted batch, its visible count, passed on to blocks that take modalities
                (see [`ModalityMIIM`][wrim.layers.ModalityMIIM]); None for any batch.
            checked: keyword-only; the caller validated ``modalities`` (and ``num_visible``): blocks that take
                modalities do not validate them again.
        """
        batch = None if modalities is None else ModalityBatch.given(modalities, num_visible, checked)
        outer = self._batch
        self._batch, self._depth = batch, self._depth + 1
        try:
            features = self.model(images)
        finally:
            self._depth -= 1
            if self._depth:  # a nested call gives the outer call its batch back
                self._batch = outer
            elif not self.grad_checkpointing:  # the outermost clears it (see modality_batch)
                self._batch = None
        if isinstance(features, dict):
            features = list(features.values())
        maps = []
        for kind, layout, feature in zip(self.returned, self.layouts, features, strict=True):
            if kind == "tokens":  # (B, N, C) -> (B, C, H, W)
                feature = layout.to_map(feature)
            elif kind == "NHWC":
                feature = feature.permute(0, 3, 1, 2)  # (B, H, W, C) -> (B, C, H, W)
            maps.append(feature)  # (B, C_k, H_k, W_k)
        return maps

    def modality_batch(self) -> ModalityBatch:
        """The [`ModalityBatch`][wrim.layers.ModalityBatch] of the running ``forward`` call, for the blocks that
        take modalities.

        timm's ``forward`` takes images only, so the batch's modalities reach the hooked blocks through this one
        context: ``forward`` sets it before running the timm model and restores it after, in one place. A call
        nested in a block (this backbone run again inside its own forward) sees its own batch and gives the outer
        call's back. With gradient checkpointing (`set_grad_checkpointing`) the outermost call's batch stays set
        after it returns, because a checkpointed stage is recomputed in ``backward()``, which must therefore come
        before the next forward call of the same model, as in any training step. It is an attribute of this model,
        not global state: other models, processes and DDP ranks have their own; one model runs one forward at a
        time (as its BatchNorm statistics need anyway).

        Raises:
            ValueError: no forward call of this backbone gave modalities (e.g. its timm model was called directly).
        """
        if self._batch is None:
            raise ValueError(
                f"a block after a stage of {self.name!r} takes modalities, but none were given: call the "
                "StagedBackbone as backbone(images, modalities), not its timm model directly"
            )
        return self._batch

    # ------------------------------------------------------------------------------------------------ inspection

    def stage_modules(self, index: int) -> list[nn.Module]:
        """The outermost modules that run entirely inside stage ``index`` (1..4) (parameter counts, FLOPs, hooks)."""
        inside = {name for name, stage in self.stage_of.items() if stage == index}
        return [
            self.model.get_submodule(name)
            for name in sorted(inside, key=self._order.index)
            if name.rpartition(".")[0] not in inside
        ]

    def stage_parameters(self, index: int) -> Iterator[nn.Parameter]:
        """The parameters of stage ``index``'s modules, plus (stage 1) those of modules spanning several stages
        (a ViT's class token and positional embedding)."""
        for module in self.stage_modules(index):
            yield from module.parameters()
        if index == 1:
            for name, module in self.model.named_modules():
                if name not in self.stage_of or self.stage_of[name] == 0:
                    yield from module.parameters(recurse=False)

    def map_size(self, index: int, img_size: tuple[int, int]) -> tuple[int, int]:
        """The (H_k, W_k) of stage ``index`` for an input of ``img_size`` (ceil division by the reduction)."""
        reduction = self.reductions[index - 1]
        return math.ceil(img_size[0] / reduction), math.ceil(img_size[1] / reduction)

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """timm's gradient checkpointing of the feature extractor, where it has one (timm >= 1.0.31: older timm
        recomputes an in-place activation and the backward pass fails)."""
        if enable and not at_least(timm.__version__, "1.0.31"):
            raise ValueError(f"gradient checkpointing needs timm>=1.0.31 (installed {timm.__version__})")
        if not hasattr(self.model, "set_grad_checkpointing"):
            raise ValueError(f"backbone {self.name!r} ({type(self.model).__name__}) has no gradient checkpointing")
        self.model.set_grad_checkpointing(enable)
        self.grad_checkpointing = enable
