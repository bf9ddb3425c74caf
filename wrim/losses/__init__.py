"""Losses: WRIM-Net's CMKIC and AICL (docs/losses.md) and AGW's triplet comparators.

The ID loss is ``torch.nn.CrossEntropyLoss(label_smoothing=0.1)`` ([D], docs/losses.md) and is not re-implemented.
"""

from wrim.losses.aicl import AICLLoss
from wrim.losses.cmkic import CMKICLoss
from wrim.losses.triplet import TripletLoss, WRTripletLoss

__all__ = ["AICLLoss", "CMKICLoss", "TripletLoss", "WRTripletLoss"]
