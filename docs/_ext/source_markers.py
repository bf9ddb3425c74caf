"""Griffe extension for the API pages: keep the source markers of docstrings ("[P][N]") as plain text.

wrim's docstrings tag facts with [P] (the paper), [N] (the reading note) and [D] (a wrim decision). Markdown reads
a pair such as ``[P][N]`` as a reference-style link (text "P", target "N"); escaping the second bracket renders the
pair literally.
"""

from __future__ import annotations

import re

import griffe

__all__ = ["SourceMarkers"]

_PAIR = re.compile(r"\]\[(?=[PND]\])")


class SourceMarkers(griffe.Extension):
    """Escape ``][`` between source markers in every docstring, so ``[P][N]`` is not a link."""

    def on_object(self, *, obj: griffe.Object, **kwargs: object) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _PAIR.sub(r"]\\[", obj.docstring.value)
