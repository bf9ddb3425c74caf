"""Fixed 2-D sine-cosine positional encoding for a grid of region tokens.

Shapes: ``h, w`` - token grid height and width; ``N = h * w`` tokens; ``C`` - embedding dim (any ``C >= 1``).

For a token at row ``y`` and column ``x`` and frequency index ``i = 0 .. q - 1`` with ``q = ⌈C / 4⌉`` and
``ω_i = 1 / T^(i / q)``:

    P(y, x) = [sin(x·ω), cos(x·ω), sin(y·ω), cos(y·ω)][:C]

(the MAE / ViT-MoCo-v3 form). When ``C`` is a multiple of 4 this is exactly that form; otherwise the table is built
for ``4q`` columns and its last ``4q - C`` columns (the highest ``cos(y·ω)`` frequencies) are cut [D], so any token
width gets an encoding. docs: The paper, section GRI [D]: GRI's positional encoding is this fixed, parameter-free
encoding (the module list in [N] shows no positional parameters).
"""

import torch

__all__ = ["sincos_2d_pos_embed"]


def sincos_2d_pos_embed(
    height: int,
    width: int,
    dim: int,
    temperature: float = 10000.0,
    device: torch.device | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Build the ``(height * width, dim)`` sine-cosine table, rows in row-major (y, x) token order.

    Args:
        height: token grid height ``h``.
        width: token grid width ``w``.
        dim: embedding dimension ``C`` (>= 1); built for ``4·⌈C/4⌉`` columns and cut to ``C``.
        temperature: the frequency base ``T``.
        device: where to build the table.
        dtype: dtype of the returned table (computed in float32).
    """
    if dim < 1:
        raise ValueError(f"the 2-D sine-cosine encoding needs dim >= 1; got dim={dim}")
    quarter = (dim + 3) // 4
    omega = torch.arange(quarter, device=device, dtype=torch.float32) / quarter
    omega = 1.0 / temperature**omega  # (q,)
    ys, xs = torch.meshgrid(
        torch.arange(height, device=device, dtype=torch.float32),
        torch.arange(width, device=device, dtype=torch.float32),
        indexing="ij",
    )
    x_angles = xs.reshape(-1, 1) * omega  # (N, q)
    y_angles = ys.reshape(-1, 1) * omega  # (N, q)
    table = torch.cat([x_angles.sin(), x_angles.cos(), y_angles.sin(), y_angles.cos()], dim=1)  # (N, 4q)
    return table[:, :dim].to(dtype)  # (N, C)
