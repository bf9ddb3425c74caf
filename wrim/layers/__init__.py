"""Building blocks: MIIM, GRI, ModalityMIIM and the fused-attention switch."""

from wrim.layers.config import set_fused_attn, use_fused_attn

__all__ = ["set_fused_attn", "use_fused_attn"]
