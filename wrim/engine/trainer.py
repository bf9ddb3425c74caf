"""The training run: parts built from the config (or given), epochs (``wrim.engine.epoch``), evaluation,
checkpoints and logs, in plain PyTorch.

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

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.distributed as dist
from torch import nn
from tqdm.auto import tqdm

from wrim.distributed import DistInfo, barrier, init_distributed, resolve_device, shutdown_distributed
from wrim.engine.build import (
    build_dataset,
    build_loader,
    build_model,
    build_optimizer,
    build_scheduler,
    build_step,
    check_evaluation,
    check_parts,
    check_process_count,
    seed_everything,
)
from wrim.engine.checkpoint import (
    WEIGHTS,
    CheckpointError,
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
from wrim.engine.config import Config, config_sha256, config_to_dict
from wrim.engine.epoch import EpochLoop, NonFiniteLossError, check_finite_state
from wrim.engine.evaluate import evaluate_training_weights
from wrim.engine.logger import MetricsLogger, attach_run_log, show_progress
from wrim.engine.precision import amp_dtype, memory_format
from wrim.engine.resume import check_resume
from wrim.engine.run_report import TrainResult, final_card, model_info, provenance_segment, write_final_results
from wrim.engine.rundir import RunFolder, RunLock, choose_run_dir
from wrim.engine.step import TrainStep, loss_scaler
from wrim.evaluation import METRIC_NAMES
from wrim.layers import convert_sync_batchnorm

if TYPE_CHECKING:
    from wrim.data import VIReIDDataset

__all__ = ["NonFiniteLossError", "TrainResult", "Trainer"]

log = logging.getLogger("wrim")


class Trainer:
    """Trains and evaluates one run described by a [`Config`][wrim.engine.Config], from parts given or built.

    A part left ``None`` is built from the config by ``wrim.engine.build`` (as ``wrim train`` does). A given part
    replaces it; the contract (docs: Training, section Training your own network):

    - ``model``: any ``nn.Module`` called as ``model(images, modalities)`` ((B, 3, H, W), (B,)); in training mode it
      returns what ``loss`` consumes (a ``WRIMNetOutput`` for the default loss), in eval mode the (B, D)
      embedding. ``num_visible=`` (the batch's visible count) is passed when its ``forward`` has that parameter.
    - ``loss``: called as ``loss(outputs, labels, modalities=modalities)`` with the training-mode outputs; returns a
      scalar tensor. A ``terms`` dict on it (name -> tensor) is logged after each call.
    - ``dataset``: a ``wrim.data.VIReIDDataset`` (train records, ``num_classes``, ``test_split``).

    Checkpoints, resume, the divergence guard, DDP and evaluation work the same for given parts.

    Args:
        config: the run configuration.
        run_dir: the run folder; default ``<output_dir>/<run_name>`` or ``<output_dir>/<name>-<UTC timestamp>``.
        resume: continue from ``<run_dir>/last.json`` (``run_dir`` must then exist; see ``find_latest_run()``).
            ``config`` must equal the run's saved config except for resumable keys (see ``resume_config()``,
            which builds such a config); the changes are logged.
        model: the network (default: ``model.name`` built by ``wrim.engine.build.build_model``).
        loss: the training objective (default: ``WRIMNetLoss`` from ``loss.*``).
        dataset: the data (default: ``data.dataset`` built by ``wrim.engine.build.build_dataset``).
    """

    def __init__(
        self,
        config: Config,
        *,
        run_dir: str | Path | None = None,
        resume: bool = False,
        model: nn.Module | None = None,
        loss: nn.Module | None = None,
        dataset: VIReIDDataset | None = None,
    ) -> None:
        check_parts(model, loss, dataset)
        self.config = config
        self.resume = resume
        self._requested_run_dir = Path(run_dir) if run_dir is not None else None
        self.dataset = dataset
        self.net = model
        self.loss_fn = loss
        self._model_given = model is not None
        self.dist = DistInfo()
        self.device = torch.device("cpu")
        self.run_dir = Path()
        self.loader: torch.utils.data.DataLoader | None = None
        self.iters_per_epoch = 0
        self.optimizer: torch.optim.Optimizer | None = None
        self.scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
        self.amp_dtype: torch.dtype | None = None
        self.scaler: torch.amp.GradScaler | None = None
        self.batch_step: TrainStep | None = None
        self.epoch_loop: EpochLoop | None = None
        self.epochs_at_start = 0
        self.epochs_done = 0
        self.best_r1, self.best_epoch = -1.0, 0
        self.pending_record: dict[str, Any] | None = None
        self.logger: MetricsLogger | None = None
        self._resume_state: dict[str, Any] | None = None
        self._handlers: list[logging.Handler] = []
        self._lock: RunLock | None = None
        self._stale: list[Path] = []
        self._last_eval: tuple[Any, dict[str, torch.Tensor]] | None = None
        self._recording = False  # this process appends a provenance segment (rank 0 of a run that trains)

    # ------------------------------------------------------------------ setup

    def _setup(self) -> None:
        """Run folder, data, model and optimiser (in the order of an uninterrupted run's RNG draws), then resume."""
        self._setup_run()
        seed_everything(self.config.seed)
        self._setup_data()
        self._setup_model()
        self._setup_state()
        self.epoch_loop = EpochLoop(
            self.batch_step, self.loader, self.scheduler, self.config, self.dist, self.device, self.run_dir, self.logger
        )

    def _setup_run(self) -> None:
        cfg = self.config
        self.device = resolve_device(cfg.device, int(os.environ.get("LOCAL_RANK", "0")))
        self.dist = init_distributed(self.device)
        self.run_dir = self._resolve_run_dir()
        if self.resume:  # the resume checks, once, before anything is built or logged
            self._resume_state = load_checkpoint(self.run_dir, "last")
            check_resume(self.run_dir, cfg, self._resume_state)
        self._handlers = attach_run_log(self.run_dir) if self.dist.is_main else []
        for path in self._stale:
            log.info("removed %s, left by an interrupted save", path)
        self.amp_dtype = amp_dtype(cfg.amp, self.device)
        self.scaler = loss_scaler(self.device, self.amp_dtype)

    def _setup_data(self) -> None:
        from wrim.data import check_counts

        cfg = self.config
        if self.dataset is None:  # rank 0 writes a generated dataset (synthetic cache) first, the others then read it
            if self.dist.is_main:
                self.dataset = build_dataset(cfg.data)
            barrier(self.dist)
            if not self.dist.is_main:
                self.dataset = build_dataset(cfg.data)
        check_counts(self.dataset, strict=cfg.data.strict_check, warn=self.dist.is_main)  # wrim check-data's counts
        self.loader = build_loader(self.dataset, cfg, self.dist, pin_memory=self.device.type == "cuda")
        self.iters_per_epoch = len(self.loader)

    def _setup_model(self) -> None:
        cfg = self.config
        net = self.net
        if net is None:
            net = build_model(cfg.model, self.dataset.num_classes, tuple(cfg.data.img_size))
        if self.dist.distributed and cfg.model.sync_bn:  # global batch statistics (CUDA and CPU)
            net = convert_sync_batchnorm(net, self.device)
        self.net = net.to(self.device, memory_format=memory_format(cfg.model.channels_last))
        ddp_or_net: nn.Module = self.net
        if self.dist.distributed:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            ddp_or_net = nn.parallel.DistributedDataParallel(self.net, device_ids=device_ids)
        self.optimizer = build_optimizer(self.net, cfg.optim)
        # model.compile: the whole step (forward, losses, backward) as one graph, around the DDP-wrapped module
        self.batch_step = build_step(
            cfg, ddp_or_net, self.optimizer, self.device, loss=self.loss_fn, scaler=self.scaler
        )
        self.loss_fn = self.batch_step.loss
        self.scheduler = build_scheduler(self.optimizer, cfg.optim, cfg.epochs, self.iters_per_epoch)

    def _setup_state(self) -> None:
        """Resume state, the eval protocol's check, the logger, and (rank 0) ``config.yaml`` and ``model.json``."""
        cfg = self.config
        if self.resume:
            self._load_resume_state()
        check_evaluation(cfg.eval, self.dataset)  # bad trials or eval.protocol fail now, not after an epoch
        if self.pending_record is not None:  # every rank reads the log: the pending evaluation is collective
            epochs = [record["epoch"] for record in RunFolder(self.run_dir).read_history()]
            self.pending_record = None if self.epochs_at_start in epochs else self.pending_record
        barrier(self.dist)  # rank 0 rewrites metrics.jsonl next
        if not self.dist.is_main:
            return
        self.logger = MetricsLogger(self.run_dir, resume_epoch=self.epochs_at_start if self.resume else None)
        folder = RunFolder(self.run_dir)
        folder.save_config(cfg)  # only once the run is known to start
        folder.write_model_info(model_info(self.net, self.dataset, cfg, self._model_name))
        if not self._finished():  # a resume of a finished run trains nothing: no new segment
            segment = provenance_segment(
                cfg, self.dataset, self.device, self.amp_dtype, self.dist.world_size,
                resumed=bool(self.resume), epochs_done=self.epochs_at_start,
            )  # fmt: skip
            folder.start_segment(segment)
            self._recording = True

    def _finished(self) -> bool:
        """Whether the run has trained all its epochs and written its final metrics (a resume then does nothing)."""
        done = self.epochs_at_start == self.config.epochs and self.pending_record is None
        return done and RunFolder(self.run_dir).read_final_metrics() is not None

    @property
    def _model_name(self) -> str | None:
        """``model.name``, or ``None`` for a model object given to the trainer."""
        return None if self._model_given else self.config.model.name

    def _load_resume_state(self) -> None:
        """The checkpoint read (and checked) by ``_setup_run`` into the parts: weights, optimiser, schedule, scaler,
        epoch, best R1, the pending evaluation and this process's RNG state."""
        from wrim.models import load_weights

        state = self._resume_state
        weights = Path(state["checkpoint_set"]) / WEIGHTS
        try:
            load_weights(self.net, weights)  # names, shapes and kinds checked before anything is loaded
        except ValueError as err:
            raise ValueError(
                f"--resume: {err}; build the model the run was trained with (same class, arguments and number of "
                "identities) or start a new run"
            ) from None
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if "scaler" in state:
            self.scaler.load_state_dict(state["scaler"])
        self.epochs_at_start = self.epochs_done = state["epoch"]
        if self.dist.is_main and self._last_set_name() != Path(state["checkpoint_set"]).name:  # killed before publish
            publish_checkpoint(self.run_dir, "last", state["checkpoint_set"], epoch=state["epoch"])
        best = read_pointer(self.run_dir, "best")
        if best is not None and best["epoch"] <= self.epochs_at_start:
            self.best_r1, self.best_epoch = best["R1"], best["epoch"]
        self.pending_record = state.get("record")
        rng = state["rng"]  # one state per process of the run: the same process count (data.num_ids is per process)
        check_process_count(len(rng), self.dist.world_size, self.config.data.num_ids)
        restore_rng_state(rng[self.dist.rank])
        log.info("resumed %s after epoch %d (%s)", self.run_dir, self.epochs_at_start, state["checkpoint_set"])
        self._resume_state = None

    def _resolve_run_dir(self) -> Path:
        run_dir = choose_run_dir(self.config, self._requested_run_dir, self.resume)
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

    # ------------------------------------------------------------------ one batch, one epoch

    def compute_losses(
        self, out: Any, pids: torch.Tensor, modalities: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The total loss and every named term of the model's training output: the step's
        ``compute_losses`` (``wrim.engine.step.TrainStep``)."""
        return self.batch_step.compute_losses(out, pids, modalities)

    def train_step(
        self, images: torch.Tensor, pids: torch.Tensor, modalities: torch.Tensor, num_visible: int | None = None
    ) -> dict[str, torch.Tensor]:
        """Forward, losses and backward of one batch, what ``model.compile: true`` compiles as one graph: the step's
        ``forward_backward`` (``wrim.engine.step.TrainStep``); the optimiser update stays outside."""
        return self.batch_step.forward_backward(images, pids, modalities, num_visible)

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """Runs one epoch (0-based) and returns the mean of every loss term, the lr and images/s
        (``wrim.engine.epoch.EpochLoop.train_epoch``)."""
        return self.epoch_loop.train_epoch(epoch)

    # ------------------------------------------------------------------ evaluation and checkpoints

    def evaluate(self, trials: tuple[int, ...] | list[int] | None) -> dict[str, float]:
        """Evaluates the current weights on the dataset's protocol; returns R1..mINP in % (rank 0; others ``{}``).

        Collective under DDP: ``wrim.engine.evaluate.evaluate_training_weights``, whose embeddings of the first
        trial's split are kept for the final ``ranklist.png``.

        Args:
            trials: gallery trials to average; ``None`` = the dataset's default trials.
        """
        metrics, self._last_eval = evaluate_training_weights(
            self.net, self.dataset, self.config, self.device, self.amp_dtype, self.dist, trials
        )
        return metrics

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
        outcome = "failed"
        try:
            self._setup()
            result = self._fit()
            outcome = "finished"
            return result
        except KeyboardInterrupt:
            outcome = "interrupted"
            self._log_to_file(f"interrupted; the last published checkpoint is kept: wrim train --resume {self.run_dir}")
            raise
        except Exception as err:
            outcome = f"failed: {type(err).__name__}"
            self._log_to_file(f"stopped: {type(err).__name__}: {err}")
            raise
        finally:
            if self._recording:  # rank 0, once the run had started: complete its provenance segment
                RunFolder(self.run_dir).update_segment(self.epochs_done, outcome)
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
        if self.epochs_at_start > cfg.epochs:
            raise ValueError(
                f"{self.run_dir} has already trained {self.epochs_at_start} epochs, more than epochs={cfg.epochs}"
            )
        if self._finished():
            result = RunFolder(self.run_dir).read_final_metrics()
            log.info("run %s already finished (%d epochs): nothing to do", self.run_dir, cfg.epochs)
            metrics = {k: result[k] for k in METRIC_NAMES if k in result}
            return TrainResult(self.run_dir, metrics, self.best_epoch, self.best_r1)
        if self.dist.is_main:
            log.info(
                "run %s: %s on %s (%d classes, %d train images), %d iters/epoch x %d epochs, device %s",
                self.run_dir, self._model_name or type(self.net).__name__,
                self.dataset.name or type(self.dataset).__name__, self.dataset.num_classes, len(self.dataset.train),
                self.iters_per_epoch, cfg.epochs, self.device,
            )  # fmt: skip
        if self.pending_record is not None:  # stopped between the checkpoint and the end of its evaluation
            log.info("re-running the evaluation of epoch %d", self.epochs_at_start)
            self._after_checkpoint(self.epochs_at_start, dict(self.pending_record))
        epochs = tqdm(
            range(self.epochs_at_start, cfg.epochs),
            initial=self.epochs_at_start,
            total=cfg.epochs,
            desc="training",
            disable=not (show_progress(cfg.progress) and self.dist.is_main),
            dynamic_ncols=True,
        )
        for epoch in epochs:
            record: dict[str, Any] = {"epoch": epoch + 1, **self.train_epoch(epoch)}
            check_finite_state(self.net, epoch, self.iters_per_epoch, self.run_dir)
            state = self._state(epoch + 1, record)
            if self.dist.is_main:
                with ctrl_c_deferred():  # a Ctrl-C during the save stops the run once the epoch is published
                    set_dir = save_checkpoint(self.run_dir, self.net, state, config_sha256(cfg))
                    publish_checkpoint(self.run_dir, "last", set_dir, epoch=epoch + 1)
                self.epochs_done = epoch + 1
                RunFolder(self.run_dir).update_segment(self.epochs_done)  # the epochs so far, however it ends
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

    def _last_set_name(self) -> str | None:
        """The set ``last.json`` names, or None when it is missing or damaged (resume then fell back to a set)."""
        try:
            pointer = read_pointer(self.run_dir, "last")
        except CheckpointError:
            return None
        return None if pointer is None else Path(pointer["set"]).name

    def _final_evaluation(self) -> dict[str, float]:
        """Rank 0 loads the weights of ``eval.final_checkpoint`` (the best, else the last; or the last), every rank
        evaluates (collective); rank 0 writes the results."""
        cfg = self.config
        if not self.dist.is_main:
            return self.evaluate(cfg.eval.final_trials)  # with rank 0's weights, broadcast inside
        folder = RunFolder(self.run_dir)
        tag = folder.checkpoint_tag()  # the run's own choice: eval.final_checkpoint
        state = folder.load_checkpoint(tag, self.net)
        metrics = self.evaluate(cfg.eval.final_trials)
        weights = Path(state["checkpoint_set"]) / WEIGHTS
        choice = folder.checkpoint_choice(weights)
        card = final_card(cfg, self.dataset, self.amp_dtype, choice)
        write_final_results(
            folder, weights, metrics, card, best_epoch=self.best_epoch, history=self.logger.records,
            ranklist=self._last_eval if cfg.eval.ranklist else None, img_size=tuple(cfg.data.img_size),
        )  # fmt: skip
        trials = "default" if cfg.eval.final_trials is None else list(cfg.eval.final_trials)
        log.info(
            "final (%s weights, epoch %d, trials %s): R1 %.2f  mAP %.2f  mINP %.2f  -> %s",
            tag, choice.get("epoch", self.best_epoch), trials, metrics["R1"], metrics["mAP"], metrics["mINP"],
            self.run_dir,
        )  # fmt: skip
        return metrics
