"""The model registry: ``@register_model`` entrypoints, looked up by name (timm style).

An entrypoint is a function ``name(pretrained=False, **kwargs) -> nn.Module``; its function name is the model
name. ``list_models`` and ``create_model`` (in ``_factory``) read the registry.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable

from torch import nn

__all__ = ["is_model", "list_models", "model_entrypoint", "register_model"]

_ENTRYPOINTS: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Decorator: register ``fn`` as the entrypoint of the model named ``fn.__name__``.

    Raises:
        ValueError: a model of that name is already registered.
    """
    name = fn.__name__
    if name in _ENTRYPOINTS and _ENTRYPOINTS[name] is not fn:
        raise ValueError(f"a model named {name!r} is already registered; give the entrypoint another name")
    _ENTRYPOINTS[name] = fn
    return fn


def list_models(pattern: str = "*") -> list[str]:
    """Sorted names of the registered models matching the shell-style ``pattern`` (e.g. ``"wrimnet_*"``)."""
    return sorted(name for name in _ENTRYPOINTS if fnmatch.fnmatchcase(name, pattern))


def is_model(name: str) -> bool:
    """Whether ``name`` is a registered model."""
    return name in _ENTRYPOINTS


def model_entrypoint(name: str) -> Callable[..., nn.Module]:
    """The entrypoint registered as ``name`` (KeyError when there is none; ``create_model`` explains)."""
    return _ENTRYPOINTS[name]
