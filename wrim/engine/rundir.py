"""The run folder, in one place: its files and how they are read and written, which checkpoint is used, unique
run-folder names and an exclusive lock held for the run's life.

A run folder holds ([D] docs: Training, section Run folder):

```text
<run>/config.yaml          the resolved config (every field)            RunFolder.read_config / save_config
<run>/model.json           what rebuilds the network: model name, identities, image size, gate modes, RegDB trial
<run>/provenance.json      what produced the run, one segment per process (wrim.engine.provenance)
<run>/final_metrics.json   the final evaluation, with its protocol card (wrim.evaluation.ProtocolCard)
<run>/metrics.jsonl        one line per epoch (losses, lr, evaluations)
<run>/last.json best.json  pointers to checkpoint sets under <run>/checkpoints/ (wrim.engine.checkpoint)
```

Every other part of wrim (the trainer, ``wrim eval``, ``export``, ``search``, resume, the study runner) asks
`RunFolder` for these instead of knowing their names. A JSON file that is truncated or edited by hand is a one-line
``ValueError`` naming the file.

A fresh run is called ``<name>-<UTC date>-<time>-<microseconds>-<pid>`` (two runs started in the same second, even
from one process, get different folders). `RunLock` holds ``<run>/.lock`` with ``fcntl.flock`` where it
exists (released by the kernel when the process dies, even by SIGKILL), else by creating it with ``O_EXCL``; the
file names the holder's pid, which a second run prints before exiting ([D] docs: Training, "Run folder").
"""

from __future__ import annotations

import json
import os
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wrim.engine.checkpoint import WEIGHTS, atomic_write, checkpoint_exists, load_checkpoint, read_pointer
from wrim.evaluation.metrics import METRIC_NAMES

if TYPE_CHECKING:
    from wrim.engine.config import Config

__all__ = [
    "RunFolder",
    "RunLock",
    "RunLockedError",
    "complete_old_run",
    "is_run_of",
    "new_run_name",
    "read_json",
    "run_record",
    "write_json",
]

CONFIG = "config.yaml"
MODEL_INFO = "model.json"
PROVENANCE = "provenance.json"
FINAL_METRICS = "final_metrics.json"
METRICS_LOG = "metrics.jsonl"
LOCK = ".lock"
#: The checkpoint tags of a run folder: the best evaluated and the last (`RunFolder.checkpoint_tag` chooses).
TAGS: tuple[str, ...] = ("best", "last")
_STAMP = r"\d{8}-\d{6}(-\d{6}-\d+)?"


class RunLockedError(ValueError):
    """Another live process holds the run folder's lock."""


def new_run_name(name: str) -> str:
    """``<name>-YYYYmmdd-HHMMSS-<microseconds>-<pid>`` in UTC."""
    return f"{name}-{datetime.now(timezone.utc).strftime('%Y%m%d-%H%M%S-%f')}-{os.getpid()}"


def is_run_of(folder: str | Path, name: str) -> bool:
    """Whether ``folder`` is named like a fresh run of config ``name`` (exactly, not by prefix)."""
    return re.fullmatch(re.escape(name) + "-" + _STAMP, Path(folder).name) is not None


