r"""Test-time horizontal-flip averaging: wrim's one implementation, below `wrim.models` and `wrim.evaluation` (both use
it; ``wrim.evaluation.flip_average`` is the same function).

[D] wrim embeds ``x`` and ``flip(x)`` in one forward pass on a 2B batch and returns the L2-normalised sum,

$$
f_{flip}(x) = \frac{f(x) + f(\mathrm{flip}(x))}{\lVert f(x) + f(\mathrm{flip}(x)) \rVert_2}
$$

the renormalised mean. [N] DEEN's ``test.py`` keeps the plain sum ``f(x) + f(flip(x))`` and ranks by the dot
product, so its ranking also depends on the sum's norm; ``renormalize=False`` gives that sum.

Shape legend: ``B`` batch, ``D`` embedding size.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

__all__ = ["flip_average"]


def flip_average(
    embed: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor],
    images: torch.Tensor,
    modalities: torch.Tensor | None = None,
    renormalize: bool = True,
) -> torch.Tensor:
    """Embed images and their horizontal flips in one pass and combine the two embeddings.

    Args:
        embed: ``embed(images, modalities) -> (N, D)``, e.g. a model in eval mode.
        images: (B, 3, H, W).
        modalities: (B,) ids or None.
        renormalize: return the L2-normalised sum (wrim's default); False returns the plain sum (DEEN).

    Returns:
        (B, D) embeddings.
    """
    batch = images.shape[0]
    both = torch.cat([images, images.flip(-1)])  # (2B, 3, H, W)
    both_modalities = None if modalities is None else torch.cat([modalities, modalities])  # (2B,)
    out = embed(both, both_modalities)  # (2B, D)
    summed = out[:batch] + out[batch:]  # (B, D)
    return F.normalize(summed, dim=1) if renormalize else summed
