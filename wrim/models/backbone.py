"""StagedBackbone - a timm feature extractor with four taps (the paper's Block1..Block4) where blocks are hooked in.

Shapes: ``B`` batch, ``C_k`` channels of stage ``k`` (1-based), ``H_k, W_k`` its map size, ``N`` tokens of a
token-sequence backbone (prefix tokens first, then the ``h·w`` grid row by row).

docs/paper.md#network [P][N]: WRIM-Net puts a MIIM after ResNet-50's layer1..layer4 and runs layer4 at stride 1.
Any timm backbone is accepted, built once with ``timm.create_model(name, features_only=True)`` [D] (docs/models.md):

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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import timm
import torch
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode

from wrim.models.weights import load_state_dict_file

__all__ = ["StagedBackbone", "check_backbone_name"]

NUM_STAGES = 4
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


@dataclass(frozen=True)
class TapLayout:
    """How a tap module's output is laid out, and its map at ``img_size``."""

    kind: str  # "NCHW", "NHWC" or "tokens" (B, N, C)
    channels: int
    grid: tuple[int, int]  # (H_k, W_k) at img_size
    prefix: int = 0  # leading non-grid tokens of a token sequence

    def to_map(self, output: torch.Tensor) -> torch.Tensor:
        """The tap output as a (B, C, H, W) map."""
        if self.kind == "NHWC":
            return output.permute(0, 3, 1, 2)  # (B, H, W, C) -> (B, C, H, W)
        if self.kind == "tokens":
            grid = output[:, self.prefix :]  # (B, h·w, C)
            return grid.transpose(1, 2).reshape(output.shape[0], self.channels, self.grid[0], self.grid[1])
        return output

    def from_map(self, output: torch.Tensor, feature_map: torch.Tensor) -> torch.Tensor:
        """The tap output with its map replaced by ``feature_map`` (the inverse of ``to_map``)."""
        if self.kind == "NHWC":
            return feature_map.permute(0, 2, 3, 1)  # (B, C, H, W) -> (B, H, W, C)
        if self.kind == "tokens":
            tokens = feature_map.flatten(2).transpose(1, 2)  # (B, h·w, C)
            return torch.cat([output[:, : self.prefix], tokens], dim=1) if self.prefix else tokens
        return feature_map