class RunLock:
    """An exclusive lock on a run folder, held from `acquire()` to `release()` (or the process's end).

    Args:
        run_dir: the run folder (must exist).
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / LOCK
        self._fd: int | None = None

    def _holder(self) -> str:
        try:
            return self.path.read_text(encoding="utf-8").strip() or "unknown"
        except OSError:
            return "unknown"

    def acquire(self) -> None:
        """Takes the lock.

        Raises:
            RunLockedError: another process holds it (the message names its pid).
        """
        busy = RunLockedError(
            f"{str(self.path.parent)!r} is in use by another wrim run (pid {{}}); wait for it, stop it, or choose "
            "another run_name"
        )
        try:
            import fcntl
        except ImportError:  # Windows: O_EXCL, the file is removed by release()
            try:
                self._fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                raise RunLockedError(str(busy).format(self._holder())) from None
        else:
            fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise RunLockedError(str(busy).format(self._holder())) from None
            os.ftruncate(fd, 0)
            self._fd = fd
        os.write(self._fd, str(os.getpid()).encode())
        os.fsync(self._fd)

    def release(self) -> None:
        """Releases the lock (idempotent)."""
        if self._fd is None:
            return
        os.close(self._fd)  # closing the descriptor releases the flock
        self._fd = None
        try:
            import fcntl  # noqa: F401
        except ImportError:
            self.path.unlink(missing_ok=True)


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


def choose_run_dir(config: Config, requested: Path | None, resume: bool) -> Path:
    """The run folder: the resumed one, ``requested``, ``output_dir/run_name`` or a new ``output_dir/<name>-...``."""
    if resume:
        return resume_folder(config, requested)
    if requested is not None:
        return requested
    if config.run_name is not None:
        return Path(config.output_dir) / config.run_name
    return Path(config.output_dir) / new_run_name(config.name)


def read_json(path: Path) -> Any:
    """A JSON file's content; a missing, truncated or hand-broken file is a one-line ``ValueError`` naming it."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"{str(path)!r} cannot be read ({type(err).__name__}: {err})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(
            f"{str(path)!r} is not valid JSON ({err.msg} at line {err.lineno}, column {err.colno}): it was truncated "
            "or edited; restore it from a copy, or rerun what wrote it"
        ) from None


def write_json(path: Path, value: Any) -> None:
    """Write ``value`` as indented JSON, atomically (a reader never sees half a file)."""
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8"))


