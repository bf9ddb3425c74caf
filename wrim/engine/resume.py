"""Resuming a run: the config it continues with and the resume checks (``wrim.engine.rundir`` finds the folder).

A resume continues only the run it was asked to continue. `check_resume()` holds the checks, in order: the given
config against the run's ``config.yaml`` (only resumable keys may change), the checkpoint's own config against
``config.yaml``, and (when given a model) the model's parameter names and shapes against the checkpoint's weights.
Each failure is one line naming the first difference. ``Trainer`` runs it once per resume, with the checkpoint's
state, before it builds anything; the weights are checked against the model where they are loaded
(``wrim.models.load_weights`` refuses other names or shapes before loading any).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from torch import nn

from wrim.engine.checkpoint import WEIGHTS, checkpoint_exists
from wrim.engine.config import Config, apply_overrides, config_diff, config_from_dict, structural_changes
from wrim.models.weights import open_weights, state_differences

__all__ = ["check_resume", "first_weight_difference", "resume_config"]

log = logging.getLogger("wrim")


def resume_config(run_dir: str | Path, overrides: list[str] | None = None) -> Config:
    """The saved config of a run folder with ``overrides`` applied, for ``Trainer(config, resume=True)``, which
    checks it (`check_resume`: only resumable keys may change) once, before it builds anything.

    Args:
        run_dir: the run folder (holds ``config.yaml``).
        overrides: ``key=value`` strings; allowed keys are listed in ``wrim.engine.config.RESUME_OVERRIDABLE``
            (``epochs``, ``eval.*``, logging, ``data.num_workers``, ...).

    Raises:
        ValueError: no checkpoint or no saved config, or an override that is not a config key or value.
    """
    if not checkpoint_exists(run_dir, "any"):
        raise ValueError(f"--resume: {str(run_dir)!r} holds no checkpoint to resume from")
    return apply_overrides(_saved_config(Path(run_dir)), overrides or [])


def _saved_config(run_dir: Path) -> Config:
    from wrim.engine.rundir import RunFolder

    try:
        return RunFolder(run_dir).read_config()
    except ValueError as err:
        raise ValueError(f"--resume: {err}") from None


def _format_changes(changes: dict[str, tuple[Any, Any]]) -> str:
    return ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in changes.items())


def check_resume(
    run_dir: str | Path, config: Config, state: dict[str, Any] | None = None, model: nn.Module | None = None
) -> None:
    """The three resume checks; once all three pass (``state`` given), the resumable changes are logged.

    Args:
        run_dir: the run folder.
        config: the config the run continues with.
        state: the loaded checkpoint state (``load_checkpoint``): its config is checked against ``config.yaml``.
        model: the model about to receive the checkpoint's weights: its names and shapes are checked.

    Raises:
        ValueError: a structural config change, a checkpoint written with another config, or a model whose
            parameters differ from the checkpoint's (one line, the first difference named).
    """
    run_dir = Path(run_dir)
    saved = _saved_config(run_dir)
    changes = structural_changes(saved, config)
    if changes:
        raise ValueError(
            f"--resume cannot change the run's structure ({_format_changes(changes)}); start a new run for that"
        )
    if state is None:
        return
    changes = structural_changes(config_from_dict(state["config"]), config)
    if changes:
        raise ValueError(
            f"{state['checkpoint_set']} was written with another config than {run_dir}/config.yaml "
            f"({_format_changes(changes)}); restore config.yaml or start a new run"
        )
    if model is not None:
        weights = Path(state["checkpoint_set"]) / WEIGHTS
        difference = first_weight_difference(model, weights)
        if difference is not None:
            raise ValueError(
                f"--resume: the model does not match {weights}: {difference}; build the model the run was trained "
                "with (same class, arguments and number of identities) or start a new run"
            )
    for key, (old, new) in config_diff(saved, config).items():
        if key != "progress":
            log.info("resume: %s changed from %r to %r", key, old, new)


def first_weight_difference(model: nn.Module, path: str | Path) -> str | None:
    """The first tensor whose name or shape differs between ``model.state_dict()`` and a ``.safetensors`` file
    (shapes first, then names missing from the file, then names only in the file; tied weights stored once are not
    missing), with the count of differences; ``None`` when they match."""
    with open_weights(path) as file:
        found = state_differences(model, file.shapes)
    differences = [
        f"{key!r} has shape {shape_in_file} in the checkpoint, {shape} in the model"
        for key, shape_in_file, shape in found.shapes
    ]
    differences += [f"{key!r} is in the model, not in the checkpoint" for key in found.missing]
    differences += [f"{key!r} is in the checkpoint, not in the model" for key in found.unexpected]
    if not differences:
        return None
    more = f" ({len(differences)} differences in all)" if len(differences) > 1 else ""
    return differences[0] + more
