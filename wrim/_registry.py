"""`Registry`: names mapped to factories, one class for every kind of thing wrim builds by name (models, datasets).

As fast-reid's ``Registry``: a registry knows what it holds (``kind``, e.g. ``"model"``) and how to tell a user
about a name it does not have (``hint``); ``register(name)`` is the decorator, ``get(name)`` the lookup with the
one "unknown <kind>" message. ``wrim.models`` registers entrypoints under their function name
(``@register_model``), ``wrim.data`` readers under a given name (``@register_dataset("name")``).
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["Registry"]

_Factory = TypeVar("_Factory", bound=Callable[..., Any])


class Registry:
    """Named factories of one kind: ``register(name)(factory)``, ``get(name)``, ``names(pattern)``, ``name in``."""

    def __init__(self, kind: str, hint: str = "") -> None:
        """
        Args:
            kind: what the registry holds, in the singular (``"model"``); it names the registry in messages.
            hint: a sentence appended to the "unknown" message (how to add one, or what to use instead).
        """
        self.kind = kind
        self.hint = hint
        self.entries: dict[str, Callable[..., Any]] = {}

    def register(self, name: str) -> Callable[[_Factory], _Factory]:
        """Decorator: register a factory under ``name``.

        Raises:
            ValueError: ``name`` is empty, or already registered to another factory.
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {self.kind} needs a non-empty name to be registered under; got {name!r}")

        def register(factory: _Factory) -> _Factory:
            if name in self.entries and self.entries[name] is not factory:
                raise ValueError(
                    f"a {self.kind} named {name!r} is already registered; register yours under another name"
                )
            self.entries[name] = factory
            return factory

        return register

    def __contains__(self, name: object) -> bool:
        return name in self.entries

    def names(self, pattern: str = "*") -> list[str]:
        """Sorted names matching the shell-style ``pattern`` (e.g. ``"wrimnet_*"``)."""
        return sorted(name for name in self.entries if fnmatch.fnmatchcase(name, pattern))

    def get(self, name: str) -> Callable[..., Any]:
        """The factory registered as ``name``.

        Raises:
            ValueError: ``name`` is not registered (`unknown` says so).
        """
        if name not in self.entries:
            raise self.unknown(name)
        return self.entries[name]

    def unknown(self, name: object) -> ValueError:
        """The error for a name this registry does not hold: close names, the registered ones and the hint."""
        close = difflib.get_close_matches(name, self.names(), n=5, cutoff=0.5) if isinstance(name, str) else []
        did_you_mean = f" Did you mean: {', '.join(close)}?" if close else ""
        hint = f" {self.hint}" if self.hint else ""
        return ValueError(f"unknown {self.kind} {name!r}; registered: {', '.join(self.names())}.{did_you_mean}{hint}")