class RunFolder:
    """A run folder of ``wrim train`` / ``Trainer``: its files, by name, read and written here only.

    Args:
        path: the run folder.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    def file(self, name: str) -> Path:
        """The path of one of the folder's files (``CONFIG``, ``MODEL_INFO``, ...)."""
        return self.path / name

    def require(self) -> None:
        """Raise a one-line ValueError unless this is a run folder (it holds ``model.json``)."""
        if not self.file(MODEL_INFO).is_file():
            raise ValueError(
                f"{str(self.file(MODEL_INFO))!r} is missing: {str(self.path)!r} is not a wrim run folder (give the "
                "folder wrim train wrote, or a file inside it)"
            )

    # ----------------------------------------------------------------------------------------------- config

    def read_config(self) -> Config:
        """The run's resolved config, read as any config is (``wrim.engine.load_config``)."""
        from wrim.engine.config import load_config

        if not self.file(CONFIG).is_file():
            raise ValueError(f"{str(self.file(CONFIG))!r} is missing; is {str(self.path)!r} a wrim run folder?")
        return load_config(self.file(CONFIG))

    def save_config(self, config: Config) -> None:
        """Write the run's resolved config."""
        from wrim.engine.config import save_config

        save_config(config, self.file(CONFIG))

    # ----------------------------------------------------------------------------------------------- model

    def read_model_info(self) -> dict[str, Any]:
        """``model.json``: ``model`` (a registered name, or ``None`` for a model object), ``num_classes``,
        ``img_size``, and where known ``gates`` and ``training_trial``."""
        self.require()
        info = read_json(self.file(MODEL_INFO))
        missing = [key for key in ("model", "num_classes", "img_size") if not isinstance(info, dict) or key not in info]
        if missing:
            raise ValueError(f"{str(self.file(MODEL_INFO))!r} lacks {missing}: it was edited; rerun wrim train")
        return info

    def model_name(self) -> str:
        """The registered model name that rebuilds the run's network.

        Raises:
            ValueError: the run trained a model object given to ``Trainer(model=...)``, which no name rebuilds.
        """
        info = self.read_model_info()
        if info.get("model") is None:
            raise ValueError(
                f"{self.path} trained a model object given to Trainer(model=...) ({info.get('class')}), which cannot "
                "be rebuilt by name: register its constructor with @wrim.register_model (and --import its module), "
                "or load the weights into your model from Python (RunFolder(run).weights())"
            )
        return info["model"]

    def write_model_info(self, info: dict[str, Any]) -> None:
        write_json(self.file(MODEL_INFO), info)

    # ----------------------------------------------------------------------------------------------- checkpoints

    def checkpoint_tag(self, tag: str | None = None) -> str:
        """``tag`` if given (``"best"`` or ``"last"``), else the run's own choice, the one its final evaluation
        makes: ``"last"`` when its config says ``eval.final_checkpoint: last``, else ``"best"`` when one was
        published (the best R1 seen by the epoch evaluations), else ``"last"``."""
        if tag is not None:
            if tag not in TAGS:
                raise ValueError(f"checkpoint must be one of {TAGS}; got {tag!r}")
            return tag
        if self.file(CONFIG).is_file() and self.read_config().eval.final_checkpoint == "last":
            return "last"
        return "best" if checkpoint_exists(self.path, "best") else "last"

    def load_checkpoint(self, tag: str | None = None, model: Any = None) -> dict[str, Any]:
        """The verified state of the chosen checkpoint set (``wrim.engine.checkpoint.load_checkpoint``), weights
        loaded into ``model`` when given."""
        return load_checkpoint(self.path, self.checkpoint_tag(tag), model)

    def weights(self, tag: str | None = None) -> Path:
        """The weights file of the chosen checkpoint set, verified against its manifest."""
        return Path(self.load_checkpoint(tag)["checkpoint_set"]) / WEIGHTS

    def checkpoint_choice(self, weights: Path) -> dict[str, Any]:
        """How ``weights`` were chosen, for a protocol card: ``{"tag": "best", "epoch", "selected_on"}`` when they are
        the best set (chosen on the test trials the epochs were evaluated on), ``{"tag": "last", "epoch"}``, or
        ``{"tag": "file"}`` for weights no pointer names. A set that is both the best and the last is named by the
        run's own choice (`checkpoint_tag`): with ``eval.final_checkpoint: last`` no test trial chose it."""
        own = self.checkpoint_tag()
        for tag in sorted(TAGS, key=lambda t: t != own):
            pointer = read_pointer(self.path, tag)
            if pointer is not None and (self.path / pointer["set"]).resolve() == Path(weights).resolve().parent:
                choice: dict[str, Any] = {"tag": tag, "epoch": pointer["epoch"]}
                if tag == "best":
                    choice["selected_on"] = f"R1 of trials {self._selection_trials()}"
                return choice
        return {"tag": "file"}

    def _selection_trials(self) -> list[int] | str:
        """The trials the epoch evaluations (and so ``best``) used: ``eval.trials``, else the dataset's default."""
        trials = self.read_config().eval.trials
        return list(trials) if trials is not None else "default"

    # ----------------------------------------------------------------------------------------------- results

    def read_final_metrics(self) -> dict[str, Any] | None:
        """``final_metrics.json`` (metrics, ``weights``, ``best_epoch`` and the protocol ``card``), or None before the
        run has finished."""
        path = self.file(FINAL_METRICS)
        return read_json(path) if path.is_file() else None

    def write_final_metrics(self, result: dict[str, Any]) -> None:
        write_json(self.file(FINAL_METRICS), result)

    def read_history(self) -> list[dict[str, Any]]:
        """The per-epoch records of ``metrics.jsonl`` (losses, lr, evaluations), in epoch order."""
        path = self.file(METRICS_LOG)
        if not path.is_file():
            return []
        records = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError as err:
                    raise ValueError(f"{str(path)}:{number}: not a JSON record ({err.msg})") from None
        return records

    # ----------------------------------------------------------------------------------------------- provenance

    def read_provenance(self) -> dict[str, Any] | None:
        """``provenance.json`` (``{"segments": [...]}``, wrim.engine.provenance), or None for a run without one."""
        path = self.file(PROVENANCE)
        if not path.is_file():
            return None
        provenance = read_json(path)
        if not isinstance(provenance, dict) or not isinstance(provenance.get("segments"), list):
            raise ValueError(f"{str(path)!r} has no list of segments: it was edited; it cannot be trusted")
        return provenance

    def start_segment(self, segment: dict[str, Any]) -> None:
        """Append a segment to ``provenance.json``, with ``ended: null`` and outcome ``"running"`` until it ends.

        A resume (``segment["resumed"]``) continues the segments; a fresh start in a folder whose earlier start left
        no checkpoint moves the earlier segments to ``"abandoned"``. A previous segment still ``"running"`` ended
        without a word (its process was killed): it is marked so.
        """
        provenance = self.read_provenance() or {"format": 1, "segments": []}
        if not segment["resumed"] and provenance["segments"]:
            provenance["abandoned"] = [*provenance.get("abandoned", []), *provenance["segments"]]
            provenance["segments"] = []
        for earlier in provenance["segments"]:
            if earlier.get("outcome") == "running":
                earlier["outcome"] = "killed (its end was not recorded)"
        provenance["segments"].append({**segment, "ended": None, "outcome": "running"})
        write_json(self.file(PROVENANCE), provenance)

    def update_segment(self, epochs_done: int, outcome: str | None = None) -> None:
        """Record the epochs the last segment has done and, with an ``outcome``, its end (time and outcome)."""
        from wrim.engine.provenance import utc_now

        provenance = self.read_provenance()
        if provenance is None or not provenance["segments"]:
            return
        last = provenance["segments"][-1]
        if outcome is not None:
            last.update(ended=utc_now(), outcome=outcome)
        last["epochs"] = [last["epochs"][0], epochs_done]
        write_json(self.file(PROVENANCE), provenance)


