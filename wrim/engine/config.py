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
import hashlib
import inspect
import json
import math
import re
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
    "config_diff",
    "config_from_dict",
    "config_sha256",
    "config_to_dict",
    "list_configs",
    "load_config",
    "option",
    "read_yaml",
    "save_config",
    "structural_changes",
]

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


def option(
    default: Any,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    choices: tuple[str, ...] | None = None,
    pattern: str | None = None,
    nonempty: bool = False,
) -> Any:
    """A config field with its allowed values, checked when the config is built (``None`` is always allowed for an
    optional field; bounds apply to every element of a tuple).

    Args:
        default: the default value (a tuple for sequence fields).
        ge: inclusive lower bound; gt: exclusive lower bound; le: inclusive upper bound; lt: exclusive upper bound.
        choices: the allowed strings.
        pattern: a regular expression the whole string must match.
        nonempty: the string must not be empty.
    """
    rules = {
        k: v for k, v in dict(ge=ge, gt=gt, le=le, lt=lt, choices=choices, pattern=pattern).items() if v is not None
    }
    if nonempty:
        rules["pattern"] = r".+"
    return field(default=default, metadata={"rules": rules})


_BOUNDS = {"ge": (">=", lambda v, b: v >= b), "gt": (">", lambda v, b: v > b),
           "le": ("<=", lambda v, b: v <= b), "lt": ("<", lambda v, b: v < b)}  # fmt: skip


def _validate(obj: Any, prefix: str) -> None:
    """Checks every field of the dataclass ``obj`` against the rules given by `option()`."""
    for f in dataclasses.fields(obj):
        rules = f.metadata.get("rules")
        value = getattr(obj, f.name)
        if not rules or value is None:
            continue
        key = prefix + f.name
        if "choices" in rules and value not in rules["choices"]:
            if all(isinstance(c, (bool, str)) for c in rules["choices"]) and True in rules["choices"]:
                words = [str(c).lower() if isinstance(c, bool) else c for c in rules["choices"]]
                raise ValueError(f"{key} must be {', '.join(words[:-1])} or {words[-1]}, got {value!r}")
            raise ValueError(f"{key} must be one of {list(rules['choices'])}, got {value!r}")
        if "pattern" in rules and not re.fullmatch(rules["pattern"], str(value)):
            raise ValueError(f"{key}={value!r} is not allowed: it must match {rules['pattern']!r}")
        for name, (sign, ok) in _BOUNDS.items():
            if name in rules:
                for v in value if isinstance(value, (tuple, list)) else (value,):
                    if not (isinstance(v, (int, float)) and math.isfinite(v) and ok(v, rules[name])):
                        raise ValueError(f"{key} must be {sign} {rules[name]} (and finite), got {value!r}")


