"""The schema of a run's configuration: five typed sections and a few top-level fields, each with its allowed values.

A [`Config`][wrim.engine.Config] is built from YAML and overrides by ``wrim.engine.config`` (parsing, files,
differences); every field's rules (`option()`) are checked when it is built, and ``model.kwargs``,
``data.dataset_kwargs`` and ``eval.protocol`` are checked against the registered model and dataset they are passed to.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import re
import typing
from dataclasses import dataclass, field
from typing import Any

from wrim.engine.precision import AMP_CHOICES

__all__ = ["Config", "DataConfig", "EvalConfig", "LossConfig", "ModelConfig", "OptimConfig", "option"]


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
    optional field; bounds and patterns apply to every element of a tuple).

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
        for v in (value if isinstance(value, (tuple, list)) else (value,)) if "pattern" in rules else ():
            if not re.fullmatch(rules["pattern"], str(v)):
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
            (``a1_in1k`` for ``resnet50``). See docs: Reproducing the paper, section Which weights.
        pretrained_file: local backbone weights (.safetensors or .pth) instead of a download.
        kwargs: further keyword arguments for ``create_model`` (e.g. ``last_stride``, ``separate_stages``).
        sync_bn: under DDP, take every BatchNorm's training statistics over all ranks (torch's SyncBatchNorm on
            CUDA, ``wrim.layers.CrossRankBatchNorm`` on the CPU) and ModalityMIIM's per-modality statistics
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
        dataset: a registered dataset name (``wrim.data.list_datasets()``): ``"synthetic"``, ``"sysu"``,
            ``"regdb"``, ``"llcm"``, ``"list"`` (your own list file, ``wrim.data.ListDataset``) or one registered
            with ``@wrim.data.register_dataset``.
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

    dataset: str = option("sysu", nonempty=True)
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
            each rank's metric loss local to its shard (N processes then train differently from one process on the
            global batch). No effect in one process.
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
        backbone_prefixes: what a backbone parameter's name starts with: ``backbone.`` for the registered models;
            the attribute holding the pretrained network of your own (``[net.]`` for a model that keeps it in
            ``self.net``). A multiplier other than 1 that matches no parameter is an error.
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
    backbone_prefixes: tuple[str, ...] = option(("backbone.",), pattern=r"[\w.]+")


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
        final_checkpoint: the weights of the final evaluation: ``"best"`` (the best R1 of the epoch evaluations,
            which ran on the test ``trials``: chosen on the test set, the field's practice) or ``"last"`` (the last
            epoch's, not chosen on the test set). The protocol card says which.
    """

    every: int = option(2, ge=0)
    trials: tuple[int, ...] | None = option((0,), ge=0)
    final_trials: tuple[int, ...] | None = option(None, ge=0)
    protocol: dict[str, Any] = field(default_factory=dict)
    batch_size: int = option(128, ge=1)
    flip: bool = False
    ranklist: bool = True
    final_checkpoint: str = option("best", choices=("best", "last"))


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
    amp: str = option("auto", choices=AMP_CHOICES)
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


def _parameters(fn: Any, skip_first: bool = False) -> tuple[set[str], bool]:
    """The keyword names ``fn`` accepts (without its first parameter when ``skip_first``) and whether it takes
    ``**kwargs``."""
    params = list(inspect.signature(fn).parameters.values())[1 if skip_first else 0 :]
    names = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return names, any(p.kind is p.VAR_KEYWORD for p in params)


def _model_check(config: Config) -> list[tuple[str, dict[str, Any], set[str], str]]:
    """``model.kwargs`` against the registered entrypoint (none for a name not registered yet)."""
    from wrim import models

    if not models.is_model(config.model.name):
        return []
    entry = models.model_entrypoint(config.model.name)
    names, var = _parameters(entry)
    if var:  # a registered entrypoint forwards **kwargs to the class it returns
        returned = typing.get_type_hints(entry).get("return")
        if not isinstance(returned, type):
            return []
        names |= _parameters(returned)[0]
    taken = {"pretrained", "pretrained_file", "num_classes", "img_size"}
    return [("model.kwargs", config.model.kwargs, names - taken, config.model.name)]


def _dataset_checks(config: Config) -> list[tuple[str, dict[str, Any], set[str], str]]:
    """``data.dataset_kwargs`` and ``eval.protocol`` against the registered dataset's factory and ``test_split``
    (none for a name not registered yet: building it names the registered ones)."""
    from wrim import data

    if not data.is_dataset(config.data.dataset):
        return []
    factory = data.dataset_entrypoint(config.data.dataset)
    checks = []
    names, var = _parameters(factory, skip_first=True)  # the first parameter is the root folder
    if not var:
        checks.append(("data.dataset_kwargs", config.data.dataset_kwargs, names, factory.__name__))
    if hasattr(factory, "test_split"):
        names, var = _parameters(factory.test_split)
        if not var:
            checks.append(
                ("eval.protocol", config.eval.protocol, names - {"self", "trial"}, f"{factory.__name__}.test_split")
            )
    return checks


def _check_signatures(config: Config) -> None:
    """Checks ``model.kwargs``, ``data.dataset_kwargs`` and ``eval.protocol`` keys against what they are passed to."""
    for key, given, allowed, target in _model_check(config) + _dataset_checks(config):
        unknown = sorted(set(given) - allowed)
        if unknown:
            hint = f" ({key}={{}} passes none)" if not allowed else ""
            raise ValueError(
                f"{key} has key(s) {unknown} that {target} does not take; valid keys: {sorted(allowed)}{hint}"
            )
