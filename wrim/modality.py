"""Modality ids shared by layers, losses, miners, data and models.

A VI-ReID batch carries one modality id per sample: ``modalities: (B,)`` LongTensor with
``VISIBLE = 0`` (RGB cameras) and ``INFRARED = 1`` (thermal / near-infrared cameras). Their validator is
``wrim._checks.check_modalities``, with wrim's other checks.
"""

from __future__ import annotations

__all__ = ["INFRARED", "MODALITY_NAMES", "VISIBLE"]

VISIBLE: int = 0
INFRARED: int = 1
MODALITY_NAMES: dict[int, str] = {VISIBLE: "visible", INFRARED: "infrared"}
