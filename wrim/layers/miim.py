"""MIIM - Multi-dimension Interactive Information Mining: compress, interact globally, restore as a gate.

Shapes: ``B`` batch, ``C`` input channels, ``H, W`` input size, ``r`` channel reduction, ``s`` spatial stride,
``C' = C / r``, ``h = ⌈H / s⌉``, ``w = ⌈W / s⌉``, ``N = h·w`` region tokens.

docs/layers.md ("MIIM = Spatial-Channel Compression → GRI → Spatial-Channel Restore"):

```text
F2  = Conv_{s×s, stride s}(X)                       SCC: C → C', H×W → h×w        [P][N]
F4  = GRI(F2)                                       region interaction, (B, N, C')  [P][N]
G   = Up_s(σ(Linear_{C'→C}(F4)))                    SCR: a (B, C, H, W) gate        [N] (+ gate use [D])
Out = X + BN_{affine=False}(X ⊙ G)                  re-weighting + residual         [D]
```

The gate re-weights the input in space and channel at once. The nearest upsampling ``Up_s`` is never materialised
when ``s`` divides ``H`` and ``W``: the (h, w) gate broadcasts over s×s blocks of a view of ``X``.

Sizes that ``s`` does not divide: ``X`` is zero-padded at the bottom and right to ``(h·s, w·s)`` for the
compression only (every pixel belongs to a region; border regions see the zeros), and the upsampled gate is
cropped back to ``H×W``. The output always has the input's shape.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from wrim.layers.gri import GRI

__all__ = ["MIIM", "reweight"]


def reweight(x: torch.Tensor, gate: torch.Tensor, stride: int) -> torch.Tensor:
    """``X ⊙ Up_s(G)``: multiply a map by a low-resolution gate, nearest-upsampled by ``stride``.

    Args:
        x: the input map, (B, C, H, W).
        gate: the gate, (B, C, ⌈H/s⌉, ⌈W/s⌉).
        stride: the upsampling factor ``s``.

    Returns:
        (B, C, H, W), in ``x``'s memory format.
    """
    batch, channels, height, width = x.shape
    if stride == 1:
        return x * gate
    grid_h, grid_w = gate.shape[-2:]
    if height % stride == 0 and width % stride == 0:
        blocks = x.reshape(batch, channels, grid_h, stride, grid_w, stride)  # (B, C, h, s, w, s), a view
        return (blocks * gate[:, :, :, None, :, None]).reshape(batch, channels, height, width)
    upsampled = F.interpolate(gate, scale_factor=stride, mode="nearest")[:, :, :height, :width]  # (B, C, H, W)
    return x * upsampled


class MIIM(nn.Module):
    """Multi-dimension Interactive Information Mining block (docs/layers.md): (B, C, H, W) -> (B, C, H, W)."""

    def __init__(
        self,
        channels: int,
        reduction: int = 2,
        stride: int = 1,
        num_heads: int = 8,
        kv_pool: int = 1,
        pos_embed: str | None = "sincos",
        qkv_bias: bool = False,
        attn_residual: bool = True,
        out_norm: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        """
        Args:
            channels: input (and output) channels ``C``.
            reduction: channel reduction ``r`` of the compression conv (paper placements: 2, 2, 4, 4).
            stride: kernel size and stride ``s`` of the compression conv (paper placements: 4, 2, 1, 1).
            num_heads: GRI heads; must divide ``C / r`` (8 in [N]).
            kv_pool: GRI key/value pooling factor, 1 = none. [D]
            pos_embed: ``"sincos"`` or ``None``. [D]
            qkv_bias: bias in GRI's qkv projection ([N]: none).
            attn_residual: GRI adds attention to its input tokens. [D]
            out_norm: normalise the re-weighted branch with a non-affine BatchNorm before the residual sum
                ([N] shows a non-affine BatchNorm in each block; where it sits is [D]).
            attn_drop: attention dropout.
            proj_drop: GRI output-projection dropout.
            device: parameter device.
            dtype: parameter dtype.
        """
        super().__init__()
        if channels < 1 or reduction < 1 or channels % reduction != 0:
            raise ValueError(f"reduction must divide channels; got channels={channels}, reduction={reduction}")
        if stride < 1:
            raise ValueError(f"stride must be >= 1; got {stride}")
        factory = {"device": device, "dtype": dtype}
        self.channels = channels
        self.reduction = reduction
        self.stride = stride
        dim = channels // reduction
        self.compress = nn.Conv2d(channels, dim, kernel_size=stride, stride=stride, **factory)
        self.gri = GRI(
            dim,
            num_heads=num_heads,
            kv_pool=kv_pool,
            pos_embed=pos_embed,
            qkv_bias=qkv_bias,
            residual=attn_residual,
            attn_drop=attn_drop,
            proj_drop=proj_drop,
            **factory,
        )
        self.restore = nn.Linear(dim, channels, **factory)
        self.norm = nn.BatchNorm2d(channels, affine=False, **factory) if out_norm else nn.Identity()

    @property
    def fused_attn(self) -> bool:
        """Whether GRI uses the fused SDPA path (settable)."""
        return self.gri.fused_attn

    @fused_attn.setter
    def fused_attn(self, enable: bool) -> None:
        self.gri.fused_attn = enable

    def check_input(self, x: torch.Tensor) -> None:
        """Raise a ValueError unless ``x`` is a (B, channels, H, W) tensor."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{type(self).__name__} expects a torch.Tensor; got {type(x).__name__}")
        if x.dim() != 4:
            raise ValueError(
                f"{type(self).__name__} expects a 4-D (B, C, H, W) feature map; got shape {tuple(x.shape)}"
            )
        if x.shape[1] != self.channels:
            raise ValueError(
                f"{type(self).__name__} was built for {self.channels} channels but the input has {x.shape[1]} "
                f"(shape {tuple(x.shape)}); build it with channels={x.shape[1]}"
            )

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """SCC → GRI → SCR without the upsampling: (B, C, H, W) -> gate (B, C, ⌈H/s⌉, ⌈W/s⌉) in (0, 1)."""
        batch, _, height, width = x.shape
        pad_h, pad_w = -height % self.stride, -width % self.stride
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h))  # (B, C, h·s, w·s)
        compressed = self.compress(x)  # (B, C', h, w)
        grid_h, grid_w = compressed.shape[-2:]
        tokens = self.gri(compressed)  # (B, N, C')
        gate = torch.sigmoid(self.restore(tokens))  # (B, N, C)
        return gate.view(batch, grid_h, grid_w, self.channels).permute(0, 3, 1, 2)  # (B, C, h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        self.check_input(x)
        reweighted = reweight(x, self.gate(x), self.stride)  # (B, C, H, W)
        return x + self.norm(reweighted).to(x.dtype)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, reduction={self.reduction}, stride={self.stride}"
