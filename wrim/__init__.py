"""wrim: WRIM-Net (Wu et al., ECCV 2024, arXiv:2408.10624) for visible-infrared person re-identification.

Layers (MIIM, GRI), losses (CMKIC, AICL), key-instance miners and WRIMNet over any timm backbone, with
SYSU-MM01 / RegDB / LLCM data, protocol-exact evaluation and a training engine (``wrim.engine``, ``wrim`` CLI).

Sub-packages and names are imported on first use (PEP 562): ``import wrim.layers`` or ``from wrim import MIIM``
needs only torch, while ``wrim.WRIMNet`` or ``wrim.data`` bring in timm / torchvision when first touched.
"""

import importlib
from typing import TYPE_CHECKING

from wrim.modality import INFRARED as INFRARED
from wrim.modality import VISIBLE as VISIBLE
from wrim.version import __version__ as __version__

if TYPE_CHECKING:  # the names below, for type checkers and IDEs
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
    from wrim.models import WRIMNet as WRIMNet
    from wrim.models import create_model as create_model
    from wrim.models import from_pretrained as from_pretrained
    from wrim.models import list_models as list_models
    from wrim.models import load_weights as load_weights
    from wrim.models import push_to_hub as push_to_hub
    from wrim.models import register_model as register_model
    from wrim.models import save_pretrained as save_pretrained
    from wrim.models import save_weights as save_weights

_SUBPACKAGES = ("data", "evaluation", "layers", "losses", "miners", "models")
_NAMES = {
    "GRI": "wrim.layers",
    "MIIM": "wrim.layers",
    "ModalityMIIM": "wrim.layers",
    "set_fused_attn": "wrim.layers.config",
    "use_fused_attn": "wrim.layers.config",
    "WRIMNet": "wrim.models",
    "create_model": "wrim.models",
    "from_pretrained": "wrim.models",
    "list_models": "wrim.models",
    "load_weights": "wrim.models",
    "push_to_hub": "wrim.models",
    "register_model": "wrim.models",
    "save_pretrained": "wrim.models",
    "save_weights": "wrim.models",
}

__all__ = sorted(["INFRARED", "VISIBLE", "__version__", *_SUBPACKAGES, *_NAMES])


def __getattr__(name: str):
    """Import a sub-package or a re-exported name on first access (PEP 562)."""
    if name in _SUBPACKAGES:
        value = importlib.import_module(f"wrim.{name}")
    elif name in _NAMES:
        value = getattr(importlib.import_module(_NAMES[name]), name)
    else:
        raise AttributeError(f"module 'wrim' has no attribute {name!r}")
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
