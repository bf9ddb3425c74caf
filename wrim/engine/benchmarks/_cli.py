"""The argument parser every benchmark uses: ``wrim bench NAME --flag ...``; a bad argument is one-line error."""

from __future__ import annotations

import argparse

import torch

__all__ = ["BenchParser", "default_device"]


class BenchParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` for ``wrim bench NAME`` whose errors raise ``ValueError`` (the ``wrim`` command prints
    them as one line and exits with 2) instead of printing the usage and exiting."""

    def __init__(self, name: str, doc: str) -> None:
        super().__init__(
            prog=f"wrim bench {name}", description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
        )
        self.name = name

    def error(self, message: str) -> None:  # argparse's hook for a bad argument
        raise ValueError(f"{self.name}: {message} (see wrim bench {self.name} --help)")


def default_device() -> str:
    """``"cuda"`` when a GPU is visible, else ``"cpu"``."""
    return "cuda" if torch.cuda.is_available() else "cpu"