class _TapHook:
    """Forward hook on a tap module: ``output -> from_map(block(to_map(output)))``.

    A plain object (no closure), so ``copy.deepcopy`` of the model copies it along with the block it points to.
    The block is the caller's module (e.g. a MIIM owned by [`WRIMNet`][wrim.models.WRIMNet]); a block that
    takes modalities gets them from ``backbone.modalities`` (and ``num_visible=backbone.num_visible`` by keyword when
    that is set, for a modality-sorted batch; ``checked=True`` when the caller validated them), which each
    [`forward()`][wrim.models.StagedBackbone.forward] call sets (an attribute of this model, not global state:
    other models, processes and DDP ranks have their own). With
    gradient checkpointing a stage is recomputed in ``backward()``, which must therefore come before the next
    forward call of the same model, as in any training step.
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
        trusted = {"checked": True} if self.backbone.checked else {}  # validated by the caller: not again
        if self.takes_modalities and self.backbone.num_visible is not None:
            feature_map = self.block(
                feature_map, self.backbone.modalities, num_visible=self.backbone.num_visible, **trusted
            )
        elif self.takes_modalities:
            feature_map = self.block(feature_map, self.backbone.modalities, **trusted)
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
        self.img_size = _pair(img_size, "img_size")
        self.in_chans = in_chans
        self.modalities: torch.Tensor | None = None
        self.num_visible: int | None = None
        self.checked = False
        timm_kwargs = dict(kwargs, in_chans=in_chans)
        if pretrained_file is not None:
            state_dict = load_state_dict_file(pretrained_file)
            timm_kwargs["pretrained"] = True
        else:
            state_dict = None
            timm_kwargs["pretrained"] = bool(pretrained)
        info = _full_feature_info(name, timm_kwargs)
        self.out_indices = _choose_taps(name, info)
        self.takes_img_size = _takes_img_size(name, timm_kwargs)
        if self.takes_img_size:
            timm_kwargs["img_size"] = self.img_size
        if state_dict is not None:
            _check_backbone_state(name, state_dict, timm_kwargs, pretrained_file)
            timm_kwargs["pretrained_cfg_overlay"] = {"state_dict": state_dict}

        want_stride_one = last_stride in (None, 1)
        reason = ""
        model = None
        if want_stride_one:
            try:
                model = self._create(name, pretrained_file, dict(timm_kwargs, output_stride=16))
            except _TIMM_ERRORS as err:
                reason = f"timm's output_stride=16 is not supported ({type(err).__name__}: {_first_line(err)})"
        if model is None:
            model = self._create(name, pretrained_file, timm_kwargs)
        self.model = model
        self._install_taps()
        self.last_stride = 2
        if want_stride_one:
            if self._probe_grids()[2] == self._probe_grids()[3]:
                self.last_stride = 1
                if not last_stage_dilation:
                    for module in self.stage_modules(NUM_STAGES):
                        _undilate(module, name)
            else:
                reason = reason or "timm ignores output_stride=16"
                changed, failure = _remove_last_downsampling(self)
                if failure is None and self._probe_grids()[2] == self._probe_grids()[3]:
                    self.last_stride = 1
                else:
                    reason = f"{reason}; {failure or 'setting its stride-2 convolutions / pools to 1 did not work'}"
                    if changed:  # the stride surgery changed layers but did not work: rebuild unchanged
                        self.model = self._create(name, pretrained_file, timm_kwargs)
                        self._install_taps()
            if self.last_stride != 1:
                message = (
                    f"backbone {name!r} cannot run its last stage at stride 1 ({reason}); it keeps its own stride "
                    f"(stage reductions {self.reductions})"
                )
                if last_stride == 1:
                    raise ValueError(f"{message}. Pass last_stride=None (warn and go on) or last_stride=2")
                warnings.warn(f"{message}. Pass last_stride=2 to silence this warning", stacklevel=3)
        for layout, reduction in zip(self.layouts, self.reductions, strict=True):
            if layout.kind == "tokens" and (self.img_size[0] % reduction or self.img_size[1] % reduction):
                down = tuple(max(reduction, v // reduction * reduction) for v in self.img_size)
                up = tuple(-(-v // reduction) * reduction for v in self.img_size)
                raise ValueError(
                    f"img_size {self.img_size} is not a multiple of {name!r}'s token stride {reduction} (the "
                    f"border pixels would be dropped); use img_size={down} or {up}"
                )
        self.channels: tuple[int, ...] = tuple(layout.channels for layout in self.layouts)
        self.fixed_size = self.takes_img_size or any(layout.kind == "tokens" for layout in self.layouts)

    # ----------------------------------------------------------------------------------------------------- build

    def _create(self, name: str, pretrained_file: str | Path | None, timm_kwargs: dict) -> nn.Module:
        """The timm feature extractor for the chosen taps, with size errors that name working sizes."""
        try:
            return _timm_create(name, pretrained_file, features_only=True, out_indices=self.out_indices, **timm_kwargs)
        except (RuntimeError, AssertionError, ValueError) as err:  # e.g. a window size that does not fit img_size
            if "output_stride" in timm_kwargs or "img_size" not in timm_kwargs or "weights" in str(err):
                raise
            raise _size_error(name, self.img_size, err) from err

    def _install_taps(self) -> None:
        """Find the tap modules, measure their layouts with a dry run and hook them."""
        model = self.model
        info = model.feature_info
        names = info.module_name()
        hook_types = [info.info[i].get("hook_type", "forward") for i in info.out_indices]
        self.tap_names: tuple[str, ...] = tuple(_resolve(model, name, self.name) for name in names)
        if any(kind != "forward" for kind in hook_types):
            raise ValueError(
                f"backbone {self.name!r} exposes its features through {hook_types} hooks (a stage's input, not its "
                "output), so a block cannot sit after the stage; pick another backbone"
            )
        self.taps = [model.get_submodule(name) for name in self.tap_names]
        self.reductions: tuple[int, ...] = tuple(info.reduction())
        self.layouts, self.stage_of = _dry_run(self, tuple(info.channels()))
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
            takes_modalities: call ``block(map, modalities)`` with the modalities given to ``forward``.
        """
        self.hooks[index - 1].block = block
        self.hooks[index - 1].takes_modalities = takes_modalities

    def forward(
        self,
        images: torch.Tensor,
        modalities: torch.Tensor | None = None,
        num_visible: int | None = None,
        *,
        checked: bool = False,
    ) -> list[torch.Tensor]:
        """The feature pyramid after the blocks: (B, 3, H, W) -> [(B, C_k, H_k, W_k) for k = 1..4].

        Args:
            images: (B, 3, H, W).
            modalities: (B,) ids for blocks that take them.
            num_visible: for a modality-sorted batch, its visible count, passed on to blocks that take modalities
                (see [`ModalityMIIM`][wrim.layers.ModalityMIIM]); None for any batch.
            checked: keyword-only; the caller validated ``modalities`` (and ``num_visible``): blocks that take
                modalities get ``checked=True`` and do not validate them again.
        """
        self.checked = checked
        self.modalities = modalities  # read by the hooks; kept for a checkpointed stage's recomputation in backward
        self.num_visible = num_visible
        features = self.model(images)
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
        """timm's gradient checkpointing of the feature extractor, where it has one."""
        if not hasattr(self.model, "set_grad_checkpointing"):
            raise ValueError(f"backbone {self.name!r} ({type(self.model).__name__}) has no gradient checkpointing")
        self.model.set_grad_checkpointing(enable)


