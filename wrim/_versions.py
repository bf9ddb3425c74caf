"""Version checks for features that need a newer dependency than wrim's floor ([D], docs: Quickstart, section Install).

wrim's core runs on every version of the tested range; a feature that needs more is switched off at run time with
a one-line reason naming the version it needs, here, rather than failing deep inside torch or timm.
"""

from __future__ import annotations

import importlib.metadata
import re
import warnings
from collections.abc import Callable

import torch


def release(version: str) -> tuple[int, ...]:
    """The release numbers of a version string: ``"2.3.1+cu121" -> (2, 3, 1)``, ``"2.6.0a0+git" -> (2, 6, 0)``."""
    match = re.match(r"\d+(\.\d+)*", version)
    if match is None:
        raise ValueError(f"cannot read a release number from version {version!r}")
    return tuple(int(part) for part in match.group().split("."))


def at_least(version: str, minimum: str) -> bool:
    """Whether ``version`` is ``minimum`` or newer, comparing release numbers (``at_least("0.18.1", "0.19")``)."""
    return release(version) >= release(minimum)


def compile_unsupported_reason() -> str | None:
    """Why ``torch.compile`` cannot work with the installed torch, or ``None`` when it can.

    torch 2.3's inductor raises ``TypeError: Invalid NaN comparison`` with sympy 1.13 or newer (which pip installs
    beside it; torch 2.4 pins its sympy) [D]: measured on torch 2.3.1 with sympy 1.14.0 (fails) and 1.12 (works).
    """
    if at_least(torch.__version__, "2.4"):
        return None
    sympy_version = importlib.metadata.version("sympy")
    if not at_least(sympy_version, "1.13"):
        return None
    return (
        f"torch.compile on torch {torch.__version__} needs sympy<1.13 (installed {sympy_version}): "
        "pip install 'sympy<1.13', or torch>=2.4"
    )


def compile_if_supported(fn: Callable) -> Callable:
    """``torch.compile(fn)``, or ``fn`` itself with a one-line warning where torch.compile cannot work here."""
    reason = compile_unsupported_reason()
    if reason is None:
        return torch.compile(fn)
    warnings.warn(f"torch.compile is off, running eagerly: {reason}", stacklevel=2)
    return fn
