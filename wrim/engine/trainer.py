"""The training loop: WRIMNet + ID loss on every head + AICL, evaluation, checkpoints and logs, in plain PyTorch.

One optimiser step ([P] losses, [D] weights; docs/paper.md#losses):

```text
out  = model(images, modalities)                       # WRIMNetOutput, B = num_ids * 2 * num_instances
L_id = sum_h CE_ls(out.logits[h], pids)                # every head: P5 global, P5 parts, P4 global
L_m  = AICL(out.p5_projection, out.p4_projection, pids, modalities)   # CMKIC on P5 + p4_weight * P4
L    = id_weight * L_id + metric_weight * L_m
```

Around it: SGD + warmup/step or AdamW + cosine (`wrim.engine.optim`), bf16 autocast on CUDA and fp32 on
the CPU, channels_last, optional ``torch.compile``, gradient clipping, evaluation every ``eval.every`` epochs
with best-R1 checkpointing, a checkpoint after every finished epoch, exact resumes on the CPU, DDP under
torchrun, and a clear [`NonFiniteLossError`][wrim.engine.NonFiniteLossError] when a loss term becomes NaN or infinite.

Examples:
    >>> from wrim.engine import Trainer, load_config
    >>> result = Trainer(load_config("synthetic", ["epochs=1"])).fit()   # doctest: +SKIP
    >>> result.metrics["R1"]                                             # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import random
import socket
import sys
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from tqdm.auto import tqdm

from wrim.distributed import convert_sync_batchnorm
from wrim.engine.checkpoint import (
    atomic_write,
    capture_rng_state,
    checkpoint_exists,
    clean_stale_temporaries,
    ctrl_c_deferred,
    load_checkpoint,
    prune_checkpoints,
    publish_checkpoint,
    read_pointer,
    restore_rng_state,
    save_checkpoint,
)
from wrim.engine.config import (
    Config,
    DataConfig,
    LossConfig,
    apply_overrides,
    config_diff,
    config_from_dict,
    config_sha256,
    config_to_dict,
    load_config,
    save_config,
    structural_changes,
)
from wrim.engine.distributed import DistInfo, barrier, init_distributed, resolve_device, shutdown_distributed
from wrim.engine.evaluate import EvalModel, amp_dtype
from wrim.engine.logger import MetricsLogger, plot_curves, show_progress
from wrim.engine.optim import build_optimizer, build_scheduler
from wrim.engine.rundir import RunLock, is_run_of, new_run_name
from wrim.modality import VISIBLE

__all__ = [
    "NonFiniteLossError",
    "TrainResult",
    "Trainer",
    "build_dataset",
    "find_latest_run",
    "resume_config",
    "resume_folder",
    "seed_everything",
]

log = logging.getLogger("wrim")


class NonFiniteLossError(RuntimeError):
    """A loss term, a parameter or a buffer became NaN or infinite; training stopped, nothing non-finite was
    published and the last good checkpoint was kept."""


@dataclass
class TrainResult:
    """What [`Trainer.fit()`][wrim.engine.Trainer.fit] returns.

    Args:
        run_dir: the run folder (config, checkpoints, metrics, PNGs).
        metrics: the final evaluation in % (``R1``, ``R5``, ``R10``, ``R20``, ``mAP``, ``mINP``).
        best_epoch: the epoch (1-based) of the best R1 seen during training (0 when never evaluated).
        best_r1: that R1 in %.
    """

    run_dir: Path
    metrics: dict[str, float]
    best_epoch: int
    best_r1: float


def seed_everything(seed: int) -> None:
    """Seeds python's ``random``, numpy and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 (legacy code and augmentations use the global state)
    torch.manual_seed(seed)


def build_dataset(config: DataConfig) -> Any:
    """Builds the ``wrim.data`` dataset named by ``config.dataset`` (``synthetic``, ``sysu``, ``regdb``, ``llcm``).

    Raises:
        ValueError: a real dataset without ``data.root``.
    """
    from wrim import data

    if config.dataset == "synthetic":
        return data.SyntheticVIReID(root=config.root, **config.dataset_kwargs)
    if config.root is None:
        raise ValueError(f"data.root is required for data.dataset={config.dataset!r}: pass data.root=/path/to/it")
    cls = {"sysu": data.SYSUMM01, "regdb": data.RegDB, "llcm": data.LLCM}[config.dataset]
    return cls(config.root, **config.dataset_kwargs)


def build_loss(config: LossConfig) -> nn.Module:
    """The training objective of ``loss.*``: ID loss on every head plus the metric term (``wrim.losses``)."""
    from wrim.losses import WRIMNetLoss

    return WRIMNetLoss(
        _metric_loss(config),
        id_weight=config.id_weight,
        metric_weight=config.metric_weight,
        label_smoothing=config.label_smoothing,
        gather_across_ranks=config.gather_across_ranks,
    )