def run_record(run_dir: str | Path) -> dict[str, Any]:
    """A finished run as one JSON-ready record: what ``wrim compare`` and the study's committed records hold.

    Returns:
        ``{"run", "metrics", "card", "best_epoch", "weights", "history", "config", "provenance"}``.

    Raises:
        ValueError: the run has not finished (no ``final_metrics.json``), or one of its files is damaged.
    """
    folder = RunFolder(run_dir)
    folder.require()
    final = folder.read_final_metrics()
    if final is None:
        raise ValueError(
            f"{str(folder.path)!r} has not finished (no final_metrics.json): finish it with wrim train --resume "
            f"{folder.path}"
        )
    from wrim.engine.config import config_to_dict

    return {
        "run": folder.path.name,
        "metrics": {key: final[key] for key in METRIC_NAMES if key in final},
        "card": final.get("card"),
        "best_epoch": final.get("best_epoch"),
        "weights": final.get("weights"),
        "history": folder.read_history(),
        "config": config_to_dict(folder.read_config()),
        "provenance": folder.read_provenance(),
    }


def complete_old_run(run_dir: str | Path, report: Any) -> str | None:
    """Give a run trained before wrim wrote protocol cards and provenance what can still be known, from ``wrim eval``.

    When ``report`` (a ``wrim.engine.evaluate.CheckpointEvaluation``) evaluated the weights ``final_metrics.json``
    scores with the run's own settings (dataset, protocol, trials, flip), ``final_metrics.json`` is rewritten with its
    metrics and protocol card, and a ``provenance.json`` without segments records the config, its hash and the
    dataset's fingerprint (the code, versions and device of the training stay unknown, and say so).

    Returns:
        A line for the user when the run lacks a card (what was done, or what to do), else None.
    """
    from wrim.data.fingerprint import dataset_fingerprint
    from wrim.engine.config import config_sha256, config_to_dict
    from wrim.engine.provenance import utc_now

    folder = RunFolder(run_dir)
    final = folder.read_final_metrics()
    if final is None or "card" in final or report.card is None:
        return None
    config = folder.read_config()
    trials = config.eval.final_trials or report.dataset_object.default_trials
    own = (
        Path(report.checkpoint).resolve() == (folder.path / str(final.get("weights"))).resolve()
        and report.dataset == config.data.dataset
        and report.protocol == config.eval.protocol
        and list(report.trial_ids) == list(trials)
        and report.flip == config.eval.flip
    )
    if not own:
        return (
            f"note: {folder.path} was trained before wrim wrote protocol cards; evaluate its final weights with its "
            "own settings (no --trials / --flip / protocol overrides) to add a card to its final_metrics.json"
        )
    folder.write_final_metrics({**final, **report.mean, "card": report.card.as_dict(), "card_added_by": "wrim eval"})
    if folder.read_provenance() is None:
        write_json(
            folder.file(PROVENANCE),
            {
                "format": 1,
                "segments": [],
                "reconstructed": {
                    "by": "wrim eval",
                    "at": utc_now(),
                    "note": "trained before wrim recorded provenance: its code, versions and device are unknown",
                    "config_sha256": config_sha256(config),
                    "config": config_to_dict(config),
                    "dataset": dataset_fingerprint(report.dataset_object, report.protocol),
                },
            },
        )
    return (
        f"note: {folder.path} had no protocol card: final_metrics.json now has this evaluation's, and provenance.json "
        "what can still be known of its training"
    )
