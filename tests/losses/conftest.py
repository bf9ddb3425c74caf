"""Registers ``losses_loop_reference`` (the tests' loop references) as a module: pytest runs in importlib mode,
which does not put test folders on ``sys.path``."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_NAME = "losses_loop_reference"

if _NAME not in sys.modules:
    _spec = importlib.util.spec_from_file_location(_NAME, Path(__file__).with_name(f"{_NAME}.py"))
    _module = importlib.util.module_from_spec(_spec)
    sys.modules[_NAME] = _module
    _spec.loader.exec_module(_module)