@dataclass
class ModelConfig:
    """Which network to build and how to run it.

    Args:
        name: a ``wrim.models.create_model`` name, e.g. ``"wrimnet_resnet50"`` (the paper) or
            ``"baseline_resnet18"``.
        pretrained: ask timm for ImageNet backbone weights (needs internet).
        pretrained_tag: which of timm's weights for the backbone, e.g. ``tv_in1k`` (torchvision's original ImageNet
            weights, the start of AGW, CAJ and DEEN: [D] in the paper configs); ``None`` = timm's default tag
            (``a1_in1k`` for ``resnet50``). See docs/reproducing.md, "Which weights".
        pretrained_file: local backbone weights (.safetensors or .pth) instead of a download.
        kwargs: further keyword arguments for ``create_model`` (e.g. ``last_stride``, ``separate_stages``).
        sync_bn: under DDP, take every BatchNorm's training statistics over all ranks (torch's SyncBatchNorm on
            CUDA, ``wrim.distributed.CrossRankBatchNorm`` on the CPU) and ModalityMIIM's per-modality statistics
            too; ``false`` keeps per-rank statistics. No effect in one process.
        channels_last: keep weights and images in ``torch.channels_last`` memory format.
        compile: compile the whole training step (forward, losses, backward: ``Trainer.train_step``) with
            ``torch.compile``, one graph.
    """

    name: str = option("wrimnet_resnet50", nonempty=True)
    pretrained: bool = True
    pretrained_file: str | None = None
    pretrained_tag: str | None = option(None, pattern=r"[a-z0-9_]+")
    kwargs: dict[str, Any] = field(default_factory=dict)
    sync_bn: bool = True
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
        exchange_prob: probability of the channel exchange on a visible image when ``channel_aug`` ([D] 0.5).
        channel_gray: upper bound of the exchange's drawn index: 2 = CAJ's code (R, G or B copied, the grayscale
            outcome never drawn), 3 = a 1/4 chance each of R, G, B and grayscale (CAJ's paper). [D] 2.
        random_erasing: probability of random erasing.
        skip_bad_images: skip (and count in the log) training images that cannot be decoded, instead of stopping
            with an error naming the file.
        strict_check: a real dataset whose counts differ from the published statistics (``wrim check-data``) is an
            error at the start of training instead of a one-line warning.
    """

    dataset: str = option("sysu", choices=("synthetic", "sysu", "regdb", "llcm"))
    root: str | None = None
    dataset_kwargs: dict[str, Any] = field(default_factory=dict)
    img_size: tuple[int, int] = option((384, 128), ge=8)
    num_ids: int = option(16, ge=1)
    num_instances: int = option(4, ge=1)
    num_workers: int = option(4, ge=0)
    channel_aug: bool = True
    exchange_prob: float = option(0.5, ge=0, le=1)
    channel_gray: int = option(2, choices=(2, 3))
    random_erasing: float = option(0.5, ge=0, le=1)
    skip_bad_images: bool = False
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
        gather_across_ranks: under DDP, compute the metric loss (CMKIC/AICL or the triplet variants) over the
            samples of every rank, so that N processes train like one process on the global batch; ``false`` keeps
            each rank's metric loss local to its shard (the behaviour of 0.1.0). No effect in one process.
    """

    id_weight: float = option(1.0, ge=0)
    label_smoothing: float = option(0.1, ge=0, lt=1)
    metric: str = option("aicl", choices=("aicl", "triplet", "wr_triplet", "none"))
    metric_weight: float = option(1.0, ge=0)
    k: int = option(2, ge=1)
    temperature: float = option(0.1, gt=0)
    p5_weight: float = option(1.0, ge=0)
    p4_weight: float = option(0.5, ge=0)
    p5_keys_from_p4: bool = False
    margin: float = option(0.3, ge=0)
    cross_modality: bool = False
    gather_across_ranks: bool = True


@dataclass
class OptimConfig:
    """Optimiser and learning-rate schedule.

    Args:
        name: ``"sgd"`` (momentum, optionally Nesterov), ``"adam"`` (``torch.optim.Adam``: weight decay is an L2
            term added to the gradient, the BoT / fast-reid recipe of Adam 3.5e-4) or ``"adamw"`` (decoupled
            weight decay). Every trainable parameter gets ``weight_decay``, BatchNorm and biases included.
        lr: base learning rate (head parameters).
        backbone_lr_mult: learning-rate factor of the backbone parameters (AGW: 0.1 with ImageNet weights).
        weight_decay: weight decay of every parameter.
        momentum: SGD momentum.
        nesterov: SGD Nesterov momentum.
        betas: Adam / AdamW betas.
        schedule: ``"step"`` (AGW: ``lr * (e + 1) / warmup_epochs`` for epochs ``e < warmup_epochs``, then
            multiplied by ``gamma`` at each milestone; changes at epoch boundaries) or ``"cosine"`` (linear warmup
            per iteration, then cosine decay to ``min_lr_factor * lr``).
        warmup_epochs: length of the warmup, in epochs.
        milestones: epochs where the step schedule multiplies the learning rate by ``gamma``.
        gamma: step factor.
        min_lr_factor: final learning-rate factor of the cosine schedule.
        clip_grad_norm: clip the global gradient norm to this value (> 0); ``None`` disables clipping.
    """

    name: str = option("sgd", choices=("sgd", "adam", "adamw"))
    lr: float = option(0.1, gt=0)
    backbone_lr_mult: float = option(0.1, ge=0)
    weight_decay: float = option(5e-4, ge=0)
    momentum: float = option(0.9, ge=0, lt=1)
    nesterov: bool = True
    betas: tuple[float, float] = option((0.9, 0.999), ge=0, lt=1)
    schedule: str = option("step", choices=("step", "cosine"))
    warmup_epochs: int = option(10, ge=0)
    milestones: tuple[int, ...] = option((20, 50), ge=0)
    gamma: float = option(0.1, gt=0)
    min_lr_factor: float = option(0.01, ge=0, le=1)
    clip_grad_norm: float | None = option(None, gt=0)


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

    every: int = option(2, ge=0)
    trials: tuple[int, ...] | None = option((0,), ge=0)
    final_trials: tuple[int, ...] | None = option(None, ge=0)
    protocol: dict[str, Any] = field(default_factory=dict)
    batch_size: int = option(128, ge=1)
    flip: bool = False
    ranklist: bool = True


@dataclass
class Config:
    """A whole training run.

    Args:
        name: the config's name; run folders are called ``<name>-<UTC time to the microsecond>-<pid>`` unless
            ``run_name`` is set.
        epochs: number of training epochs.
        seed: seed of every random generator (python, numpy, torch, sampler, DataLoader workers).
        device: ``"auto"`` (CUDA when available, else CPU), ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        amp: ``"auto"`` (bf16 autocast on CUDA, fp32 on CPU), ``"bf16"``, ``"fp16"`` or ``"none"``.
        output_dir: parent folder of the run folders.
        run_name: run folder name inside ``output_dir``.
        log_every: update the progress-bar / TensorBoard step values every this many iterations.
        progress: tqdm progress bars: ``true``, ``false`` or ``"auto"`` (bars only when stderr, where they are
            drawn, is a terminal; a redirected log then gets one line per epoch and evaluation instead of bar frames).
        keep_checkpoints: checkpoint sets kept in ``<run>/checkpoints`` (the newest ones; those ``last.json``
            and ``best.json`` point at are always kept).
        model: see [`ModelConfig`][wrim.engine.ModelConfig].
        data: see [`DataConfig`][wrim.engine.DataConfig].
        loss: see [`LossConfig`][wrim.engine.LossConfig].
        optim: see [`OptimConfig`][wrim.engine.OptimConfig].
        eval: see [`EvalConfig`][wrim.engine.EvalConfig].
    """

    name: str = option("custom", pattern=r"[\w.+-]+")
    epochs: int = option(120, ge=1)
    seed: int = option(0, ge=0)
    device: str = option("auto", pattern=r"auto|cpu|mps|cuda(:\d+)?")
    amp: str = option("auto", choices=("auto", "bf16", "fp16", "none"))
    output_dir: str = option("runs", nonempty=True)
    run_name: str | None = option(None, pattern=r"[\w.+-]+")
    log_every: int = option(10, ge=1)
    progress: bool | str = option("auto", choices=(True, False, "auto"))
    keep_checkpoints: int = option(2, ge=1)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def __post_init__(self) -> None:
        for section in ("", "model.", "data.", "loss.", "optim.", "eval."):
            _validate(getattr(self, section[:-1]) if section else self, section)
        _check_signatures(self)


def _parameters(fn: Any) -> tuple[set[str], bool]:
    """The keyword names ``fn`` accepts and whether it takes ``**kwargs``."""
    params = inspect.signature(fn).parameters.values()
    names = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return names, any(p.kind is p.VAR_KEYWORD for p in params)


def _check_signatures(config: Config) -> None:
    """Checks ``model.kwargs``, ``data.dataset_kwargs`` and ``eval.protocol`` keys against what they are passed to."""
    from wrim import data, models

    checks = []
    if models.is_model(config.model.name):
        entry = models.model_entrypoint(config.model.name)
        names, var = _parameters(entry)
        if var:  # a registered entrypoint forwards **kwargs to the class it returns
            returned = typing.get_type_hints(entry).get("return")
            names |= _parameters(returned)[0] if isinstance(returned, type) else set()
        taken = {"pretrained", "pretrained_file", "num_classes", "img_size"}
        checks.append(("model.kwargs", config.model.kwargs, names - taken, f"{config.model.name}"))
    cls = {"synthetic": data.SyntheticVIReID, "sysu": data.SYSUMM01, "regdb": data.RegDB, "llcm": data.LLCM}
    dataset = cls[config.data.dataset]
    checks.append(
        ("data.dataset_kwargs", config.data.dataset_kwargs, _parameters(dataset)[0] - {"root"}, dataset.__name__)
    )
    checks.append(("eval.protocol", config.eval.protocol, _parameters(dataset.test_split)[0] - {"self", "trial"},
                   f"{dataset.__name__}.test_split"))  # fmt: skip
    for key, given, allowed, target in checks:
        unknown = sorted(set(given) - allowed)
        if unknown:
            raise ValueError(f"{key} has key(s) {unknown} that {target} does not take; valid keys: {sorted(allowed)}")


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
        value = _yaml_value(value, key)
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
            node[parts[-1]] = _yaml_value(raw, key)
    return config_from_dict(data)


def list_configs() -> list[str]:
    """Names of the configs shipped in ``wrim/configs/`` (usable as ``wrim train --config NAME``)."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def load_config(name_or_path: str | Path = "synthetic", overrides: list[str] | None = None) -> Config:
    """Loads a shipped config by name or a YAML file by path, then applies ``overrides``.

    A file may start from another config with a top-level ``base: NAME`` (a shipped name or a YAML path) and list
    only what it changes; nested sections are merged key by key (the ablation configs are written this way).

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
    data = _read_yaml(path)
    data.setdefault("name", path.stem)
    config = config_from_dict(data)
    return apply_overrides(config, overrides or [])


def _read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A config file's mapping; a top-level ``base: NAME`` is the shipped config (or YAML path) it changes."""
    data = read_yaml(path) or {}
    if not isinstance(data, dict):
        raise ValueError(f"config file {str(path)!r} must hold a mapping at the top level")
    base = data.pop("base", None)
    if base is None:
        return data
    base_path = Path(base) if Path(base).suffix in (".yaml", ".yml") else CONFIG_DIR / f"{base}.yaml"
    if not base_path.is_absolute() and not base_path.is_file():
        base_path = path.parent / base_path
    if not base_path.is_file():
        raise ValueError(f"{str(path)!r}: base config {base!r} not found; shipped configs: {list_configs()}")
    if base_path.resolve() in seen:
        raise ValueError(f"{str(path)!r}: base configs form a cycle through {str(base_path)!r}")
    inherited = _read_yaml(base_path, (*seen, path.resolve()))
    inherited.pop("name", None)  # a run is named after the file that was asked for
    return _merge(inherited, data)


def _merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``changes`` applied key by key (nested mappings merged, other values replaced)."""
    out = dict(base)
    for key, value in changes.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe YAML loader that rejects a key given twice in one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Mark] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                mark = key_node.start_mark
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first at line {seen[key].line + 1})", mark
                )
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: str | Path) -> Any:
    """Reads a YAML file safely; a syntax error or a duplicate key is a one-line ``ValueError`` naming
    ``file:line:column``."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        problem = " ".join(str(x) for x in (err.context, err.problem) if x)
        raise ValueError(f"{where}: YAML error: {problem}") from None
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: YAML error: {' '.join(str(err).split())}") from None


def _yaml_value(raw: str, key: str) -> Any:
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError as err:
        raise ValueError(f"{key}: cannot parse {raw!r} as a YAML value ({' '.join(str(err).split())})") from None


def config_sha256(config: Config) -> str:
    """The SHA-256 of the config's canonical JSON (recorded in checkpoint manifests)."""
    return hashlib.sha256(json.dumps(config_to_dict(config), sort_keys=True).encode()).hexdigest()


RESUME_OVERRIDABLE = ("epochs", "device", "log_every", "progress", "keep_checkpoints", "output_dir", "run_name",
                      "data.num_workers", "data.skip_bad_images", "data.strict_check", "eval.")  # fmt: skip
"""Keys (a trailing dot: a whole section) that ``--resume`` may change; every other key is the run's structure."""


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and prefix + key in ("model", "data", "loss", "optim", "eval"):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = value
    return flat


def config_diff(old: Config, new: Config) -> dict[str, tuple[Any, Any]]:
    """``key -> (old, new)`` for every field that differs (sections flattened to dotted keys)."""
    a, b = _flatten(config_to_dict(old)), _flatten(config_to_dict(new))
    return {k: (a.get(k), b.get(k)) for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)}


def structural_changes(old: Config, new: Config) -> dict[str, tuple[Any, Any]]:
    """The differences of `config_diff()` that ``--resume`` may not make (see `RESUME_OVERRIDABLE`)."""
    allowed = RESUME_OVERRIDABLE
    return {k: v for k, v in config_diff(old, new).items() if not any(k == a or (a.endswith(".") and k.startswith(a))
                                                                     for a in allowed)}  # fmt: skip


def save_config(config: Config, path: str | Path) -> None:
    """Writes ``config`` as YAML (the resolved config of a run: every field, defaults included)."""
    Path(path).write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False), encoding="utf-8")
