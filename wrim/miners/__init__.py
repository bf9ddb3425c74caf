"""Miners in pytorch-metric-learning's pair format ``(a1, p, a2, n)``, with per-sample modality ids.

``CrossModalityKeyInstanceMiner`` gives WRIM-Net's key instances (CMKIC, docs: The paper, section CMKIC);
``KeyInstanceMiner`` and ``HardestNegativeMiner`` are the general hard-positive / hard-negative forms. They are called
as PML calls its miners, ``miner(embeddings, labels, ref_emb, ref_labels)``, with ``modalities=`` /
``ref_modalities=`` by keyword. Their output plugs into any PML loss as ``indices_tuple`` and into
[`wrim.losses.CMKICLoss`][wrim.losses.CMKICLoss]. `key_instance_masks` is the one key-instance mining (CMKICLoss uses
it too).
"""

from wrim.miners.base import BaseMiner as BaseMiner
from wrim.miners.hardest_negative import HardestNegativeMiner as HardestNegativeMiner
from wrim.miners.key_instance import CrossModalityKeyInstanceMiner as CrossModalityKeyInstanceMiner
from wrim.miners.key_instance import KeyInstanceMiner as KeyInstanceMiner
from wrim.miners.key_instance import key_instance_masks as key_instance_masks

__all__ = [
    "BaseMiner",
    "CrossModalityKeyInstanceMiner",
    "HardestNegativeMiner",
    "KeyInstanceMiner",
    "key_instance_masks",
]
