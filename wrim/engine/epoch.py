"""One training epoch: forward, loss and backward of each batch, the logged terms and the divergence guard.

`EpochLoop` is the part of [`Trainer`][wrim.engine.Trainer] that runs batches: the
trainer sets every attribute it reads (``config``, ``model``, ``net``, ``loss_fn``, ``loader``, ``optimizer``, ...)
in its ``__init__`` and ``_setup``. One step ([P] losses, [D] weights) with the default parts:

```text
out  = model(images, modalities)                       # WRIMNetOutput, B = num_ids * 2 * num_instances
L_id = sum_h CE_ls(out.logits[h], pids)                # every head: P5 global, P5 parts, P4 global
L_m  = AICL(out.p5_projection, out.p4_projection, pids, modalities)   # CMKIC on P5 + p4_weight * P4
L    = id_weight * L_id + metric_weight * L_m
```

With a given model and loss, ``L = loss(model(images, modalities), pids, modalities=modalities)``.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from tqdm.auto import tqdm

from wrim.distributed import DistInfo
from wrim.engine.checkpoint import checkpoint_exists
from wrim.engine.config import Config
from wrim.engine.logger import MetricsLogger, show_progress
from wrim.modality import VISIBLE

__all__ = ["EpochLoop", "NonFiniteLossError"]


class NonFiniteLossError(RuntimeError):
    """A loss term, a parameter or a buffer became NaN or infinite; training stopped, nothing non-finite was
    published and the last good checkpoint was kept."""


class EpochLoop:
    """Runs the batches of one epoch (a base of ``Trainer``, which sets every attribute below)."""

    config: Config
    dist: DistInfo
    device: torch.device
    run_dir: Path
    net: nn.Module
    model: nn.Module
    loss_fn: Any
    loader: torch.utils.data.DataLoader
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    amp_dtype: torch.dtype | None
    iters_per_epoch: int
    start_epoch_done: int
    logger: MetricsLogger | None
    _output_type: type | None
    _takes_num_visible: bool
    _loss_scaling: bool
    _step: Any

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def compute_losses(
        self, out: Any, pids: torch.Tensor, modalities: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The total loss and every named term: the loss's ``terms`` (for ``WRIMNetLoss``: ``id_<head>``, ``id``,
        ``metric`` and the metric's parts) and ``loss``, the total.

        Args:
            out: the model's training output (a ``WRIMNetOutput`` for the default loss).
            pids: (B,) identity labels.
            modalities: (B,) 0 = visible, 1 = infrared.

        Raises:
            TypeError: the default loss on a model that returns something else, or a loss that does not return a
                scalar tensor (one line saying what to pass).
        """
        if self._output_type is not None and not isinstance(out, self._output_type):
            raise TypeError(
                f"the default loss (WRIMNetLoss) needs the model's training-mode forward to return a WRIMNetOutput, "
                f"got {type(out).__name__}: pass your own loss, Trainer(config, model=..., loss=my_loss), called as "
                "my_loss(outputs, labels, modalities=modalities)"
            )
        total = self.loss_fn(out, pids, modalities=modalities)
        if not isinstance(total, torch.Tensor) or total.dim() != 0:
            shape = tuple(total.shape) if isinstance(total, torch.Tensor) else type(total).__name__
            raise TypeError(f"the loss must return a scalar tensor, got {shape}: reduce it (e.g. .mean()) in the loss")
        terms = dict(getattr(self.loss_fn, "terms", None) or {})
        terms.setdefault("loss", total)
        return total, terms

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
                copy then runs on its own samples only); passed only to a model whose ``forward`` takes it.

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
                shown = {k: f"{values[k]:.3f}" for k in ("loss", "id", "metric") if k in values}
                bar.set_postfix(**shown, img_s=f"{rate:.1f}")
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
