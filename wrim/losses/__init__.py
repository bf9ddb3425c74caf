"""Losses: WRIM-Net's CMKIC, AICL and full objective, AGW's triplet comparators, and a memory (docs: The paper,
section Losses).

Every loss is called as pytorch-metric-learning calls its losses, ``loss(embeddings, labels, indices_tuple, ref_emb,
ref_labels)``, with the modality ids by keyword (``modalities=``), and returns a scalar (docs: Losses and miners).
The ID loss is ``torch.nn.CrossEntropyLoss(label_smoothing=0.1)`` ([D], docs: The paper, section Losses), used by
[`WRIMNetLoss`][wrim.losses.WRIMNetLoss].
"""

from wrim.losses.aicl import AICLLoss as AICLLoss
from wrim.losses.base import BaseLoss as BaseLoss
from wrim.losses.cmkic import CMKICLoss as CMKICLoss
from wrim.losses.memory import CrossModalityMemory as CrossModalityMemory
from wrim.losses.triplet import TripletLoss as TripletLoss
from wrim.losses.triplet import WRTripletLoss as WRTripletLoss
from wrim.losses.wrimnet_loss import WRIMNetLoss as WRIMNetLoss

__all__ = ["AICLLoss", "BaseLoss", "CMKICLoss", "CrossModalityMemory", "TripletLoss", "WRIMNetLoss", "WRTripletLoss"]
