"""Deprecations: a public name that changes keeps working for at least one minor version, with a ``FutureWarning``
that names the version it goes away in and its replacement (docs: Citing, section Versioning and deprecation).

Three forms, each recording a `Deprecation` that the public-API snapshot test reads:

- ``@deprecated(since=, remove_in=, replacement=)`` on a function or class that will go away (recorded as
  ``__wrim_deprecation__``);
- ``@renamed_argument(old, new, since=, remove_in=)`` on a function whose keyword argument was renamed (recorded in
  ``__wrim_renamed_arguments__``);
- ``__getattr__ = deprecated_names(__name__, {"OldName": Moved("wrim.pkg.NewName", since=, remove_in=)})`` for a
  module name that moved or was renamed (recorded in the function's ``deprecations``).

``FutureWarning``, not ``DeprecationWarning``: Python shows it to the users of a library by default.
"""

from __future__ import annotations

import functools
import importlib
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = ["Deprecation", "Moved", "deprecated", "deprecated_names", "parse_version", "renamed_argument"]

T = TypeVar("T")


def parse_version(version: str) -> tuple[int, int, int]:
    """``"0.4.0"`` -> ``(0, 4, 0)``; a ValueError for anything but three dot-separated integers."""
    parts = version.split(".")
    if len(parts) != 3 or not all(part.isdigit() for part in parts):
        raise ValueError(f"version {version!r} is not MAJOR.MINOR.PATCH (three integers, e.g. '0.4.0')")
    major, minor, patch = (int(part) for part in parts)
    return major, minor, patch


@dataclass(frozen=True)
class Deprecation:
    """One deprecated name: ``name`` as a user writes it, what to use instead, and the versions.

    ``remove_in`` must be a later minor (or major) version than ``since``, so the name keeps working, with its
    warning, through every release of ``since``'s minor version.
    """

    name: str
    replacement: str
    since: str
    remove_in: str

    def __post_init__(self) -> None:
        since, remove_in = parse_version(self.since), parse_version(self.remove_in)
        if remove_in[:2] <= since[:2]:
            raise ValueError(
                f"{self.name}: remove_in={self.remove_in!r} must be a later minor version than since={self.since!r} "
                f"(a deprecated name is kept for at least one minor version), e.g. "
                f"remove_in='{since[0]}.{since[1] + 1}.0'"
            )

    @property
    def message(self) -> str:
        return (
            f"{self.name} is deprecated since wrim {self.since} and will be removed in wrim {self.remove_in}; "
            f"use {self.replacement} instead"
        )

    def warn(self, stacklevel: int = 3) -> None:
        """Emit the ``FutureWarning``; ``stacklevel=3`` points at the caller of the function that calls ``warn``."""
        warnings.warn(self.message, FutureWarning, stacklevel=stacklevel)

    def as_dict(self) -> dict[str, str]:
        return {"replacement": self.replacement, "since": self.since, "remove_in": self.remove_in}


def _public_name(obj: Any) -> str:
    return f"{obj.__module__}.{obj.__qualname__}"


def deprecated(*, since: str, remove_in: str, replacement: str) -> Callable[[T], T]:
    """Decorate a function or class that will be removed: calling it (instantiating the class) warns.

    Examples:
        ```python
        @deprecated(since="0.3.0", remove_in="0.4.0", replacement="wrim.evaluation.evaluate")
        def old_evaluate(distances, query_ids, gallery_ids):
            return evaluate(distances, query_ids, gallery_ids)
        ```
    """

    def wrap(obj: T) -> T:
        info = Deprecation(_public_name(obj), replacement, since, remove_in)
        if isinstance(obj, type):
            init = obj.__init__

            @functools.wraps(init)
            def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
                info.warn()
                init(self, *args, **kwargs)

            obj.__init__ = __init__  # type: ignore[misc]
            obj.__wrim_deprecation__ = info  # type: ignore[attr-defined]
            return obj

        @functools.wraps(obj)  # type: ignore[arg-type]
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            info.warn()
            return obj(*args, **kwargs)  # type: ignore[operator]

        wrapper.__wrim_deprecation__ = info  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return wrap


def renamed_argument(old: str, new: str, *, since: str, remove_in: str) -> Callable[[T], T]:
    """Decorate a function (or ``__init__``) whose keyword argument ``old`` is now ``new``: ``old=`` still works and
    warns; passing both is a TypeError."""

    def wrap(func: T) -> T:
        owner = _public_name(func).removesuffix(".__init__")
        info = Deprecation(f"{owner}({old}=...)", f"{new}=", since, remove_in)

        @functools.wraps(func)  # type: ignore[arg-type]
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if old in kwargs:
                if new in kwargs:
                    raise TypeError(f"{owner}() got both {old}= (deprecated) and {new}=; pass {new}= only")
                info.warn()
                kwargs[new] = kwargs.pop(old)
            return func(*args, **kwargs)  # type: ignore[operator]

        renamed = dict(getattr(func, "__wrim_renamed_arguments__", {}))
        wrapper.__wrim_renamed_arguments__ = {**renamed, old: info}  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return wrap


@dataclass(frozen=True)
class Moved:
    """Where a deprecated module name went: ``target`` is the replacement's full dotted name."""

    target: str
    since: str
    remove_in: str


def deprecated_names(
    module_name: str, moved: Mapping[str, Moved], fallback: Callable[[str], Any] | None = None
) -> Callable[[str], Any]:
    """A module ``__getattr__`` (PEP 562) under which each old name still resolves to its target, with a warning.

    ``fallback`` handles every other name (a module's own lazy ``__getattr__``); without it they raise
    AttributeError. The returned function's ``deprecations`` maps each old name to its ``Deprecation``.
    """
    deprecations = {
        old: Deprecation(f"{module_name}.{old}", where.target, where.since, where.remove_in)
        for old, where in moved.items()
    }

    def __getattr__(name: str) -> Any:
        if name in moved:
            deprecations[name].warn()
            target_module, _, attribute = moved[name].target.rpartition(".")
            return getattr(importlib.import_module(target_module), attribute)
        if fallback is not None:
            return fallback(name)
        raise AttributeError(f"module {module_name!r} has no attribute {name!r}")

    __getattr__.deprecations = deprecations  # type: ignore[attr-defined]
    return __getattr__
