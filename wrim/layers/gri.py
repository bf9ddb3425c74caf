"""GRI - Global Region Interaction: multi-head attention between the region tokens of a compressed feature map.

Shapes: ``B`` batch, ``C`` channels of the compressed map (``dim``), ``h, w`` its grid, ``N = h·w`` query tokens,
``M`` key/value tokens (``N``, or the ``kv_pool``-pooled grid), ``H`` heads, ``d = C / H`` head dim.

docs: The paper, section GRI ([P][N]): ``F4 = GRI(Q = F2, K = F3, V = F3)`` where ``F2`` is the compressed map and
``F3`` its average-pooled version. With tokens ``T = flatten(F2) + P`` (``P`` the 2-D sine-cosine encoding, [D]) and
``T3 = flatten(AvgPool_k(F2 + P))`` (``k = kv_pool``; ``k = 1`` means ``T3 = T``, [D]):

```text
Q = LN(T) W_q,   K = LN(T3) W_k,   V = LN(T3) W_v          (one qkv Linear, no bias [N])
A = softmax(Q Kᵀ / √d) V                                    (per head)
F4 = T + (A W_o + b_o)                                      (residual [D], output projection with bias [N])
```

(``residual_pos_embed=False`` adds the attention to ``flatten(F2)`` instead of ``T``, [D].)

Two attention paths give the same numbers: the fused path calls ``F.scaled_dot_product_attention``; the
reference path writes ``softmax(QKᵀ/√d)V`` out explicitly. ``fused_attn`` (default: ``wrim.use_fused_attn()``)
selects one per instance.
"""

from typing import Final

import torch
import torch.nn.functional as F
from torch import nn

from wrim._checks import checks_enabled
from wrim.layers.config import use_fused_attn
from wrim.layers.pos_embed import sincos_2d_pos_embed
from wrim.layers.token_linear import TokenLinear, token_linear

__all__ = ["GRI", "head_counts", "resolve_num_heads"]

_POS_EMBEDS = ("sincos", None)
DEFAULT_NUM_HEADS = 8
torch.fx.wrap("sincos_2d_pos_embed")  # a function of the grid size only: one node in an fx graph
torch.fx.wrap("token_linear")  # a device-dependent branch: one node in an fx graph


def head_counts(dim: int) -> list[int]:
    """The head counts that split ``dim`` channels evenly (the divisors of ``dim``)."""
    return [heads for heads in range(1, dim + 1) if dim % heads == 0]


def resolve_num_heads(dim: int, num_heads: int | None, context: str = "") -> int:
    """The GRI head count for ``dim`` channels.

    ``None`` picks the largest divisor of ``dim`` not above 8 ([N] uses 8; e.g. 5 for ``dim = 20``) [D]; an explicit
    count must divide ``dim``.

    Args:
        dim: token width.
        num_heads: the requested head count, or None for the default.
        context: how ``dim`` came about, for the error message (e.g. ``"dim = channels // reduction = 40 // 2"``).

    Raises:
        ValueError: an explicit ``num_heads`` does not divide ``dim``; the message lists the valid counts.
    """
    valid = head_counts(dim) if dim >= 1 else []
    if num_heads is None:
        return max(heads for heads in valid if heads <= DEFAULT_NUM_HEADS)
    if num_heads not in valid:
        where = f"{context} = {dim}" if context else f"dim={dim}"
        raise ValueError(
            f"num_heads must divide dim; got num_heads={num_heads} for {where}. Valid head counts: "
            f"{', '.join(map(str, valid))} (or leave num_heads unset: the largest of them not above "
            f"{DEFAULT_NUM_HEADS})"
        )
    return num_heads