def _metric_loss(config: LossConfig) -> nn.Module | None:
    """The metric term selected by ``loss.metric``, from plain arguments (``wrim.losses``, docs/losses.md).

    ``"aicl"``: the paper's AICL (CMKIC on P5 + ``p4_weight`` * CMKIC on P4); ``"triplet"`` / ``"wr_triplet"``: the
    same two-stage sum with a batch-hard / weighted-regularisation triplet loss (the "CMKIC vs triplet" ablation);
    ``"none"``: no metric term.
    """
    from wrim import losses

    if config.metric == "none":
        return None
    if config.metric == "aicl":
        loss = losses.CMKICLoss(k=config.k, temperature=config.temperature)
    elif config.metric == "triplet":
        loss = losses.TripletLoss(margin=config.margin, cross_modality=config.cross_modality)
    else:
        loss = losses.WRTripletLoss(cross_modality=config.cross_modality)
    return losses.AICLLoss(
        loss,
        p5_weight=config.p5_weight,
        p4_weight=config.p4_weight,
        p5_keys_from_p4=config.p5_keys_from_p4 and config.metric == "aicl",
    )


@contextlib.contextmanager
def _hub_offline_if_unreachable(download: bool) -> Iterator[None]:
    """One 3 s probe of the Hugging Face hub before timm downloads weights: when it is unreachable, the hub client is
    put in offline mode (cached weights still load; missing ones fail at once with the message naming
    ``model.pretrained_file``) instead of retrying for about a minute."""
    try:
        from huggingface_hub import constants
    except ImportError:
        constants = None
    if not download or constants is None or constants.HF_HUB_OFFLINE:
        yield
        return
    host = urllib.parse.urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    try:
        socket.create_connection((host, 443), timeout=3).close()
    except OSError as err:
        log.warning("%s is unreachable (%s): only locally cached pretrained weights can be used", host, err)
        constants.HF_HUB_OFFLINE = True
        try:
            yield
        finally:
            constants.HF_HUB_OFFLINE = False
        return
    yield


def find_latest_run(output_dir: str | Path, name: str) -> Path | None:
    """The newest ``<output_dir>/<name>-<timestamp>-<pid>`` run folder (exact name, not a prefix) with a checkpoint."""
    folder = Path(output_dir)
    runs = (
        [p for p in folder.iterdir() if is_run_of(p, name) and checkpoint_exists(p, "last")] if folder.is_dir() else []
    )
    return max(runs, key=lambda p: (p / "last.json").stat().st_mtime) if runs else None


def resume_folder(config: Config, run_dir: str | Path | None) -> Path:
    """The folder ``--resume`` continues: ``run_dir``, else ``output_dir/run_name``, else the config's newest run."""
    if run_dir is not None:
        return Path(run_dir)
    if config.run_name is not None:
        return Path(config.output_dir) / config.run_name
    found = find_latest_run(config.output_dir, config.name)
    if found is None:
        raise ValueError(f"--resume: no run of config {config.name!r} with a checkpoint in {config.output_dir!r}")
    return found


def _format_changes(changes: dict[str, tuple[Any, Any]]) -> str:
    return ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in changes.items())


def resume_config(run_dir: str | Path, overrides: list[str] | None = None) -> Config:
    """The saved config of a run folder with ``overrides`` applied; only resumable keys may change.

    Args:
        run_dir: the run folder (holds ``config.yaml``).
        overrides: ``key=value`` strings; allowed keys are listed in ``wrim.engine.config.RESUME_OVERRIDABLE``
            (``epochs``, ``eval.*``, logging, ``data.num_workers``, ...).

    Raises:
        ValueError: no saved config, or an override that changes the run's structure (every difference listed).
    """
    path = Path(run_dir) / "config.yaml"
    if not checkpoint_exists(run_dir, "any"):
        raise ValueError(f"--resume: {str(run_dir)!r} holds no checkpoint to resume from")
    if not path.is_file():
        raise ValueError(f"--resume: {str(path)!r} is missing; is {str(run_dir)!r} a wrim run folder?")
    saved = load_config(path)
    config = apply_overrides(saved, overrides or [])
    changes = structural_changes(saved, config)
    if changes:
        raise ValueError(
            f"--resume cannot change the run's structure ({_format_changes(changes)}); start a new run for that"
        )
    return config


