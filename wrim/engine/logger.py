"""Per-run metric files (``metrics.jsonl``, ``metrics.csv``), optional TensorBoard, the loss/R1 curve PNG, and
whether progress bars are drawn.

One record per epoch: ``epoch``, ``lr``, the mean of every loss term, ``img_per_s``, ``epoch_time_s`` and, on
evaluation epochs, ``R1``, ``R5``, ``R10``, ``R20``, ``mAP``, ``mINP`` (in %). ``metrics.jsonl`` is the source of
truth; ``metrics.csv`` is rewritten from it after every epoch so that its header covers every key seen. On
resume, records after the checkpoint's epoch (written by an interrupted epoch) are dropped.
"""

from __future__ import annotations

import csv
import json
import logging
import sys
from pathlib import Path
from typing import Any

from wrim._plotting import INSTALL_HINT, new_figure, save_figure
from wrim.engine.rundir import METRICS_LOG

__all__ = ["MetricsLogger", "plot_curves", "show_progress"]

log = logging.getLogger("wrim")


def show_progress(setting: bool | str) -> bool:
    """Whether to draw tqdm bars: ``True`` / ``False`` as given; ``"auto"`` only when stderr is a terminal.

    tqdm draws on stderr; a redirected or piped log (CI, ``nohup``, a cluster job) gets the logger's one line per
    epoch and per evaluation instead of carriage-return bar frames.
    """
    if setting == "auto":
        return sys.stderr.isatty()
    return bool(setting)


class MetricsLogger:
    """Writes epoch records to ``metrics.jsonl`` / ``metrics.csv`` and scalars to TensorBoard when installed.

    Args:
        run_dir: the run folder.
        resume_epoch: when resuming, the number of finished epochs in the checkpoint; records of later epochs
            are removed. ``None`` starts fresh files.
        tensorboard: write TensorBoard event files to ``<run_dir>/tb`` when ``torch.utils.tensorboard`` imports.
    """

    def __init__(self, run_dir: str | Path, resume_epoch: int | None = None, tensorboard: bool = True) -> None:
        self.run_dir = Path(run_dir)
        self.jsonl = self.run_dir / METRICS_LOG
        self.csv = self.run_dir / "metrics.csv"
        self.records: list[dict[str, Any]] = []
        if resume_epoch is not None and self.jsonl.is_file():
            lines = self.jsonl.read_text(encoding="utf-8").splitlines()
            self.records = [r for r in (json.loads(x) for x in lines if x.strip()) if r["epoch"] <= resume_epoch]
        self._rewrite()
        self.writer = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter

                self.writer = SummaryWriter(str(self.run_dir / "tb"))
            except ImportError:
                log.info("TensorBoard not installed: skipping event files (pip install 'wrim[train]')")

    def _rewrite(self) -> None:
        with open(self.jsonl, "w", encoding="utf-8") as f:
            for r in self.records:
                f.write(json.dumps(r) + "\n")
        keys: list[str] = []
        for r in self.records:
            keys += [k for k in r if k not in keys]
        with open(self.csv, "w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=keys)
            writer.writeheader()
            writer.writerows(self.records)

    def log_epoch(self, record: dict[str, Any]) -> None:
        """Appends one epoch's record (must hold ``"epoch"``) to the files and TensorBoard."""
        self.records.append(record)
        with open(self.jsonl, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        self._rewrite()
        if self.writer is not None:
            for key, value in record.items():
                if key != "epoch" and isinstance(value, (int, float)):
                    self.writer.add_scalar(f"epoch/{key}", value, record["epoch"])
            self.writer.flush()

    def log_step(self, step: int, values: dict[str, float]) -> None:
        """Writes per-iteration scalars (loss terms, learning rate) to TensorBoard, if enabled."""
        if self.writer is not None:
            for key, value in values.items():
                self.writer.add_scalar(f"step/{key}", value, step)

    def close(self) -> None:
        """Closes the TensorBoard writer."""
        if self.writer is not None:
            self.writer.close()


def plot_curves(records: list[dict[str, Any]], path: str | Path) -> bool:
    """Draws the total loss and R1 per epoch into a PNG.

    Args:
        records: epoch records as written by `MetricsLogger`.
        path: the PNG file.

    Returns:
        ``False`` (and logs why) when matplotlib is not installed, else ``True``.
    """
    try:
        fig = new_figure("plot_curves", (6, 3.5))
    except ImportError:
        log.info("matplotlib not installed: skipping %s (%s)", path, INSTALL_HINT)
        return False
    ax = fig.subplots()
    epochs = [r["epoch"] for r in records]
    ax.plot(epochs, [r["loss"] for r in records], "o-", color="tab:blue", label="loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss", color="tab:blue")
    evaluated = [r for r in records if "R1" in r]
    if evaluated:
        ax2 = ax.twinx()
        ax2.plot([r["epoch"] for r in evaluated], [r["R1"] for r in evaluated], "s-", color="tab:red", label="R1")
        ax2.plot([r["epoch"] for r in evaluated], [r["mAP"] for r in evaluated], "^--", color="tab:orange")
        ax2.set_ylabel("R1 (solid) / mAP (dashed), %", color="tab:red")
    ax.set_title("training curves")
    save_figure(fig, path, dpi=120)
    return True


def attach_run_log(run_dir: Path) -> list[logging.Handler]:
    """Sends the ``wrim`` logger's INFO lines to ``<run_dir>/train.log`` and (unless a handler already does) to
    stderr; returns the handlers added, for the caller to remove and close."""
    log = logging.getLogger("wrim")
    log.setLevel(logging.INFO)
    fmt = logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S")
    file_handler = logging.FileHandler(run_dir / "train.log", encoding="utf-8")
    file_handler.setFormatter(fmt)
    handlers: list[logging.Handler] = [file_handler]
    if not any(isinstance(h, logging.StreamHandler) and h.stream is sys.stderr for h in log.handlers):
        console = logging.StreamHandler(sys.stderr)
        console.setFormatter(fmt)
        handlers.append(console)
    for h in handlers:
        log.addHandler(h)
    return handlers
