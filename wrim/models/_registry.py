"""The model registry: ``@register_model`` entrypoints, looked up by name (timm style).

An entrypoint is a function ``name(pretrained=False, **kwargs) -> nn.Module``; its function name is the model
name. ``list_models`` and ``create_model`` (in ``_factory``) read the registry, a ``wrim._registry.Registry``
shared in kind with the datasets' (``wrim.data``).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from wrim._registry import Registry

__all__ = ["MODELS", "is_model", "list_models", "model_entrypoint", "register_model"]

MODELS = Registry(
    "model",
    hint="Add one with @wrim.register_model in a module loaded by --import MODULE (or a 'wrim.plugins' entry "
    "point); for any other timm backbone use wrim.models.WRIMNet(backbone='<timm name>', ...)",
)
_ENTRYPOINTS = MODELS.entries  # the registered entrypoints by name (tests register temporary ones here)


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Decorator: register ``fn`` as the entrypoint of the model named ``fn.__name__``.

    Raises:
        ValueError: a model of that name is already registered.
    """
    return MODELS.register(fn.__name__)(fn)


def list_models(pattern: str = "*") -> list[str]:
    """Sorted names of the registered models matching the shell-style ``pattern`` (e.g. ``"wrimnet_*"``)."""
    return MODELS.names(pattern)


def is_model(name: str) -> bool:
    """Whether ``name`` is a registered model."""
    return name in MODELS


def model_entrypoint(name: str) -> Callable[..., nn.Module]:
    """The entrypoint registered as ``name``.

    Raises:
        ValueError: ``name`` is not registered: the one "unknown model" message (close names, the registered ones,
            how to add one).
    """
    return MODELS.get(name)
