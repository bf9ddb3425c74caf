"""Reading and building timm models for [`StagedBackbone`][wrim.models.StagedBackbone] (private to ``wrim.models``).

The tap choice from timm's ``feature_info``, the dry run that measures each tap's output layout (`TapLayout`), the
last-stride surgery, and ``timm.create_model`` with local weights and errors that say what to do. The module-level
docstring of ``wrim.models.backbone`` describes the rules.

Shapes: ``B`` batch, ``C_k`` channels of stage ``k``, ``H_k, W_k`` its map size, ``N`` tokens.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import timm
import torch
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode

NUM_STAGES = 4


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


class DryRun(NamedTuple):
    """What `dry_run` measures."""

    layouts: list[TapLayout]  # each tap's output layout
    stage_of: dict[str, int]  # module name -> the stage its whole call lies in (0: several)
    order: list[str]  # module names in call order
    returned: list[str]  # the layout ("NCHW", "NHWC", "tokens") of each feature the extractor returns


def first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:200] if text else type(err).__name__


def full_feature_info(name: str, timm_kwargs: dict) -> list[dict]:
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


def choose_taps(name: str, info: list[dict]) -> tuple[int, ...]:
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


def takes_img_size(name: str, timm_kwargs: dict) -> bool:
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


def resolve_tap(model: nn.Module, name: str, backbone: str) -> str:
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


def measure_layout(
    output, channels: int, reduction: int, img_size: tuple[int, int], name: str, stage: int
) -> TapLayout:
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


def dry_run(
    model: nn.Module,
    taps: list[nn.Module],
    channels: tuple[int, ...],
    reductions: tuple[int, ...],
    shape: tuple[int, int, int],
    name: str,
) -> DryRun:
    """One no-grad eval forward of ``model`` on a (1, *shape) input: each tap's layout, which stage every module
    runs in, the modules in call order and the layout of each feature the extractor returns.

    ``stage_of[name]`` is k when the module's whole call lies in stage k, 0 when it spans several stages.
    """
    outputs: dict[int, object] = {}
    done = [0]  # taps finished so far
    starts: dict[str, int] = {}
    stage_of: dict[str, int] = {}
    order: list[str] = []
    handles = []

    def pre(module_name):
        def fn(module, args):
            if module_name not in starts:
                starts[module_name] = done[0] + 1
                order.append(module_name)

        return fn

    def post(module_name, tap_index):
        def fn(module, args, output):
            end = done[0] + 1
            if tap_index is not None and tap_index not in outputs:
                outputs[tap_index] = output
                done[0] += 1
            if module_name in starts and module_name not in stage_of:
                stage_of[module_name] = starts[module_name] if starts[module_name] == end else 0

        return fn

    tap_index = {id(tap): i for i, tap in enumerate(taps)}
    for module_name, module in model.named_modules():
        if module is model:
            continue
        handles.append(module.register_forward_pre_hook(pre(module_name)))
        handles.append(module.register_forward_hook(post(module_name, tap_index.get(id(module)))))
    was_training = model.training
    model.eval()
    try:
        returned = shape_run(model, (1, *shape))
    except Exception as err:  # noqa: BLE001 - a size the model cannot run
        raise size_error(name, shape[1:], err) from err
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    layouts = [
        measure_layout(outputs.get(i), channels[i], reductions[i], shape[1:], name, i + 1) for i in range(NUM_STAGES)
    ]
    return DryRun(layouts, stage_of, order, returned_layouts(model, returned, channels))


def returned_layouts(model: nn.Module, returned, channels: tuple[int, ...]) -> list[str]:
    """The layout ("NCHW", "NHWC" or "tokens") of each feature a timm feature extractor returns."""
    returned = list(returned.values()) if isinstance(returned, dict) else list(returned)
    channels_last = str(getattr(model, "output_fmt", "NCHW")).endswith("NHWC")
    return [
        "tokens" if f.dim() == 3 else "NHWC" if channels_last and f.shape[-1] == c else "NCHW"
        for f, c in zip(returned, channels, strict=True)
    ]


def shape_run(model: nn.Module, shape: tuple[int, ...]):
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


def remove_last_downsampling(modules: list[nn.Module]) -> int:
    """Set the stride-2 convs / pools inside ``modules`` (the last stage's) to stride 1.

    Returns:
        how many layers changed.
    """
    changed = 0
    for module in modules:
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
    return changed


def size_error(name: str, img_size: tuple[int, int], err: BaseException) -> ValueError:
    """A ValueError for a size the model cannot run, naming sizes that work (its pretrained size; multiples)."""
    cfg = timm.models.get_pretrained_cfg(timm.models.split_model_name_tag(name)[0])
    native = tuple(cfg.input_size[1:]) if cfg is not None and getattr(cfg, "input_size", None) else (224, 224)
    multiples = []
    for multiple in (16, 32, 64, 112, 224):
        size = (-(-img_size[0] // multiple) * multiple, -(-img_size[1] // multiple) * multiple)
        multiples.append(f"{size} (multiples of {multiple})")
    return ValueError(
        f"backbone {name!r} cannot run at img_size={img_size} ({type(err).__name__}: {first_line(err)}). It runs "
        f"at its pretrained size {native}; depending on its patch / window sizes one of these may work: "
        f"{', '.join(multiples)}"
    )


def check_backbone_state(
    name: str, state_dict: dict[str, torch.Tensor], timm_kwargs: dict, pretrained_file: str | Path
) -> None:
    """Raise a ValueError listing missing / unexpected / mis-shaped keys of a backbone weights file.

    The reference is the timm classification model (built on the meta device, no memory); its classifier is
    ignored, and so is the shape of a ViT's positional embedding (timm resizes it to ``img_size``).
    """
    kwargs = {key: value for key, value in timm_kwargs.items() if key not in ("pretrained", "pretrained_cfg_overlay")}
    try:
        with torch.device("meta"):
            reference = timm.create_model(name, **kwargs)
    except (NotImplementedError, RuntimeError):  # a model calling .item() in __init__ (timm 1.0.20 and older: ViT)
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


def timm_create(name: str, pretrained_file: str | Path | None, **kwargs) -> nn.Module:
    """``timm.create_model`` with clear errors for failed downloads and mismatching local weights."""
    try:
        return timm.create_model(name, **kwargs)
    except (RuntimeError, OSError) as err:  # huggingface_hub / urllib: no internet, no cache, no such weights
        if kwargs.get("pretrained") and pretrained_file is None:
            raise download_error(name, err) from err
        raise


def download_error(name: str, err: Exception) -> RuntimeError:
    return RuntimeError(
        f"could not get timm's pretrained weights for {name!r} ({type(err).__name__}: {str(err)[:300]}). "
        "Without internet, download the weights elsewhere (e.g. timm.create_model(name, pretrained=True) and "
        "safetensors.torch.save_file(model.state_dict(), 'backbone.safetensors')) and pass "
        "pretrained_file='backbone.safetensors' instead of pretrained=True"
    )


def undilate(module: nn.Module, name: str) -> None:
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
