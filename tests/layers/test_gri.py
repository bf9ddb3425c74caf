"""GRI: shapes, fused vs reference path (values and gradients), gradcheck, bad input."""

from __future__ import annotations

import pytest
import torch

import wrim
from wrim.layers import GRI, sincos_2d_pos_embed


def _values_and_grads(module: GRI, x: torch.Tensor, fused: bool) -> tuple[torch.Tensor, ...]:
    module.fused_attn = fused
    x = x.detach().clone().requires_grad_(True)
    module.zero_grad()
    out = module(x)
    (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)).sum().backward()
    return (out.detach(), x.grad, *(p.grad.clone() for p in module.parameters()))


@pytest.mark.parametrize(
    "dim,heads,height,width,kv_pool", [(32, 4, 6, 4, 1), (64, 8, 24, 8, 1), (64, 8, 24, 8, 2), (32, 2, 5, 3, 2)]
)
def test_shapes(dim: int, heads: int, height: int, width: int, kv_pool: int) -> None:
    out = GRI(dim, num_heads=heads, kv_pool=kv_pool)(torch.randn(2, dim, height, width))
    assert out.shape == (2, height * width, dim)


@pytest.mark.parametrize("kv_pool", [1, 2, 3])
@pytest.mark.parametrize("pos_embed", ["sincos", None])
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_fused_matches_reference(kv_pool: int, pos_embed: str | None, dtype: torch.dtype, tol: float) -> None:
    module = GRI(32, num_heads=4, kv_pool=kv_pool, pos_embed=pos_embed, qkv_bias=True).to(dtype)
    x = torch.randn(3, 32, 7, 5, dtype=dtype)
    fused = _values_and_grads(module, x, fused=True)
    reference = _values_and_grads(module, x, fused=False)
    for a, b in zip(fused, reference, strict=True):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)


@pytest.mark.parametrize("fused", [True, False])
def test_gradcheck(fused: bool) -> None:
    module = GRI(8, num_heads=2, kv_pool=2).double()
    module.fused_attn = fused
    x = torch.randn(2, 8, 3, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(module, (x,), eps=1e-6, atol=1e-6)


def test_global_switch_sets_default() -> None:
    try:
        wrim.set_fused_attn(False)
        assert GRI(8, num_heads=2).fused_attn is False
        wrim.set_fused_attn(True)
        assert GRI(8, num_heads=2).fused_attn is True
    finally:
        wrim.set_fused_attn(True)
    with pytest.raises(TypeError):
        wrim.set_fused_attn(1)  # type: ignore[arg-type]


def test_attention_reaches_every_region() -> None:
    """A change in one region moves every query token (the interaction is global)."""
    module = GRI(16, num_heads=2).eval()
    x = torch.randn(1, 16, 4, 4)
    moved = x.clone()
    moved[:, :, 3, 3] = torch.randn(16) * 3  # a new pattern (a constant shift would vanish in LayerNorm)
    delta = (module(moved) - module(x)).abs().sum(-1)  # (1, N)
    assert bool((delta > 1e-3).all())


def test_sincos_table() -> None:
    table = sincos_2d_pos_embed(3, 2, 8)
    assert table.shape == (6, 8)
    # token (y=0, x=0): sin(0) = 0 and cos(0) = 1 for every frequency
    torch.testing.assert_close(table[0], torch.tensor([0, 0, 1, 1, 0, 0, 1, 1], dtype=torch.float32))
    assert len({tuple(row.tolist()) for row in table}) == 6  # every position distinct
    # any width: built for 4·⌈C/4⌉ columns and cut; C = 6 keeps x's sin/cos and the first y-sin column
    odd = sincos_2d_pos_embed(3, 2, 6)
    assert odd.shape == (6, 6)
    ys, xs = torch.meshgrid(torch.arange(3.0), torch.arange(2.0), indexing="ij")
    omega = 1.0 / 10000.0 ** (torch.arange(2.0) / 2)  # q = ⌈6/4⌉ = 2 frequencies
    x_angles, y_angles = xs.reshape(-1, 1) * omega, ys.reshape(-1, 1) * omega
    expected = torch.cat([x_angles.sin(), x_angles.cos(), y_angles.sin()], dim=1)
    torch.testing.assert_close(odd, expected)


def test_bad_arguments_and_input() -> None:
    with pytest.raises(ValueError, match="num_heads must divide dim.*Valid head counts: 1, 2, 3, 5, 6, 10, 15, 30"):
        GRI(30, num_heads=4)
    with pytest.raises(ValueError, match="kv_pool"):
        GRI(32, kv_pool=0)
    with pytest.raises(ValueError, match="pos_embed"):
        GRI(32, pos_embed="learned")
    with pytest.raises(ValueError, match=r"\(B, 32, h, w\)"):
        GRI(32, num_heads=4)(torch.randn(2, 16, 4, 4))
