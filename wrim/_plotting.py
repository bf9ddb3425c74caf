"""matplotlib set-up shared by wrim's figures: gate maps, rank lists and training curves (private).

One home, below `wrim.visualize`, `wrim.evaluation` and `wrim.engine`: figures are drawn on matplotlib's object API
with an Agg canvas, so no pyplot state (backend, current figure) is touched, and a missing matplotlib is one
``ImportError`` naming the extra that installs it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["INSTALL_HINT", "new_figure", "save_figure"]

INSTALL_HINT = "pip install 'wrim[train]' (or pip install matplotlib)"


def new_figure(owner: str, figsize: tuple[float, float]) -> Any:
    """A ``matplotlib.figure.Figure`` with an Agg canvas attached (no pyplot).

    Args:
        owner: the function that draws, named in the error.
        figsize: (width, height) in inches.

    Raises:
        ImportError: matplotlib is not installed.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError(f"{owner} needs matplotlib: {INSTALL_HINT}") from err
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Any, path: str | os.PathLike, dpi: int) -> Path:
    """Lay out ``fig`` and write it as a PNG, creating the parent folders; returns the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=dpi, format="png")
    return out
