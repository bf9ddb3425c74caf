"""``create_model``: build a registered model by name (timm style), a saved folder or a Hub repository.

``create_model("wrimnet_resnet50", num_classes=395)`` builds the architecture; ``create_model("hf-hub:org/name")``
and ``create_model(name, pretrained_path=folder)`` rebuild a model saved by
[`save_pretrained()`][wrim.models.save_pretrained] and load its weights
([`from_pretrained()`][wrim.models.from_pretrained]). ``records_init_args`` keeps the constructor arguments a model
was built with, which is what ``save_pretrained`` writes into ``config.json`` ([D] docs: Models,
section Sharing a trained model).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from pathlib import Path

from torch import nn

from wrim.models._registry import model_entrypoint
from wrim.models.pretrained import load_pretrained

__all__ = ["create_model", "from_pretrained", "records_init_args"]

HUB_PREFIX = "hf-hub:"  # a Hub repository's id follows; the factory strips it, ``pretrained`` never sees it


def records_init_args(init: Callable[..., None]) -> Callable[..., None]:
    """Decorator of a model's ``__init__``: after it runs, ``self.init_args`` holds every argument, defaults included.

    ``self.init_args`` is a plain dict (argument name -> value as given); ``save_pretrained`` stores it so that the
    same constructor call rebuilds the model. A subclass calling ``super().__init__`` records the base's arguments.
    """
    signature = inspect.signature(init)

    @functools.wraps(init)
    def wrapper(self, *args, **kwargs) -> None:
        init(self, *args, **kwargs)
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        self.init_args = {name: value for name, value in list(bound.arguments.items())[1:]}

    return wrapper


def create_model(
    name: str, pretrained: bool = False, *, pretrained_path: str | Path | None = None, **kwargs
) -> nn.Module:
    """Build the registered model ``name``, or rebuild a saved one with its weights.

    Args:
        name: a name from [`list_models()`][wrim.models.list_models] (e.g. ``"wrimnet_resnet50"``,
            ``"baseline_resnet50"``), or ``"hf-hub:<org>/<name>"``: the Hub repository's saved model with its
            weights, whatever ``pretrained`` says (``huggingface_hub`` needed: ``pip install 'wrim[hub]'``).
        pretrained: load ImageNet weights into the backbone (through timm; needs internet, or pass
            ``pretrained_file=``).
        pretrained_path: a folder written by [`save_pretrained()`][wrim.models.save_pretrained] (or a Hub id): its
            ``config.json`` rebuilds the model, which must be the architecture ``name``, and its weights are loaded
            strictly. Of ``kwargs`` only ``num_classes`` may then differ from the saved model: the classifiers are
            replaced (``reset_classifier``) after loading.
        **kwargs: the model's constructor arguments (for WRIMNet: ``num_classes``, ``img_size``, ...); they
            override the entrypoint's defaults, ``backbone=`` included.

    Returns:
        the model (in training mode, as every new module).

    Raises:
        ValueError: ``name`` is not registered (close names are listed); a saved folder that cannot be loaded
            (see ``from_pretrained``).
        TypeError: a second positional argument that is not a bool (e.g. ``num_classes`` given positionally).
    """
    if not isinstance(pretrained, bool):
        raise TypeError(
            f"create_model's second positional argument is pretrained (a bool); got {pretrained!r}. Pass the other "
            f"arguments by keyword, e.g. create_model({name!r}, num_classes={pretrained!r})"
        )
    if pretrained_path is not None:
        return load_pretrained(*_source(pretrained_path), architecture=name, overrides=kwargs)
    if name.startswith(HUB_PREFIX):
        return load_pretrained(*_source(name), overrides=kwargs)
    model = model_entrypoint(name)(pretrained=pretrained, **kwargs)  # an unknown name: the one "unknown model" error
    model.architecture = name
    return model


def from_pretrained(path_or_repo_id: str | Path) -> nn.Module:
    """Rebuild a model saved by [`save_pretrained()`][wrim.models.save_pretrained] and load its weights strictly.

    Args:
        path_or_repo_id: the folder, or a Hub id ``"org/name"`` (``"hf-hub:org/name"`` too), downloaded with
            ``huggingface_hub.snapshot_download`` into its cache (``HF_HOME``; ``HF_HUB_OFFLINE=1`` reads only the
            cache). Only config.json, model.safetensors and README.md are fetched.

    Returns:
        the model, in training mode as every new module (call ``.eval()`` to embed).

    Raises:
        ValueError: one line naming what is wrong: no config.json, an unknown architecture (the known ones
            listed), a config.json from a newer wrim, unknown keys, weights whose names or shapes differ (the
            first named), a Hub id that is neither cached nor downloadable. Nothing is loaded then.
    """
    return load_pretrained(*_source(path_or_repo_id))


def _source(path_or_repo_id: str | Path) -> tuple[str | Path, bool]:
    """``(folder or Hub id, whether it is a Hub id for certain)``: the ``hf-hub:`` prefix is read here, once."""
    if isinstance(path_or_repo_id, str) and path_or_repo_id.startswith(HUB_PREFIX):
        return path_or_repo_id.removeprefix(HUB_PREFIX), True
    return path_or_repo_id, False
