"""Typed training configuration: dataclasses, YAML files shipped in ``wrim/configs/`` and dotted overrides.

A run is described by one [`Config`][wrim.engine.Config] made of five sections (``model``, ``data``, ``loss``,
``optim``, ``eval``) plus a few top-level fields. The shipped YAML files (``synthetic``, ``sysu``, ``regdb``, ``llcm``)
fill it in; command-line overrides such as ``model.name=wrimnet_resnet18 optim.lr=0.01`` change single fields. An
unknown key is a ``ValueError`` that lists the valid keys of its section, and every value is converted to its
field's declared type (``"1e-3"`` becomes a float for a float field), so typos fail before training starts.

Examples:
    >>> cfg = load_config("synthetic", ["epochs=1", "data.img_size=[64,32]"])
    >>> cfg.data.img_size
    (64, 32)
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "Config",
    "DataConfig",
    "EvalConfig",
    "LossConfig",
    "ModelConfig",
    "OptimConfig",
    "apply_overrides",
    "config_from_dict",
    "config_to_dict",
    "list_configs",
    "load_config",
    "save_config",
]

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


@dataclass
class ModelConfig:
    """Which network to build and how to run it.

    Args:
        name: a ``wrim.models.create_model`` name, e.g. ``"wrimnet_resnet50"`` (the paper) or
            ``"baseline_resnet18"``.
        pretrained: ask timm for ImageNet backbone weights (needs internet).
        pretrained_file: local backbone weights (.safetensors or .pth) instead of a download.
        kwargs: further keyword arguments for ``create_model`` (e.g. ``last_stride``, ``separate_stages``).
        sync_bn: convert BatchNorm to SyncBatchNorm under DDP (all ranks share batch statistics).
        channels_last: keep weights and images in ``torch.channels_last`` memory format.
        compile: wrap the model in ``torch.compile``.
    """

    name: str = "wrimnet_resnet50"
    pretrained: bool = True
    pretrained_file: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    sync_bn: bool = False
    channels_last: bool = True
    compile: bool = False


@dataclass
class DataConfig:
    """Training data and its sampler.

    Args:
        dataset: ``"synthetic"``, ``"sysu"``, ``"regdb"`` or ``"llcm"``.
        root: the dataset folder in its native layout (``None`` for the synthetic set: a cache folder).
        dataset_kwargs: further constructor arguments of the dataset class (e.g. ``num_ids`` of the synthetic
            set, ``trial`` of RegDB).
        img_size: (H, W) of the training and test images.
        num_ids: identities per batch (per process under DDP).
        num_instances: visible and infrared images per identity per batch; a batch holds
            ``num_ids * 2 * num_instances`` images.
        num_workers: DataLoader worker processes.
        channel_aug: random channel exchange / grayscale of visible images (CAJ).
        random_erasing: probability of random erasing.
        strict_check: a real dataset whose counts differ from the published statistics (``wrim check-data``) is an
            error at the start of training instead of a one-line warning.
    """

    dataset: str = "sysu"
    root: str | None = None
    dataset_kwargs: dict[str, Any] = field(default_factory=dict)
    img_size: tuple[int, int] = (384, 128)
    num_ids: int = 16
    num_instances: int = 4
    num_workers: int = 4
    channel_aug: bool = True
    random_erasing: float = 0.5
    strict_check: bool = False


@dataclass
class LossConfig:
    """Loss terms and weights: ``id_weight * sum_heads CE + metric_weight * metric``.

    Args:
        id_weight: weight of the identity (cross-entropy) loss, summed over every head's logits.
        label_smoothing: label smoothing of the cross-entropy ([D] 0.1).
        metric: ``"aicl"`` (the paper: CMKIC on P5 and P4), ``"triplet"`` (batch-hard triplet),
            ``"wr_triplet"`` (AGW's weighted-regularisation triplet) or ``"none"``. The triplet variants are
            applied to the same P5/P4 projections with the same P5/P4 weights, so an ablation changes one thing.
        metric_weight: weight of the metric term.
        k: number of key instances (hardest cross-modality positives) in CMKIC.
        temperature: CMKIC temperature.
        p5_weight: weight of the P5 term.
        p4_weight: weight of the P4 (auxiliary) term.
        p5_keys_from_p4: choose P5's key instances by P4 similarity.
        margin: margin of the batch-hard triplet loss.
        cross_modality: restrict the triplet losses to cross-modality pairs.
    """

    id_weight: float = 1.0
    label_smoothing: float = 0.1
    metric: str = "aicl"
    metric_weight: float = 1.0
    k: int = 2
    temperature: float = 0.1
    p5_weight: float = 1.0
    p4_weight: float = 0.5
    p5_keys_from_p4: bool = False
    margin: float = 0.3
    cross_modality: bool = False


@dataclass
class OptimConfig:
    """Optimiser and learning-rate schedule.

    Args:
        name: ``"sgd"`` (momentum, optionally Nesterov) or ``"adamw"``.
        lr: base learning rate (head parameters).
        backbone_lr_mult: learning-rate factor of the backbone parameters (AGW: 0.1 with ImageNet weights).
        weight_decay: weight decay of every parameter.
        momentum: SGD momentum.
        nesterov: SGD Nesterov momentum.
        betas: AdamW betas.
        schedule: ``"step"`` (AGW: ``lr * (e + 1) / warmup_epochs`` for epochs ``e < warmup_epochs``, then
            multiplied by ``gamma`` at each milestone; changes at epoch boundaries) or ``"cosine"`` (linear warmup
            per iteration, then cosine decay to ``min_lr_factor * lr``).
        warmup_epochs: length of the warmup, in epochs.
        milestones: epochs where the step schedule multiplies the learning rate by ``gamma``.
        gamma: step factor.
        min_lr_factor: final learning-rate factor of the cosine schedule.
        clip_grad_norm: clip the global gradient norm to this value; ``None`` disables clipping.
    """

    name: str = "sgd"
    lr: float = 0.1
    backbone_lr_mult: float = 0.1
    weight_decay: float = 5e-4
    momentum: float = 0.9
    nesterov: bool = True
    betas: tuple[float, float] = (0.9, 0.999)
    schedule: str = "step"
    warmup_epochs: int = 10
    milestones: tuple[int, ...] = (20, 50)
    gamma: float = 0.1
    min_lr_factor: float = 0.01
    clip_grad_norm: float | None = None


@dataclass
class EvalConfig:
    """Evaluation during and after training (``wrim.evaluation.evaluate_protocol``).

    Args:
        every: evaluate every this many epochs (and always after the last one); 0 evaluates only at the end.
        trials: gallery trials used during training (the field evaluates trial 0 only while training).
        final_trials: trials of the final evaluation; ``None`` uses the dataset's default trials (all 10 on
            SYSU-MM01/LLCM/synthetic).
        protocol: protocol keyword arguments of ``test_split`` (e.g. ``{mode: all}`` or ``{direction: v2t}``).
        batch_size: test batch size.
        flip: add the horizontally flipped image's embedding.
        ranklist: write a rank-list PNG at the end (needs matplotlib).
    """

    every: int = 2
    trials: tuple[int, ...] | None = (0,)
    final_trials: tuple[int, ...] | None = None
    protocol: dict[str, Any] = field(default_factory=dict)
    batch_size: int = 128
    flip: bool = False
    ranklist: bool = True


@dataclass
class Config:
    """A whole training run.

    Args:
        name: the config's name; run folders are called ``<name>-<timestamp>`` unless ``run_name`` is set.
        epochs: number of training epochs.
        seed: seed of every random generator (python, numpy, torch, sampler, DataLoader workers).
        device: ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        amp: ``"auto"`` (bf16 autocast on CUDA, fp32 on CPU), ``"bf16"``, ``"fp16"`` or ``"none"``.
        output_dir: parent folder of the run folders.
        run_name: run folder name inside ``output_dir``.
        log_every: update the progress-bar / TensorBoard step values every this many iterations.
        progress: tqdm progress bars: ``true``, ``false`` or ``"auto"`` (bars only when stderr, where they are
            drawn, is a terminal; a redirected log then gets one line per epoch and evaluation instead of bar frames).
        model: see [`ModelConfig`][wrim.engine.ModelConfig].
        data: see [`DataConfig`][wrim.engine.DataConfig].
        loss: see [`LossConfig`][wrim.engine.LossConfig].
        optim: see [`OptimConfig`][wrim.engine.OptimConfig].
        eval: see [`EvalConfig`][wrim.engine.EvalConfig].
    """

    name: str = "custom"
    epochs: int = 120
    seed: int = 0
    device: str = "auto"
    amp: str = "auto"
    output_dir: str = "runs"
    run_name: str | None = None
    log_every: int = 10
    progress: bool | str = "auto"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def __post_init__(self) -> None:
        _check_choice("loss.metric", self.loss.metric, ("aicl", "triplet", "wr_triplet", "none"))
        _check_choice("optim.name", self.optim.name, ("sgd", "adamw"))
        _check_choice("optim.schedule", self.optim.schedule, ("step", "cosine"))
        _check_choice("amp", self.amp, ("auto", "bf16", "fp16", "none"))
        _check_choice("data.dataset", self.data.dataset, ("synthetic", "sysu", "regdb", "llcm"))
        if self.progress not in (True, False, "auto"):
            raise ValueError(f"progress must be true, false or auto, got {self.progress!r}")
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.eval.every < 0:
            raise ValueError(f"eval.every must be >= 0 (0 = only at the end), got {self.eval.every}")


def _check_choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{key} must be one of {list(choices)}, got {value!r}")


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Converts ``value`` (from YAML or the command line) to the annotated type ``tp``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        is_none = value is None or (isinstance(value, str) and value.lower() in ("none", "null", "~"))
        if is_none and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except (TypeError, ValueError) as err:
                errors.append(str(err))
        raise ValueError(f"{key}: cannot use {value!r}: " + "; ".join(errors))
    if tp is Any:
        return value
    if isinstance(value, str) and (tp in (int, float, bool) or origin in (tuple, list, dict)):
        value = yaml.safe_load(value)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ValueError(f"{key} must be true or false, got {value!r}")
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
            raise ValueError(f"{key} must be an integer, got {value!r}")
        return int(value)
    if tp is float:
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError as err:
                raise ValueError(f"{key} must be a number, got {value!r}") from err
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{key} must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ValueError(f"{key} must be a string, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{key} must be a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], key) for v in value)
        if len(value) != len(args):
            raise ValueError(f"{key} must be a list of {len(args)} values, got {value!r}")
        return tuple(_coerce(v, a, key) for v, a in zip(value, args))
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{key} must be a list, got {value!r}")
        return [_coerce(v, args[0], key) for v in value]
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{key} must be a mapping, got {value!r}")
        return dict(value)
    raise TypeError(f"{key}: unsupported config type {tp!r}")


def _build(cls: type, data: dict[str, Any], prefix: str) -> Any:
    if not isinstance(data, dict):
        raise ValueError(f"{prefix or 'config'} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in data if k not in names]
    if unknown:
        where = f"section {prefix!r}" if prefix else "the top level"
        raise ValueError(f"unknown config key(s) {[prefix + k for k in unknown]} in {where}; valid keys: {names}")
    kwargs = {}
    for name, value in data.items():
        tp = hints[name]
        if _is_dataclass_type(tp):
            kwargs[name] = _build(tp, value or {}, f"{prefix}{name}.")
        else:
            kwargs[name] = _coerce(value, tp, prefix + name)
    return cls(**kwargs)


def config_from_dict(data: dict[str, Any]) -> Config:
    """Builds a [`Config`][wrim.engine.Config] from a nested mapping (missing keys keep their defaults).

    Raises:
        ValueError: an unknown key (the message lists the valid ones) or a value of the wrong type.
    """
    return _build(Config, data, "")


def config_to_dict(config: Config) -> dict[str, Any]:
    """Returns ``config`` as plain nested dicts / lists (tuples become lists), ready for YAML or JSON."""

    def plain(v: Any) -> Any:
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(dataclasses.asdict(config))


def apply_overrides(config: Config, overrides: list[str]) -> Config:
    """Returns a copy of ``config`` with ``key=value`` overrides applied.

    Args:
        config: the base configuration.
        overrides: strings like ``"optim.lr=0.01"``, ``"data.img_size=[128,64]"`` or ``"model.kwargs.last_stride=2"``
            (values are parsed as YAML, then converted to the field's type).

    Raises:
        ValueError: a malformed override or an unknown key (the message lists the valid keys).
    """
    data = config_to_dict(config)
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} must look like key=value, e.g. optim.lr=0.01")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        node: dict[str, Any] = data
        cls: Any = Config
        for i, part in enumerate(parts[:-1]):
            if cls is not None:
                names = [f.name for f in dataclasses.fields(cls)]
                if part not in names:
                    raise ValueError(f"unknown config key {'.'.join(parts[: i + 1])!r}; valid keys: {names}")
                hint = typing.get_type_hints(cls)[part]
                cls = hint if _is_dataclass_type(hint) else None
            elif not isinstance(node.get(part, {}), dict):
                raise ValueError(f"cannot set {key!r}: {'.'.join(parts[: i + 1])!r} is not a mapping")
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"cannot set {key!r}: {'.'.join(parts[: i + 1])!r} is not a section")
        if cls is not None:
            names = [f.name for f in dataclasses.fields(cls)]
            if parts[-1] not in names:
                raise ValueError(f"unknown config key {key!r}; valid keys: {names}")
            node[parts[-1]] = raw
        else:
            node[parts[-1]] = yaml.safe_load(raw)
    return config_from_dict(data)


def list_configs() -> list[str]:
    """Names of the configs shipped in ``wrim/configs/`` (usable as ``wrim train --config NAME``)."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def load_config(name_or_path: str | Path = "synthetic", overrides: list[str] | None = None) -> Config:
    """Loads a shipped config by name or a YAML file by path, then applies ``overrides``.

    Args:
        name_or_path: ``"synthetic"``, ``"sysu"``, ``"regdb"``, ``"llcm"`` or the path of a YAML file.
        overrides: ``key=value`` strings, see [`apply_overrides()`][wrim.engine.apply_overrides].

    Raises:
        ValueError: an unknown config name or missing file (lists the shipped names), or a bad key or value.
    """
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        shipped = CONFIG_DIR / f"{name_or_path}.yaml"
        if not shipped.is_file():
            raise ValueError(
                f"unknown config {str(name_or_path)!r}; shipped configs: {list_configs()}, or a .yaml path"
            )
        path = shipped
    elif not path.is_file():
        raise ValueError(f"config file {str(path)!r} does not exist; shipped configs: {list_configs()}")
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict):
        raise ValueError(f"config file {str(path)!r} must hold a mapping at the top level")
    data.setdefault("name", path.stem)
    config = config_from_dict(data)
    return apply_overrides(config, overrides or [])


def save_config(config: Config, path: str | Path) -> None:
    """Writes ``config`` as YAML (the resolved config of a run: every field, defaults included)."""
    Path(path).write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False), encoding="utf-8")