class Trainer:
    """Trains and evaluates one run described by a [`Config`][wrim.engine.Config].

    Args:
        config: the run configuration.
        run_dir: the run folder; default ``<output_dir>/<run_name>`` or ``<output_dir>/<name>-<UTC timestamp>``.
        resume: continue from ``<run_dir>/last.json`` (``run_dir`` must then exist; see `find_latest_run()`).
            ``config`` must equal the run's saved config except for resumable keys (see `resume_config()`,
            which builds such a config); the changes are logged.
    """

    def __init__(self, config: Config, run_dir: str | Path | None = None, resume: bool = False) -> None:
        self.config = config
        self.resume = resume
        self._requested_run_dir = Path(run_dir) if run_dir is not None else None
        self.logger: MetricsLogger | None = None
        self._handlers: list[logging.Handler] = []
        self._lock: RunLock | None = None
        self._stale: list[Path] = []
        self.dist = DistInfo()

    # ------------------------------------------------------------------ setup

    def _setup(self) -> None:
        cfg = self.config
        self.device = resolve_device(cfg.device, int(os.environ.get("LOCAL_RANK", "0")))
        self.dist = init_distributed(self.device)
        self.run_dir = self._resolve_run_dir()
        self._setup_logging()
        for path in self._stale:
            log.info("removed %s, left by an interrupted save", path)
        if self.resume:
            self._check_resumable()
        self.amp_dtype = self._amp_dtype()
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        self._loss_scaling = self.scaler.is_enabled()

        seed_everything(cfg.seed)
        from wrim.data import build_train_loader, check_counts
        from wrim.models import WRIMNet, create_model

        # rank 0 writes a generated dataset (synthetic cache) first, the other ranks then read it
        if self.dist.is_main:
            self.dataset = build_dataset(cfg.data)
        barrier(self.dist)
        if not self.dist.is_main:
            self.dataset = build_dataset(cfg.data)
        check_counts(self.dataset, strict=cfg.data.strict_check, warn=self.dist.is_main)  # wrim check-data's counts
        base_loader = build_train_loader(
            self.dataset,
            img_size=cfg.data.img_size,
            num_ids=cfg.data.num_ids,
            num_instances=cfg.data.num_instances,
            num_workers=cfg.data.num_workers,
            seed=cfg.seed,
            channel_aug=cfg.data.channel_aug,
            random_erasing=cfg.data.random_erasing,
            exchange_prob=cfg.data.exchange_prob,
            channel_gray=cfg.data.channel_gray,
            rank=self.dist.rank if self.dist.distributed else None,
            world_size=self.dist.world_size if self.dist.distributed else None,
            skip_bad_images=cfg.data.skip_bad_images,
        )
        # the same dataset and sampler, with workers started afresh every epoch from a generator seeded by
        # (seed, epoch, rank) in _batches (the augmentations themselves are seeded per sample by the sampler)
        self.loader = torch.utils.data.DataLoader(
            base_loader.dataset,
            batch_sampler=base_loader.batch_sampler,
            num_workers=cfg.data.num_workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=False,
        )
        self.iters_per_epoch = len(self.loader)

        kwargs = dict(cfg.model.kwargs)
        if cfg.model.pretrained_file is not None:
            kwargs["pretrained_file"] = cfg.model.pretrained_file
        if cfg.model.pretrained_tag is not None:
            kwargs["pretrained_tag"] = cfg.model.pretrained_tag
        with _hub_offline_if_unreachable(cfg.model.pretrained and cfg.model.pretrained_file is None):
            net = create_model(
                cfg.model.name,
                pretrained=cfg.model.pretrained,
                num_classes=self.dataset.num_classes,
                img_size=tuple(cfg.data.img_size),
                **kwargs,
            )
        if self.dist.distributed and cfg.model.sync_bn:  # global batch statistics (CUDA and CPU)
            net = convert_sync_batchnorm(net, self.device)
        memory_format = torch.channels_last if cfg.model.channels_last else torch.preserve_format
        self.net = net.to(self.device, memory_format=memory_format)
        model: nn.Module = self.net
        if self.dist.distributed:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            model = nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
        self.model = model
        self._takes_num_visible = isinstance(net, WRIMNet)
        # model.compile: the whole step (forward, losses, backward) as one graph, around the DDP-wrapped module
        self._step = torch.compile(self.train_step) if cfg.model.compile else self.train_step

        self.loss_fn = build_loss(cfg.loss)
        self.optimizer = build_optimizer(self.net, cfg.optim)
        self.scheduler = build_scheduler(self.optimizer, cfg.optim, cfg.epochs, self.iters_per_epoch)

        self.start_epoch = 0
        self.best_r1 = -1.0
        self.best_epoch = 0
        self.pending_record: dict[str, Any] | None = None
        if self.resume:
            self._load_resume_state()
        # a bad eval.protocol value fails now, not after the first epoch
        self.dataset.test_split(next(iter(cfg.eval.trials or self.dataset.default_trials)), **cfg.eval.protocol)
        logged = self.run_dir / "metrics.jsonl"  # every rank reads it: the pending evaluation is collective
        if self.pending_record is not None and logged.is_file():
            epochs = [json.loads(line)["epoch"] for line in logged.read_text(encoding="utf-8").splitlines() if line]
            self.pending_record = None if self.start_epoch in epochs else self.pending_record
        barrier(self.dist)  # rank 0 rewrites metrics.jsonl next
        self.logger = (
            MetricsLogger(self.run_dir, resume_epoch=self.start_epoch if self.resume else None)
            if self.dist.is_main
            else None
        )
        if self.dist.is_main:  # written only once the run is known to start (a failed resume changes nothing)
            save_config(cfg, self.run_dir / "config.yaml")
            info = {"model": cfg.model.name, "num_classes": self.dataset.num_classes, "img_size": cfg.data.img_size}
            (self.run_dir / "model.json").write_text(json.dumps(info, indent=2), encoding="utf-8")

    def _check_resumable(self) -> None:
        """The given config may differ from the saved one in resumable keys only; those changes are logged."""
        saved = load_config(self.run_dir / "config.yaml")
        changes = structural_changes(saved, self.config)
        if changes:
            raise ValueError(
                f"--resume cannot change the run's structure ({_format_changes(changes)}); start a new run for that"
            )
        for key, (old, new) in config_diff(saved, self.config).items():
            if key != "progress":
                log.info("resume: %s changed from %r to %r", key, old, new)

    def _load_resume_state(self) -> None:
        state = load_checkpoint(self.run_dir, "last", self.net)
        written_by = config_from_dict(state["config"])
        changes = structural_changes(written_by, self.config)
        if changes:
            raise ValueError(
                f"{state['checkpoint_set']} was written with another config than {self.run_dir}/config.yaml "
                f"({_format_changes(changes)}); restore config.yaml or start a new run"
            )
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])
        self.start_epoch = state["epoch"]
        best = read_pointer(self.run_dir, "best")
        if best is not None and best["epoch"] <= self.start_epoch:
            self.best_r1, self.best_epoch = best["R1"], best["epoch"]
        self.pending_record = state.get("record")
        rng = state["rng"]
        restore_rng_state(rng[self.dist.rank] if len(rng) == self.dist.world_size else rng[0])
        log.info("resumed %s after epoch %d (%s)", self.run_dir, self.start_epoch, state["checkpoint_set"])

    def _resolve_run_dir(self) -> Path:
        cfg = self.config
        if self.resume:
            run_dir = resume_folder(cfg, self._requested_run_dir)
        elif self._requested_run_dir is not None:
            run_dir = self._requested_run_dir
        elif cfg.run_name is not None:
            run_dir = Path(cfg.output_dir) / cfg.run_name
        else:
            run_dir = Path(cfg.output_dir) / new_run_name(cfg.name)
        if self.dist.distributed:  # every rank uses rank 0's folder
            holder = [str(run_dir)]
            dist.broadcast_object_list(holder, src=0)
            run_dir = Path(holder[0])
        if self.resume and not checkpoint_exists(run_dir, "any"):
            raise ValueError(f"--resume: {str(run_dir)!r} holds no checkpoint to resume from")
        if self.dist.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            self._lock = RunLock(run_dir)
            self._lock.acquire()  # before looking for checkpoints: a second run on this folder stops here
            if not self.resume and checkpoint_exists(run_dir, "any"):
                raise ValueError(
                    f"{str(run_dir)!r} already holds a checkpoint: pass --resume to continue it or choose another "
                    "run_name"
                )
            self._stale = clean_stale_temporaries(run_dir)
        barrier(self.dist)
        return run_dir

    def _setup_logging(self) -> None:
        if not self.dist.is_main:
            return
        log.setLevel(logging.INFO)
        fmt = logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S")
        file_handler = logging.FileHandler(self.run_dir / "train.log", encoding="utf-8")
        file_handler.setFormatter(fmt)
        self._handlers.append(file_handler)
        if not any(isinstance(h, logging.StreamHandler) and h.stream is sys.stderr for h in log.handlers):
            console = logging.StreamHandler(sys.stderr)
            console.setFormatter(fmt)
            self._handlers.append(console)
        for h in self._handlers:
            log.addHandler(h)

    def _amp_dtype(self) -> torch.dtype | None:
        return amp_dtype(self.config.amp, self.device)

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    # ------------------------------------------------------------------ one epoch

    def compute_losses(
        self, out: Any, pids: torch.Tensor, modalities: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The total loss and every named term (``id_<head>``, ``id``, ``metric`` and the metric's parts).

        Args:
            out: the model's training output (``WRIMNetOutput``).
            pids: (B,) identity labels.
            modalities: (B,) 0 = visible, 1 = infrared.
        """
        total = self.loss_fn(out, pids, modalities=modalities)  # wrim.losses.WRIMNetLoss
        return total, dict(self.loss_fn.terms)

    def _batches(self, epoch: int) -> Iterator[tuple[torch.Tensor, ...]]:
        # the sampler's batches and per-sample augmentation seeds depend only on (seed, epoch, step), so an epoch run
        # after a resume draws exactly the batches and augmentations of an uninterrupted run; the workers' own RNG
        # (seeded by (seed, epoch, rank)) is not used by the train transform
        self.loader.batch_sampler.set_epoch(epoch)
        self.loader.generator = torch.Generator().manual_seed(
            (self.config.seed * 1_000_003 + epoch) * 1009 + self.dist.rank
        )
        yield from self.loader

    def train_step(
        self, images: torch.Tensor, pids: torch.Tensor, modalities: torch.Tensor, num_visible: int | None = None
    ) -> dict[str, torch.Tensor]:
        """Forward, losses and backward of one batch: what ``model.compile: true`` compiles as one graph.

        The gradients are accumulated into the parameters' ``.grad`` (scaled by the GradScaler under fp16, whose
        ``scale()`` dynamo does not trace: a graph break there, none under bf16 or fp32); the optimiser step,
        gradient clipping and the scheduler stay outside (the graph does not depend on the optimiser). Nothing
        here reads a tensor value on the host.

        Args:
            images: (B, 3, H, W) on the device, in the training memory format.
            pids: (B,) identity labels on the device.
            modalities: (B,) ids on the device, 0 = visible, 1 = infrared.
            num_visible: the batch's visible count, counted on the host (``WRIMNet.forward``: each ModalityMIIM
                copy then runs on its own samples only); None for models without that argument.

        Returns:
            The loss terms by name (as ``compute_losses``), detached float32 scalars still on the device.
        """
        kwargs = {"num_visible": num_visible} if num_visible is not None and self._takes_num_visible else {}
        with self._autocast():
            out = self.model(images, modalities, **kwargs)
        total, terms = self.compute_losses(out, pids, modalities)
        # fp16's loss scaling: dynamo does not trace GradScaler (one graph break); bf16 / fp32 need none
        (self.scaler.scale(total) if self._loss_scaling else total).backward()
        return {name: value.detach().float() for name, value in terms.items()}

    def _compiled_backward(self) -> contextlib.AbstractContextManager:
        """Lets dynamo trace ``backward()`` into the compiled step (one graph); a DDP step keeps the eager backward,
        whose gradient hooks DDP needs, so its compiled step ends at the backward call."""
        if not self.config.model.compile or self.dist.distributed:
            return contextlib.nullcontext()
        return torch._dynamo.config.patch(trace_autograd_ops=True)

    def _read_terms(
        self, epoch: int, names: list[str], pending: list[tuple[int, torch.Tensor]], sums: dict[str, float]
    ) -> dict[str, float]:
        """Read the pending steps' terms on the host (one sync), add them to ``sums`` and return the last step's.

        Raises:
            NonFiniteLossError: for the first pending step with a NaN or infinite term (its step and term named).
        """
        stacked = torch.stack([terms for _, terms in pending])  # (steps, terms)
        if self.dist.distributed:  # logged terms are means over the global batch (equal shards)
            dist.all_reduce(stacked)
            stacked = stacked / self.dist.world_size
        rows = stacked.tolist()  # the one host sync
        values: dict[str, float] = {}
        for (step, _), row in zip(pending, rows, strict=True):
            values = dict(zip(names, row, strict=True))
            bad = [k for k, v in values.items() if k not in ("id", "metric", "loss") and not math.isfinite(v)]
            if bad or not math.isfinite(values["loss"]):
                self._raise_non_finite(epoch, step, bad or ["loss"], values)
            for k, v in values.items():
                sums[k] = sums.get(k, 0.0) + v
        pending.clear()
        return values

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """Runs one epoch (0-based ``epoch``) and returns the mean of every loss term, the lr and images/s.

        The loss terms stay on the device and are read on the host every ``log_every`` steps and at the epoch's end
        (one synchronisation each, not one per step). A NaN or infinite term is therefore reported up to
        ``log_every - 1`` steps after it occurred, with its own step number; the steps in between have already
        updated the in-memory weights, but nothing of that epoch is ever saved (the trade-off for a step without a
        host sync).

        Raises:
            NonFiniteLossError: a loss term is NaN or infinite (names the step and the term).
        """
        cfg = self.config
        self.model.train()
        sums: dict[str, float] = {}
        n_images = 0
        start = time.perf_counter()
        bar = tqdm(
            self._batches(epoch),
            total=self.iters_per_epoch,
            desc=f"epoch {epoch + 1}/{cfg.epochs}",
            leave=False,
            disable=not (show_progress(cfg.progress) and self.dist.is_main),
            dynamic_ncols=True,
        )
        pending: list[tuple[int, torch.Tensor]] = []  # (step, its detached terms) not yet read on the host
        for step, (images, pids, _camids, modalities) in enumerate(bar):
            num_visible = int((modalities == VISIBLE).sum())  # the loader's CPU ids: no device sync
            memory_format = torch.channels_last if cfg.model.channels_last else torch.preserve_format
            images = images.to(self.device, non_blocking=True).contiguous(memory_format=memory_format)
            pids = pids.to(self.device, non_blocking=True)
            modalities = modalities.to(self.device, non_blocking=True)
            self.optimizer.zero_grad(set_to_none=True)
            with self._compiled_backward():
                terms = self._step(images, pids, modalities, num_visible)
            pending.append((step, torch.stack(list(terms.values()))))
            if cfg.optim.clip_grad_norm is not None:
                self.scaler.unscale_(self.optimizer)
                nn.utils.clip_grad_norm_(self.net.parameters(), cfg.optim.clip_grad_norm)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.scheduler.step()

            n_images += images.shape[0] * self.dist.world_size
            if step % cfg.log_every == 0 or step == self.iters_per_epoch - 1:
                values = self._read_terms(epoch, list(terms), pending, sums)
                rate = n_images / (time.perf_counter() - start)
                bar.set_postfix(loss=f"{values['loss']:.3f}", id=f"{values['id']:.3f}",
                                metric=f"{values['metric']:.3f}", img_s=f"{rate:.1f}")  # fmt: skip
                if self.logger is not None:
                    global_step = epoch * self.iters_per_epoch + step
                    self.logger.log_step(global_step, {**values, "lr": self.optimizer.param_groups[0]["lr"]})
        bar.close()
        elapsed = time.perf_counter() - start
        record = {k: v / self.iters_per_epoch for k, v in sums.items()}
        record["lr"] = self.optimizer.param_groups[0]["lr"]
        record["img_per_s"] = n_images / elapsed
        record["epoch_time_s"] = elapsed
        return record

    def _raise_non_finite(self, epoch: int, step: int, bad: list[str], values: dict[str, float]) -> None:
        global_step = epoch * self.iters_per_epoch + step
        where = (
            f"the last good checkpoint (after epoch {self.start_epoch_done}) is kept in {self.run_dir}/last.*"
            if checkpoint_exists(self.run_dir, "last")
            else "no epoch had finished, so there is no checkpoint"
        )
        detail = ", ".join(f"{k} = {values[k]}" for k in bad)
        msg = (
            f"non-finite loss at epoch {epoch + 1}, step {step} (global step {global_step}): {detail}. "
            f"Training stopped; {where}. Lower optim.lr, enable optim.clip_grad_norm, or check the data."
        )
        raise NonFiniteLossError(msg)

    # ------------------------------------------------------------------ evaluation and checkpoints

    def evaluate(self, trials: tuple[int, ...] | list[int] | None) -> dict[str, float]:
        """Evaluates the current weights on the dataset's protocol; returns R1..mINP in % (rank 0; others ``{}``).

        Every image of the requested trials is embedded once (``wrim.evaluation.extract_features``), then
        ``wrim.evaluation.evaluate_protocol`` scores and averages the trials from those embeddings. Under DDP this
        is collective: every rank embeds its contiguous block of the images with rank 0's weights and buffers
        (broadcast first), the blocks are gathered in order, and rank 0 computes the metrics, so the features equal
        the single-process ones and extraction time falls as 1/N.

        Args:
            trials: gallery trials to average; ``None`` = the dataset's default trials.
        """
        from wrim.evaluation import evaluate_protocol, extract_features

        cfg = self.config
        trial_ids = list(self.dataset.default_trials if trials is None else trials)
        splits = [self.dataset.test_split(t, **cfg.eval.protocol) for t in trial_ids]
        records = {r.path: r for split in splits for r in (*split.query, *split.gallery)}
        eval_model = EvalModel(self.net, self.device, self.amp_dtype, cfg.model.channels_last)
        with torch.no_grad():
            if self.dist.distributed:  # every rank embeds with rank 0's model (per-rank BN buffers may differ)
                for tensor in self.net.state_dict().values():
                    dist.broadcast(tensor, src=0)
            feats = extract_features(
                eval_model,
                list(records.values()),
                img_size=tuple(cfg.data.img_size),
                batch_size=cfg.eval.batch_size,
                device=self.device,
                flip=cfg.eval.flip,
                num_workers=cfg.data.num_workers,
                shard=True,
            )  # (N, D)
        self.net.train()
        if not self.dist.is_main:
            return {}
        features = dict(zip(records, feats.cpu()))
        result = evaluate_protocol(features, self.dataset, trials=trial_ids, **cfg.eval.protocol)
        self._last_eval = (splits[0], features)
        return {k: float(v) for k, v in result.as_dict().items()}

    def _state(self, epoch_done: int, record: dict[str, Any]) -> dict[str, Any]:
        # every rank's RNG state (collective: all ranks call this together)
        rng = capture_rng_state()
        rngs = [rng]
        if self.dist.distributed:
            rngs = [None] * self.dist.world_size
            dist.all_gather_object(rngs, rng)
        state = {
            "epoch": epoch_done,
            "step": epoch_done * self.iters_per_epoch,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "sampler_epoch": epoch_done,
            "rng": rngs,
            "num_classes": self.dataset.num_classes,
            "config": config_to_dict(self.config),
            "record": record,  # the epoch's training record, logged again if its evaluation must be re-run
        }
        if self.scaler.is_enabled():
            state["scaler"] = self.scaler.state_dict()
        return state

    # ------------------------------------------------------------------ main loop

    def fit(self) -> TrainResult:
        """Trains for ``config.epochs`` epochs (from the checkpoint when resuming), evaluates, writes the run folder.

        Returns:
            The final metrics (best weights on ``eval.final_trials``) and the best epoch.
        """
        try:
            self._setup()
            return self._fit()
        except KeyboardInterrupt:
            self._log_to_file(f"interrupted; the last published checkpoint is kept: wrim train --resume {self.run_dir}")
            raise
        except Exception as err:
            self._log_to_file(f"stopped: {type(err).__name__}: {err}")
            raise
        finally:
            if self.logger is not None:
                self.logger.close()
            for h in self._handlers:
                log.removeHandler(h)
                h.close()
            if self._lock is not None:
                self._lock.release()
            shutdown_distributed(self.dist)

    def _log_to_file(self, message: str) -> None:
        """Writes ``message`` to the run's ``train.log`` only (the exception itself reaches the caller / console)."""
        if self._handlers:
            self._handlers[0].handle(log.makeRecord(log.name, logging.ERROR, __file__, 0, message, None, None))

    def _fit(self) -> TrainResult:
        cfg = self.config
        if self.start_epoch > cfg.epochs:
            raise ValueError(
                f"{self.run_dir} has already trained {self.start_epoch} epochs, more than epochs={cfg.epochs}"
            )
        final = self.run_dir / "final_metrics.json"
        if self.start_epoch == cfg.epochs and self.pending_record is None and final.is_file():
            result = json.loads(final.read_text(encoding="utf-8"))
            log.info("run %s already finished (%d epochs): nothing to do", self.run_dir, cfg.epochs)
            metrics = {k: v for k, v in result.items() if k in ("R1", "R5", "R10", "R20", "mAP", "mINP")}
            return TrainResult(self.run_dir, metrics, self.best_epoch, self.best_r1)
        if self.dist.is_main:
            log.info(
                "run %s: %s on %s (%d classes, %d train images), %d iters/epoch x %d epochs, device %s",
                self.run_dir, cfg.model.name, cfg.data.dataset, self.dataset.num_classes, len(self.dataset.train),
                self.iters_per_epoch, cfg.epochs, self.device,
            )  # fmt: skip
        self.start_epoch_done = self.start_epoch
        if self.pending_record is not None:  # stopped between the checkpoint and the end of its evaluation
            log.info("re-running the evaluation of epoch %d", self.start_epoch)
            self._after_checkpoint(self.start_epoch, dict(self.pending_record))
        epochs = tqdm(
            range(self.start_epoch, cfg.epochs),
            initial=self.start_epoch,
            total=cfg.epochs,
            desc="training",
            disable=not (show_progress(cfg.progress) and self.dist.is_main),
            dynamic_ncols=True,
        )
        for epoch in epochs:
            record: dict[str, Any] = {"epoch": epoch + 1, **self.train_epoch(epoch)}
            self._check_finite_state(epoch)
            state = self._state(epoch + 1, record)
            if self.dist.is_main:
                with ctrl_c_deferred():  # a Ctrl-C during the save stops the run once the epoch is published
                    set_dir = save_checkpoint(self.run_dir, self.net, state, config_sha256(cfg))
                    publish_checkpoint(self.run_dir, "last", set_dir, epoch=epoch + 1)
                self.start_epoch_done = epoch + 1
            barrier(self.dist)
            self._after_checkpoint(epoch + 1, record)
            if self.dist.is_main:
                epochs.set_postfix(loss=f"{record['loss']:.3f}", R1=f"{record.get('R1', float('nan')):.1f}")
        epochs.close()

        metrics = self._final_evaluation()  # collective; {} on ranks other than 0
        barrier(self.dist)
        return TrainResult(self.run_dir, metrics, self.best_epoch, self.best_r1)

    def _after_checkpoint(self, epoch_done: int, record: dict[str, Any]) -> None:
        """Evaluates (when due), publishes ``best``, logs the epoch and prunes old sets; ``last`` is already safe."""
        cfg = self.config
        do_eval = epoch_done == cfg.epochs or (cfg.eval.every > 0 and epoch_done % cfg.eval.every == 0)
        if do_eval:  # collective: every rank embeds a shard of the test images
            rng = capture_rng_state()  # evaluation must not move the training RNG streams (exact resumes)
            try:
                record.update(self.evaluate(cfg.eval.trials))
            except Exception as err:
                raise RuntimeError(
                    f"evaluation after epoch {epoch_done} failed ({type(err).__name__}: {err}); the epoch's checkpoint "
                    "is saved: fix the cause (eval.* may be overridden) and run wrim train --resume to re-run only "
                    "this evaluation"
                ) from err
            restore_rng_state(rng)
        if do_eval and self.dist.is_main and record["R1"] > self.best_r1:
            self.best_r1, self.best_epoch = record["R1"], epoch_done
            publish_checkpoint(self.run_dir, "best", self._published_set(), epoch=epoch_done, R1=record["R1"])
        barrier(self.dist)
        if self.dist.distributed:  # every rank keeps the same best-R1 bookkeeping
            holder = [self.best_r1, self.best_epoch]
            dist.broadcast_object_list(holder, src=0)
            self.best_r1, self.best_epoch = holder
        if self.dist.is_main:
            self.logger.log_epoch(record)
            prune_checkpoints(self.run_dir, cfg.keep_checkpoints)
            summary = ", ".join(f"{k} {v:.4g}" for k, v in record.items() if k in ("loss", "id", "metric", "R1", "mAP"))
            log.info("epoch %d/%d: %s", epoch_done, cfg.epochs, summary)
        barrier(self.dist)

    def _published_set(self) -> Path:
        return self.run_dir / read_pointer(self.run_dir, "last")["set"]

    def _check_finite_state(self, epoch: int) -> None:
        """Divergence guard: every parameter and buffer must be finite before a checkpoint is written."""
        for name, tensor in self.net.state_dict().items():
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                kind = "parameter" if name in dict(self.net.named_parameters()) else "buffer"
                where = (
                    f"the last good checkpoint (epoch {self.start_epoch_done}) is kept: {self.run_dir}/last.json"
                    if checkpoint_exists(self.run_dir, "last")
                    else "no epoch had finished, so there is no checkpoint"
                )
                msg = (
                    f"non-finite {kind} {name!r} after epoch {epoch + 1} (global step "
                    f"{(epoch + 1) * self.iters_per_epoch}); nothing was saved, {where}. Lower optim.lr, enable "
                    "optim.clip_grad_norm, or check the data."
                )
                raise NonFiniteLossError(msg)

    def _final_evaluation(self) -> dict[str, float]:
        """Rank 0 loads the best (else last) weights, every rank evaluates (collective); rank 0 writes the results."""
        cfg = self.config
        if not self.dist.is_main:
            return self.evaluate(cfg.eval.final_trials)  # with rank 0's weights, broadcast inside
        tag = "best" if checkpoint_exists(self.run_dir, "best") else "last"
        state = load_checkpoint(self.run_dir, tag, self.net)
        metrics = self.evaluate(cfg.eval.final_trials)
        weights = Path(state["checkpoint_set"]).relative_to(self.run_dir) / "model.safetensors"
        result = {"weights": weights.as_posix(), "best_epoch": self.best_epoch, **metrics}
        atomic_write(self.run_dir / "final_metrics.json", lambda p: p.write_text(json.dumps(result, indent=2)))
        plot_curves(self.logger.records, self.run_dir / "curves.png")
        if cfg.eval.ranklist:
            self._plot_ranklist()
        trials = "default" if cfg.eval.final_trials is None else list(cfg.eval.final_trials)
        log.info(
            "final (%s weights, epoch %d, trials %s): R1 %.2f  mAP %.2f  mINP %.2f  -> %s",
            tag, self.best_epoch, trials, metrics["R1"], metrics["mAP"], metrics["mINP"], self.run_dir,
        )  # fmt: skip
        return metrics

    def _plot_ranklist(self) -> None:
        from wrim.evaluation import pairwise_distance, plot_ranklist

        split, features = self._last_eval
        query = torch.stack([features[r.path] for r in split.query])  # (Q, D)
        gallery = torch.stack([features[r.path] for r in split.gallery])  # (G, D)
        try:
            plot_ranklist(
                pairwise_distance(query, gallery),
                split.query,
                split.gallery,
                self.run_dir / "ranklist.png",
                protocol=split.protocol,
                img_size=tuple(self.config.data.img_size),
            )
        except ImportError:
            log.info("matplotlib not installed: skipping ranklist.png (pip install 'wrim[train]')")
