"""Miners in pytorch-metric-learning's pair format ``(a1, p, a2, n)``, with per-sample modality ids.

``CrossModalityKeyInstanceMiner`` gives WRIM-Net's key instances (CMKIC, docs/losses.md); ``KeyInstanceMiner`` and
``HardestNegativeMiner`` are the general hard-positive / hard-negative forms. Their output plugs into any PML loss
as ``indices_tuple`` and into [`wrim.losses.CMKICLoss`][wrim.losses.CMKICLoss].
"""

from wrim.miners.base import BaseMiner, CosinePairMiner
from wrim.miners.hardest_negative import HardestNegativeMiner
from wrim.miners.key_instance import CrossModalityKeyInstanceMiner, KeyInstanceMiner

__all__ = ["BaseMiner", "CosinePairMiner", "CrossModalityKeyInstanceMiner", "HardestNegativeMiner", "KeyInstanceMiner"]
