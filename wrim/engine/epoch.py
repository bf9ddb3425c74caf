"""One training epoch: the loader's batches through the engine's ``TrainStep`` (``wrim.engine.step``), the
schedule, the logged terms and the divergence guard.

`EpochLoop` gets its parts explicitly (the step, the loader, the schedule, where to log); the step itself (forward,
losses, backward, optimiser update) is ``wrim.engine.step``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from tqdm.auto import tqdm

from wrim.distributed import DistInfo
from wrim.engine.checkpoint import read_pointer
from wrim.engine.config import Config
from wrim.engine.logger import MetricsLogger, show_progress
from wrim.engine.precision import memory_format
from wrim.engine.step import TrainStep
from wrim.modality import VISIBLE

__all__ = ["EpochLoop", "NonFiniteLossError", "check_finite_state"]


class NonFiniteLossError(RuntimeError):
    """A loss term, a parameter or a buffer became NaN or infinite; training stopped, nothing non-finite was
    published and the last good checkpoint was kept."""


class EpochLoop:
    """Runs the batches of one epoch through ``step``, steps the schedule after each, logs the terms.

    Args:
        step: the engine's training step (model, loss, optimiser, precision).
        loader: the training loader (its batch sampler has ``set_epoch``).
        scheduler: the learning-rate schedule, stepped once per batch.
        config: the run configuration (``seed``, ``epochs``, ``log_every``, ``progress``, ``model.channels_last``).
        dist: this process's place in the job.
        device: where the step runs.
        run_dir: the run folder (named in the divergence message).
        logger: the step logger (rank 0), or ``None``.
    """

    def __init__(
        self,
        step: TrainStep,
        loader: torch.utils.data.DataLoader,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        config: Config,
        dist: DistInfo,
        device: torch.device,
        run_dir: Path,
        logger: MetricsLogger | None,
    ) -> None:
        self.step = step
        self.loader = loader
        self.scheduler = scheduler
        self.config = config
        self.dist = dist
        self.device = device
        self.run_dir = run_dir
        self.logger = logger
        self.iters_per_epoch = len(loader)

    def _batches(self, epoch: int) -> Iterator[tuple[torch.Tensor, ...]]:
        # the sampler's batches and per-sample augmentation seeds depend only on (seed, epoch, step), so an epoch run
        # after a resume draws exactly the batches and augmentations of an uninterrupted run; the workers' own RNG
        # (seeded by (seed, epoch, rank)) is not used by the train transform
        self.loader.batch_sampler.set_epoch(epoch)
        self.loader.generator = torch.Generator().manual_seed(
            (self.config.seed * 1_000_003 + epoch) * 1009 + self.dist.rank
        )
        yield from self.loader

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
        self.step.model.train()
        optimizer = self.step.optimizer
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
        layout = memory_format(cfg.model.channels_last)
        for step, (images, pids, _camids, modalities) in enumerate(bar):
            num_visible = int((modalities == VISIBLE).sum())  # the loader's CPU ids: no device sync
            images = images.to(self.device, non_blocking=True).contiguous(memory_format=layout)
            pids = pids.to(self.device, non_blocking=True)
            modalities = modalities.to(self.device, non_blocking=True)
            terms = self.step(images, pids, modalities, num_visible)
            pending.append((step, torch.stack(list(terms.values()))))
            self.scheduler.step()

            n_images += images.shape[0] * self.dist.world_size
            if step % cfg.log_every == 0 or step == self.iters_per_epoch - 1:
                values = self._read_terms(epoch, list(terms), pending, sums)
                rate = n_images / (time.perf_counter() - start)
                shown = {k: f"{values[k]:.3f}" for k in ("loss", "id", "metric") if k in values}
                bar.set_postfix(**shown, img_s=f"{rate:.1f}")
                if self.logger is not None:
                    global_step = epoch * self.iters_per_epoch + step
                    self.logger.log_step(global_step, {**values, "lr": optimizer.param_groups[0]["lr"]})
        bar.close()
        elapsed = time.perf_counter() - start
        record = {k: v / self.iters_per_epoch for k, v in sums.items()}
        record["lr"] = optimizer.param_groups[0]["lr"]
        record["img_per_s"] = n_images / elapsed
        record["epoch_time_s"] = elapsed
        return record

    def _raise_non_finite(self, epoch: int, step: int, bad: list[str], values: dict[str, float]) -> None:
        global_step = epoch * self.iters_per_epoch + step
        kept = _published_epoch(self.run_dir)
        where = (
            f"the last good checkpoint (after epoch {kept}) is kept in {self.run_dir}/last.*"
            if kept is not None
            else "no epoch had finished, so there is no checkpoint"
        )
        detail = ", ".join(f"{k} = {values[k]}" for k in bad)
        msg = (
            f"non-finite loss at epoch {epoch + 1}, step {step} (global step {global_step}): {detail}. "
            f"Training stopped; {where}. Lower optim.lr, enable optim.clip_grad_norm, or check the data."
        )
        raise NonFiniteLossError(msg)


def _published_epoch(run_dir: Path) -> int | None:
    """The epoch of the run's published ``last`` checkpoint, ``None`` before the first."""
    pointer = read_pointer(run_dir, "last")
    return None if pointer is None else pointer["epoch"]


def check_finite_state(net: nn.Module, epoch: int, iters_per_epoch: int, run_dir: Path) -> None:
    """Divergence guard: every parameter and buffer of ``net`` must be finite before a checkpoint is written.

    Raises:
        NonFiniteLossError: names the first non-finite parameter or buffer and the checkpoint that is kept.
    """
    for name, tensor in net.state_dict().items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            kind = "parameter" if name in dict(net.named_parameters()) else "buffer"
            kept = _published_epoch(run_dir)
            where = (
                f"the last good checkpoint (epoch {kept}) is kept: {run_dir}/last.json"
                if kept is not None
                else "no epoch had finished, so there is no checkpoint"
            )
            msg = (
                f"non-finite {kind} {name!r} after epoch {epoch + 1} (global step "
                f"{(epoch + 1) * iters_per_epoch}); nothing was saved, {where}. Lower optim.lr, enable "
                "optim.clip_grad_norm, or check the data."
            )
            raise NonFiniteLossError(msg)
