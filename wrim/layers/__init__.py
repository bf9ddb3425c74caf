"""Building blocks: MIIM, ModalityMIIM, GRI, the 2-D sine-cosine encoding, the fused-attention switch, the
cross-rank BatchNorm and the token projection (TokenLinear)."""

from wrim.layers.config import set_fused_attn, use_fused_attn
from wrim.layers.gri import GRI
from wrim.layers.miim import GATES, INTERVENTIONS, MIIM, reweight
from wrim.layers.modality_miim import ModalityBatch, ModalityMIIM, miim_placements
from wrim.layers.norm import CrossRankBatchNorm, convert_sync_batchnorm
from wrim.layers.pos_embed import sincos_2d_pos_embed
from wrim.layers.token_linear import TokenLinear

__all__ = [
    "GATES",
    "GRI",
    "INTERVENTIONS",
    "MIIM",
    "CrossRankBatchNorm",
    "ModalityBatch",
    "ModalityMIIM",
    "TokenLinear",
    "convert_sync_batchnorm",
    "miim_placements",
    "reweight",
    "set_fused_attn",
    "sincos_2d_pos_embed",
    "use_fused_attn",
]