# --------------------------------------------------------------------------------------------------- helpers


def _pair(value: int | Sequence[int], name: str) -> tuple[int, int]:
    """An (H, W) pair from an int or a 2-sequence of positive ints."""
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) and v > 0 for v in pair):
        raise ValueError(f"{name} must be (H, W) positive ints, e.g. (288, 144); got {value!r}")
    return pair


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:200] if text else type(err).__name__


def _full_feature_info(name: str, timm_kwargs: dict) -> list[dict]:
    """Every feature level timm lists for ``name`` (built without weights, on the meta device where possible)."""
    kwargs = {key: value for key, value in timm_kwargs.items() if key not in ("pretrained", "pretrained_cfg_overlay")}
    try:
        with torch.device("meta"):
            model = timm.create_model(name, **kwargs)
    except Exception:  # noqa: BLE001 - some models compute with tensors in __init__; build them for real
        model = timm.create_model(name, **kwargs)
    info = getattr(model, "feature_info", None)
    if not info:
        raise ValueError(f"backbone {name!r} has no timm feature_info, so its stages are unknown; pick another model")
    return list(info)


def _choose_taps(name: str, info: list[dict]) -> tuple[int, ...]:
    """Indices into ``feature_info`` of the four stage ends.

    With at least four resolutions: the last level of each of the last four; with one resolution (ViT): the ends of
    four equal groups; otherwise the last four levels.
    """
    reductions = [entry["reduction"] for entry in info]
    if len(info) < NUM_STAGES:
        raise ValueError(
            f"backbone {name!r} has {len(info)} feature levels (reductions {reductions}); WRIMNet needs "
            f"{NUM_STAGES} (Block1..Block4). Pick a deeper model"
        )
    distinct = sorted(set(reductions))
    if len(distinct) >= NUM_STAGES:
        last_of = {reduction: i for i, reduction in enumerate(reductions)}
        return tuple(sorted(last_of[r] for r in distinct[-NUM_STAGES:]))
    if len(distinct) == 1:
        depth = len(info)
        return tuple(k * depth // NUM_STAGES - 1 for k in range(1, NUM_STAGES + 1))
    return tuple(range(len(info) - NUM_STAGES, len(info)))


def _takes_img_size(name: str, timm_kwargs: dict) -> bool:
    """Whether timm's model ``name`` accepts an ``img_size`` argument (checked on the meta device)."""
    kwargs = {key: value for key, value in timm_kwargs.items() if key not in ("pretrained", "pretrained_cfg_overlay")}
    try:
        with torch.device("meta"):
            timm.create_model(name, img_size=(224, 224), **kwargs)
    except TypeError as err:
        return "img_size" not in str(err)
    except Exception:  # noqa: BLE001 - accepted the argument, failed later on meta tensors
        return True
    return True


def _resolve(model: nn.Module, name: str, backbone: str) -> str:
    """The name, inside timm's feature extractor, of the module that ``feature_info`` calls ``name``."""
    head, _, tail = name.partition(".")
    candidates = [name, f"model.{name}", f"body.{name}", f"{head}_{tail}" if tail else name]
    candidates += [f"{head}_{tail.replace('.', '_', 1)}"] if "." in tail else []
    for candidate in candidates:
        try:
            model.get_submodule(candidate)
        except AttributeError:
            continue
        return candidate
    raise ValueError(
        f"cannot find {name!r} (named by timm's feature_info) in {backbone!r}'s feature extractor "
        f"({type(model).__name__}): its features are not the outputs of a chain of stages, so no block can be hooked "
        "after them; pick another backbone"
    )


def _layout(output, channels: int, reduction: int, img_size: tuple[int, int], name: str, stage: int) -> TapLayout:
    """The layout of a tap output measured in the dry run."""
    if isinstance(output, torch.Tensor) and output.dim() == 4:
        if output.shape[1] == channels:
            return TapLayout("NCHW", channels, tuple(output.shape[2:]))
        if output.shape[3] == channels:
            return TapLayout("NHWC", channels, tuple(output.shape[1:3]))
    if isinstance(output, torch.Tensor) and output.dim() == 3 and output.shape[2] == channels:
        tokens = output.shape[1]
        for rounding in (math.ceil, math.floor):
            grid = (rounding(img_size[0] / reduction), rounding(img_size[1] / reduction))
            prefix = tokens - grid[0] * grid[1]
            if 0 <= prefix <= 16:
                return TapLayout("tokens", channels, grid, prefix)
    shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
    raise ValueError(
        f"backbone {name!r}: stage {stage}'s output {shape} is not a (B, {channels}, H, W) map, a (B, H, W, "
        f"{channels}) map or a (B, N, {channels}) token sequence at reduction {reduction}; a block cannot sit there"
    )


def _dry_run(backbone: StagedBackbone, channels: tuple[int, ...]) -> tuple[list[TapLayout], dict[str, int]]:
    """One no-grad eval forward at ``img_size``: each tap's layout, and which stage every module runs in.

    ``stage_of[name]`` is k when the module's whole call lies in stage k, 0 when it spans several stages.
    """
    model, taps = backbone.model, backbone.taps
    outputs: dict[int, object] = {}
    done = [0]  # taps finished so far
    starts: dict[str, int] = {}
    stage_of: dict[str, int] = {}
    order: list[str] = []
    handles = []

    def pre(name):
        def fn(module, args):
            if name not in starts:
                starts[name] = done[0] + 1
                order.append(name)

        return fn

    def post(name, tap_index):
        def fn(module, args, output):
            end = done[0] + 1
            if tap_index is not None and tap_index not in outputs:
                outputs[tap_index] = output
                done[0] += 1
            if name in starts and name not in stage_of:
                stage_of[name] = starts[name] if starts[name] == end else 0

        return fn

    tap_index = {id(tap): i for i, tap in enumerate(taps)}
    for name, module in model.named_modules():
        if module is model:
            continue
        handles.append(module.register_forward_pre_hook(pre(name)))
        handles.append(module.register_forward_hook(post(name, tap_index.get(id(module)))))
    was_training = model.training
    model.eval()
    try:
        returned = _shape_run(model, (1, backbone.in_chans, *backbone.img_size))
    except Exception as err:  # noqa: BLE001 - a size the model cannot run
        raise _size_error(backbone.name, backbone.img_size, err) from err
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    backbone._order = order
    returned = list(returned.values()) if isinstance(returned, dict) else list(returned)
    channels_last = str(getattr(model, "output_fmt", "NCHW")).endswith("NHWC")
    backbone.returned = [
        "tokens" if f.dim() == 3 else "NHWC" if channels_last and f.shape[-1] == c else "NCHW"
        for f, c in zip(returned, channels, strict=True)
    ]  # the layout of each feature the extractor returns
    layouts = [
        _layout(outputs.get(i), channels[i], backbone.reductions[i], backbone.img_size, backbone.name, i + 1)
        for i in range(NUM_STAGES)
    ]
    return layouts, stage_of


def _shape_run(model: nn.Module, shape: tuple[int, ...]):
    """A no-grad forward of zeros: on fake tensors (shapes only, no compute) where the model allows, else real.

    Returns:
        the model's output.
    """
    with torch.no_grad():
        try:
            with FakeTensorMode(allow_non_fake_inputs=True) as mode:
                return model(mode.from_tensor(torch.zeros(shape)))
        except Exception:  # noqa: BLE001 - data-dependent code (.item(), numpy) needs real tensors
            pass
        return model(torch.zeros(shape))


def _remove_last_downsampling(backbone: StagedBackbone) -> tuple[int, str | None]:
    """Set the stride-2 convs / pools that run in stage 4 to stride 1, then re-measure.

    Returns:
        how many layers changed, and why it did not work (None when the backbone ran).
    """
    changed = 0
    for module in backbone.stage_modules(NUM_STAGES):
        for layer in module.modules():
            if isinstance(layer, nn.Conv2d) and max(layer.stride) > 1:
                shrinks = layer.padding != tuple((k - 1) // 2 for k in layer.kernel_size)
                layer.stride = (1, 1)
                if shrinks and type(layer) is nn.Conv2d and layer.padding_mode == "zeros":
                    layer.padding = "same"
                changed += 1
            elif isinstance(layer, (nn.MaxPool2d, nn.AvgPool2d)) and layer.stride not in (1, (1, 1)):
                one = (1, 1) if isinstance(layer.stride, tuple) else 1  # timm's *Same pools expect tuples
                if layer.kernel_size == layer.stride:  # a 2x2/2 pool: no pooling at stride 1
                    layer.kernel_size = one
                layer.stride = one
                changed += 1
    if not changed:
        return 0, "its last stage has no stride-2 convolution or pooling to change (it downsamples otherwise)"
    for handle in backbone._handles:
        handle.remove()
    try:
        backbone._install_taps()
        with torch.no_grad():  # a real training-mode pass too (some models cache position biases in eval)
            copy.deepcopy(backbone.model).train()(torch.zeros(2, backbone.in_chans, *backbone.img_size))
    except (ValueError, RuntimeError) as err:
        return changed, f"with its stride-2 layers set to 1 it fails ({_first_line(err.__cause__ or err)})"
    return changed, None


def _size_error(name: str, img_size: tuple[int, int], err: BaseException) -> ValueError:
    """A ValueError for a size the model cannot run, naming sizes that work (its pretrained size; multiples)."""
    cfg = timm.models.get_pretrained_cfg(timm.models.split_model_name_tag(name)[0])
    native = tuple(cfg.input_size[1:]) if cfg is not None and getattr(cfg, "input_size", None) else (224, 224)
    multiples = []
    for multiple in (16, 32, 64, 112, 224):
        size = (-(-img_size[0] // multiple) * multiple, -(-img_size[1] // multiple) * multiple)
        multiples.append(f"{size} (multiples of {multiple})")
    return ValueError(
        f"backbone {name!r} cannot run at img_size={img_size} ({type(err).__name__}: {_first_line(err)}). It runs "
        f"at its pretrained size {native}; depending on its patch / window sizes one of these may work: "
        f"{', '.join(multiples)}"
    )


def _check_backbone_state(
    name: str, state_dict: dict[str, torch.Tensor], timm_kwargs: dict, pretrained_file: str | Path
) -> None:
    """Raise a ValueError listing missing / unexpected / mis-shaped keys of a backbone weights file.

    The reference is the timm classification model (built on the meta device, no memory); its classifier is
    ignored, and so is the shape of a ViT's positional embedding (timm resizes it to ``img_size``).
    """
    kwargs = {key: value for key, value in timm_kwargs.items() if key not in ("pretrained", "pretrained_cfg_overlay")}
    with torch.device("meta"):
        reference = timm.create_model(name, **kwargs)
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
