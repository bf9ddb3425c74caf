"""wrim: WRIM-Net (Wu et al., ECCV 2024, arXiv:2408.10624) for visible-infrared person re-identification.

Layers (MIIM, GRI), losses (CMKIC, AICL), key-instance miners and WRIMNet over any timm backbone, with
SYSU-MM01 / RegDB / LLCM data, protocol-exact evaluation and a training engine (``wrim.engine``, ``wrim`` CLI).
"""

from wrim import data as data
from wrim import evaluation as evaluation
from wrim import layers as layers
from wrim import losses as losses
from wrim import miners as miners
from wrim import models as models
from wrim.layers import GRI as GRI
from wrim.layers import MIIM as MIIM
from wrim.layers import ModalityMIIM as ModalityMIIM
from wrim.layers.config import set_fused_attn as set_fused_attn
from wrim.layers.config import use_fused_attn as use_fused_attn
from wrim.modality import INFRARED as INFRARED
from wrim.modality import VISIBLE as VISIBLE
from wrim.models import WRIMNet as WRIMNet
from wrim.models import create_model as create_model
from wrim.models import list_models as list_models
from wrim.models import load_weights as load_weights
from wrim.models import register_model as register_model
from wrim.models import save_weights as save_weights
from wrim.version import __version__ as __version__

__all__ = [
    "GRI",
    "INFRARED",
    "MIIM",
    "VISIBLE",
    "ModalityMIIM",
    "WRIMNet",
    "__version__",
    "create_model",
    "data",
    "evaluation",
    "layers",
    "list_models",
    "load_weights",
    "losses",
    "miners",
    "models",
    "register_model",
    "save_weights",
    "set_fused_attn",
    "use_fused_attn",
]
