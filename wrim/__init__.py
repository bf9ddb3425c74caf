"""wrim: WRIM-Net (Wu et al., ECCV 2024, arXiv:2408.10624) for visible-infrared person re-identification.

Layers (MIIM, GRI), losses (CMKIC, AICL), key-instance miners and WRIMNet over any timm backbone.
"""

from wrim import layers as layers
from wrim.layers import GRI as GRI
from wrim.layers import MIIM as MIIM
from wrim.layers import ModalityMIIM as ModalityMIIM
from wrim.layers.config import set_fused_attn as set_fused_attn
from wrim.layers.config import use_fused_attn as use_fused_attn
from wrim.modality import INFRARED as INFRARED
from wrim.modality import VISIBLE as VISIBLE
from wrim.version import __version__ as __version__

__all__ = [
    "GRI",
    "MIIM",
    "ModalityMIIM",
    "INFRARED",
    "VISIBLE",
    "__version__",
    "layers",
    "set_fused_attn",
    "use_fused_attn",
]
