"""Griffe extension for the API pages: keep bracket pairs such as the source markers "[P][N]" as plain text.

wrim's docstrings tag facts with [P] (the paper), [N] (second-hand, unverifiable information) and [D] (a wrim
decision). Markdown reads a pair such as ``[P][N]`` (or ``x[i][j]`` written outside a code span) as a
reference-style link, which mkdocs-autorefs then tries to resolve. Escaping the second bracket renders the pair
literally. Code spans, fenced code, doctest lines and the docstrings' cross-references
(``[`WRIMNet`][wrim.models.WRIMNet]``: a code span as the text, a dotted identifier as the target) are left
untouched.
"""

from __future__ import annotations

import re

import griffe

__all__ = ["SourceMarkers", "escape_bracket_pairs"]

_KEEP = re.compile(r"\[`[^`\n]+`\]\[[A-Za-z_][\w.]*\]|(`+).+?\1", re.S)  # a cross-reference, or a code span
_PAIR = re.compile(r"\]\[(?=[^\]\[\s`]*\])")


def _escape_prose(text: str) -> str:
    """Escape ``][`` in text that holds no code span."""
    return _PAIR.sub(r"]\\[", text)


def escape_bracket_pairs(text: str) -> str:
    """``a[P][N]`` -> ``a[P]\\[N]`` outside code, cross-references and doctest (``>>>`` / ``...``) lines."""
    lines, fenced = [], False
    for line in text.split("\n"):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        if fenced or line.lstrip().startswith(("```", ">>>", "...")):
            lines.append(line)
            continue
        parts, last = [], 0
        for match in _KEEP.finditer(line):
            parts.append(_escape_prose(line[last : match.start()]))
            parts.append(match.group(0))
            last = match.end()
        parts.append(_escape_prose(line[last:]))
        lines.append("".join(parts))
    return "\n".join(lines)


class SourceMarkers(griffe.Extension):
    """Apply [`escape_bracket_pairs`][] to every docstring."""

    def on_object(self, *, obj: griffe.Object, **kwargs: object) -> None:
        if obj.docstring is not None:
            obj.docstring.value = escape_bracket_pairs(obj.docstring.value)
