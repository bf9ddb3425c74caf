"""Fixed 2-D sine-cosine positional encoding for a grid of region tokens.

Shapes: ``h, w`` - token grid height and width; ``N = h * w`` tokens; ``C`` - embedding dim (divisible by 4).

For a token at row ``y`` and column ``x`` and frequency index ``i = 0 .. C/4 - 1``, with
``ω_i = 1 / T^(i / (C/4))``:

    P(y, x) = [sin(x·ω), cos(x·ω), sin(y·ω), cos(y·ω)]

(the MAE / ViT-MoCo-v3 form). docs/layers.md [D]: GRI's positional encoding is this fixed, parameter-free encoding
(the module list in [N] shows no positional parameters).
"""

from __future__ import annotations

import torch

__all__ = ["sincos_2d_pos_embed"]


def sincos_2d_pos_embed(
    height: int,
    width: int,
    dim: int,
    temperature: float = 10000.0,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Build the ``(height * width, dim)`` sine-cosine table, rows in row-major (y, x) token order.

    Args:
        height: token grid height ``h``.
        width: token grid width ``w``.
        dim: embedding dimension; must be divisible by 4 (x and y each get sin and cos halves).
        temperature: the frequency base ``T``.
        device: where to build the table.
        dtype: dtype of the returned table (computed in float32).
    """
    if dim % 4 != 0:
        raise ValueError(f"the 2-D sine-cosine encoding needs dim divisible by 4; got dim={dim}")
    quarter = dim // 4
    omega = torch.arange(quarter, device=device, dtype=torch.float32) / quarter
    omega = 1.0 / temperature**omega  # (C/4,)
    ys, xs = torch.meshgrid(
        torch.arange(height, device=device, dtype=torch.float32),
        torch.arange(width, device=device, dtype=torch.float32),
        indexing="ij",
    )
    x_angles = xs.reshape(-1, 1) * omega  # (N, C/4)
    y_angles = ys.reshape(-1, 1) * omega  # (N, C/4)
    table = torch.cat([x_angles.sin(), x_angles.cos(), y_angles.sin(), y_angles.cos()], dim=1)  # (N, C)
    return table.to(dtype)