class GRI(nn.Module):
    """Global Region Interaction (docs: The paper, section GRI): attention over the region tokens of a feature map."""

    fused_attn: Final[bool]

    def __init__(
        self,
        dim: int,
        num_heads: int | None = None,
        kv_pool: int = 1,
        pos_embed: str | None = "sincos",
        qkv_bias: bool = False,
        residual: bool = True,
        residual_pos_embed: bool = True,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        norm_layer: type[nn.Module] = nn.LayerNorm,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        """
        Args:
            dim: channels of the compressed map (the token dimension).
            num_heads: attention heads; must divide ``dim``. None (default): 8 as in [N], or the largest divisor
                of ``dim`` below 8 when 8 does not divide it. [D]
            kv_pool: average-pooling factor that turns the query grid into the key/value grid (``F3`` of the
                paper); 1 uses the query tokens themselves (the module list of [N] shows no pooling layer). [D]
            pos_embed: ``"sincos"`` adds the fixed 2-D sine-cosine encoding to the tokens; ``None`` switches it off
                (ablation). [D]
            qkv_bias: bias in the qkv projection ([N]: none).
            residual: add the attention output to its input tokens (pre-norm transformer form). [D]
            residual_pos_embed: the residual carries the positional encoding (``F4 = T + A``, ``T`` encoded, as in a
                pre-norm ViT); False adds ``A`` to the un-encoded tokens, so no fixed per-position constant reaches
                ``F4`` and the gate. [D] True (the paper describes neither).
            attn_drop: dropout on the attention weights ([N]: 0).
            proj_drop: dropout after the output projection ([N]: 0).
            norm_layer: the token norm applied before qkv ([N]: LayerNorm).
            device: parameter device.
            dtype: parameter dtype.
        """
        super().__init__()
        if dim < 1:
            raise ValueError(f"dim must be >= 1; got {dim}")
        num_heads = resolve_num_heads(dim, num_heads)
        if kv_pool < 1:
            raise ValueError(f"kv_pool must be >= 1 (1 = no pooling of keys/values); got {kv_pool}")
        if pos_embed not in _POS_EMBEDS:
            raise ValueError(f"pos_embed must be one of {_POS_EMBEDS}; got {pos_embed!r}")
        factory = {"device": device, "dtype": dtype}
        self.dim = dim
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.kv_pool = kv_pool
        self.pos_embed = pos_embed
        self.residual = residual
        self.residual_pos_embed = residual_pos_embed
        self.fused_attn = use_fused_attn()
        self.norm = norm_layer(dim, **factory)
        self.qkv = TokenLinear(dim, 3 * dim, bias=qkv_bias, **factory)
        self.attn_drop = nn.Dropout(attn_drop)
        self.proj = TokenLinear(dim, dim, **factory)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Region interaction on a compressed map.

        Args:
            x: compressed map ``F2``, (B, C, h, w).

        Returns:
            ``F4`` as tokens, (B, N, C), in row-major (y, x) order.
        """
        if not torch.jit.is_scripting():  # noqa: SIM102 - TorchScript skips this branch, never compiles it
            if checks_enabled():
                self.check_input(x)
        batch, dim, height, width = x.shape
        tokens = x.permute(0, 2, 3, 1).reshape(batch, height * width, dim)  # (B, C, h, w) -> (B, N, C)
        shortcut = tokens
        if self.pos_embed == "sincos":
            tokens = tokens + sincos_2d_pos_embed(height, width, dim, device=x.device, dtype=tokens.dtype)
            if self.residual_pos_embed:
                shortcut = tokens
        queries = self.norm(tokens)  # (B, N, C)
        if self.kv_pool == 1:
            # contiguous: TokenLinear's CPU output is channel-first, and SDPA's fused CPU kernel wants d innermost
            qkv = self.qkv(queries).contiguous().view(batch, -1, 3, self.num_heads, self.head_dim)  # (B, N, 3, H, d)
            q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # 3 x (B, H, N, d)
        else:
            grid = tokens.view(batch, height, width, dim).permute(0, 3, 1, 2)  # (B, C, h, w)
            pooled = F.avg_pool2d(grid, self.kv_pool, ceil_mode=True)  # (B, C, h', w')
            keys = self.norm(pooled.flatten(2).transpose(1, 2))  # (B, M, C)
            w_q, w_kv = self.qkv.weight.split([dim, 2 * dim])
            b_q, b_kv = self.qkv.bias.split([dim, 2 * dim]) if self.qkv.bias is not None else (None, None)
            q = token_linear(queries, w_q, b_q).contiguous().view(batch, -1, self.num_heads, self.head_dim)
            q = q.transpose(1, 2)  # (B, N, H, d) -> (B, H, N, d)
            kv = token_linear(keys, w_kv, b_kv).contiguous()  # (B, M, 2C)
            kv = kv.view(batch, -1, 2, self.num_heads, self.head_dim)  # (B, M, 2, H, d)
            k, v = kv.permute(2, 0, 3, 1, 4).unbind(0)  # 2 x (B, H, M, d)
        attended = self._attend(q, k, v)  # (B, H, N, d)
        attended = attended.transpose(1, 2).reshape(batch, height * width, dim)  # (B, N, C)
        out = self.proj_drop(self.proj(attended))
        return shortcut + out if self.residual else out

    @torch.jit.unused
    def check_input(self, x: torch.Tensor) -> None:
        """Raise a ValueError unless ``x`` is a (B, dim, h, w) map."""
        if x.dim() != 4 or x.shape[1] != self.dim:
            raise ValueError(f"GRI expects a (B, {self.dim}, h, w) map; got shape {tuple(x.shape)}")

    def _attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """softmax(QKᵀ/√d)V, fused or written out. (B, H, N, d), (B, H, M, d) x 2 -> (B, H, N, d)."""
        if self.fused_attn:
            return F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_drop.p if self.training else 0.0)
        scores = (q * self.head_dim**-0.5) @ k.transpose(-2, -1)  # (B, H, N, M)
        weights = self.attn_drop(scores.softmax(dim=-1))
        return weights @ v

    def extra_repr(self) -> str:
        return (
            f"dim={self.dim}, num_heads={self.num_heads}, kv_pool={self.kv_pool}, pos_embed={self.pos_embed!r}, "
            f"residual={self.residual}, fused_attn={self.fused_attn}"
        )
