"""The dataset registry: ``@register_dataset("name")`` factories, looked up by name (a
``wrim._registry.Registry``, as ``wrim.models`` has for models).

A factory is a ``VIReIDDataset`` subclass or a function called as ``factory(root, **dataset_kwargs)`` that returns a
[`VIReIDDataset`][wrim.data.VIReIDDataset]. The built-in readers register themselves (``synthetic``, ``sysu``,
``regdb``, ``llcm``, ``list``); ``wrim train data.dataset=NAME`` and ``wrim eval --dataset NAME`` build by name
through [`create_dataset()`][wrim.data.create_dataset].
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from typing import Any, TypeVar

from wrim._registry import Registry

__all__ = [
    "create_dataset",
    "dataset_entrypoint",
    "dataset_needs_root",
    "is_dataset",
    "list_datasets",
    "register_dataset",
]

DATASETS = Registry(
    "dataset",
    hint="Add one with @wrim.data.register_dataset('name') in a module loaded by --import MODULE (or a "
    "'wrim.plugins' entry point), or write a list.csv for data.dataset=list",
)
_DATASETS = DATASETS.entries  # the registered factories by name (tests register temporary ones here)
_Factory = TypeVar("_Factory", bound=Callable[..., Any])


def register_dataset(name: str) -> Callable[[_Factory], _Factory]:
    """Decorator: register a dataset class or factory under ``name``.

    Examples:
        >>> from wrim.data import VIReIDDataset, register_dataset
        >>> @register_dataset("my_cameras")                          # doctest: +SKIP
        ... class MyCameras(VIReIDDataset): ...

    Raises:
        ValueError: ``name`` is empty or already registered to another factory.
    """
    return DATASETS.register(name)


def list_datasets() -> list[str]:
    """Names of the registered datasets, sorted."""
    return DATASETS.names()


def is_dataset(name: str) -> bool:
    """Whether ``name`` is a registered dataset."""
    return name in DATASETS


def dataset_entrypoint(name: str) -> Callable[..., Any]:
    """The factory registered as ``name``.

    Raises:
        ValueError: ``name`` is not registered (the registered names and how to add one are listed).
    """
    return DATASETS.get(name)


def dataset_needs_root(name: str) -> bool:
    """Whether the dataset registered as ``name`` needs a root folder (its factory's first parameter has no default).

    Raises:
        ValueError: ``name`` is not registered.
    """
    params = list(inspect.signature(dataset_entrypoint(name)).parameters.values())
    return bool(params) and params[0].default is inspect.Parameter.empty and params[0].kind != params[0].VAR_KEYWORD


def create_dataset(name: str, root: str | os.PathLike | None = None, **kwargs: Any) -> Any:
    """Builds the dataset registered as ``name``: ``factory(root, **kwargs)``.

    Args:
        name: a name from [`list_datasets()`][wrim.data.list_datasets].
        root: the dataset folder (``None`` only for factories whose root is optional, e.g. ``synthetic``).
        **kwargs: the factory's further arguments (``data.dataset_kwargs``).

    Raises:
        ValueError: an unknown name, or a missing root for a dataset that needs one.
        TypeError: the factory returned something other than a ``VIReIDDataset``.
    """
    from wrim.data.base import VIReIDDataset

    factory = dataset_entrypoint(name)
    if root is None and dataset_needs_root(name):
        raise ValueError(f"dataset {name!r} needs its folder: pass data.root=/path/to/it (--root on wrim eval)")
    dataset = factory(root, **kwargs)
    if not isinstance(dataset, VIReIDDataset):
        raise TypeError(
            f"the factory registered as dataset {name!r} returned {type(dataset).__name__}, not a "
            "wrim.data.VIReIDDataset: return a reader with .train, .num_classes and .test_split()"
        )
    return dataset
