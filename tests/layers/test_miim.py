"""MIIM: shapes over a grid and the paper's placements, fused vs reference, gradcheck, layouts, autocast, errors."""

from __future__ import annotations

import pytest
import torch

from wrim import MIIM
from wrim.layers import reweight

# (channels, reduction, stride) after ResNet-50 layer1..layer4 (paper.md §1), and the maps they see.
PAPER_PLACEMENTS = [(256, 2, 4), (512, 2, 2), (1024, 4, 1), (2048, 4, 1)]
MAP_SIZES = {(384, 128): [(96, 32), (48, 16), (24, 8), (24, 8)], (288, 144): [(72, 36), (36, 18), (18, 9), (18, 9)]}


@pytest.mark.parametrize(
    "channels,reduction,stride,heads", [(16, 1, 1, 2), (32, 2, 2, 4), (64, 4, 4, 2), (48, 3, 3, 4)]
)
@pytest.mark.parametrize("height,width", [(12, 6), (13, 7), (5, 9), (1, 1)])
def test_shape_grid(channels: int, reduction: int, stride: int, heads: int, height: int, width: int) -> None:
    module = MIIM(channels, reduction=reduction, stride=stride, num_heads=heads)
    x = torch.randn(2, channels, height, width)
    out = module(x)
    assert out.shape == x.shape
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("img_size", list(MAP_SIZES))
@pytest.mark.parametrize("placement", range(4))
def test_paper_placements(img_size: tuple[int, int], placement: int) -> None:
    channels, reduction, stride = PAPER_PLACEMENTS[placement]
    height, width = MAP_SIZES[img_size][placement]
    module = MIIM(channels, reduction=reduction, stride=stride, num_heads=8).eval()
    x = torch.randn(1, channels, height, width)
    with torch.no_grad():
        assert module(x).shape == x.shape
        tokens = module.gri(module.compress(x))
    assert tokens.shape == (1, -(-height // stride) * -(-width // stride), channels // reduction)


def test_reweight_is_nearest_upsampling() -> None:
    x = torch.randn(2, 3, 8, 6)
    gate = torch.rand(2, 3, 3, 2)
    expected = x * gate.repeat_interleave(3, dim=2).repeat_interleave(3, dim=3)[:, :, :8, :6]
    torch.testing.assert_close(reweight(x, gate, 3), expected)  # 8, 6 not both divisible by 3: crop path
    gate = torch.rand(2, 3, 4, 3)
    torch.testing.assert_close(reweight(x, gate, 2), x * gate.repeat_interleave(2, 2).repeat_interleave(2, 3))


def test_uneven_size_pads_bottom_right() -> None:
    """A 7x5 map with stride 2: the conv sees a zero-padded 8x6 map, the gate is cropped back to 7x5."""
    module = MIIM(8, reduction=2, stride=2, num_heads=2).eval()
    x = torch.randn(1, 8, 7, 5)
    padded = torch.nn.functional.pad(x, (0, 1, 0, 1))
    with torch.no_grad():
        torch.testing.assert_close(module.gate(x), module.gate(padded))
        assert module.gate(x).shape == (1, 8, 4, 3)
        assert module(x).shape == x.shape


@pytest.mark.parametrize("kv_pool", [1, 2])
@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_fused_matches_reference(kv_pool: int, dtype: torch.dtype, tol: float) -> None:
    module = MIIM(32, reduction=2, stride=2, num_heads=4, kv_pool=kv_pool).to(dtype)
    x = torch.randn(4, 32, 12, 6, dtype=dtype)
    results = []
    for fused in (True, False):
        module.fused_attn = fused
        assert module.gri.fused_attn is fused
        module.zero_grad()
        xi = x.clone().requires_grad_(True)
        out = module(xi)
        out.pow(2).mean().backward()
        results.append((out.detach(), xi.grad, *(p.grad.clone() for p in module.parameters())))
    for a, b in zip(*results, strict=True):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol)


@pytest.mark.parametrize("fused", [True, False])
def test_gradcheck(fused: bool) -> None:
    module = MIIM(8, reduction=2, stride=2, num_heads=2, kv_pool=2).double()
    module.fused_attn = fused
    x = torch.randn(3, 8, 4, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(module, (x,), eps=1e-6, atol=1e-6)


def test_channels_last_matches_contiguous() -> None:
    module = MIIM(32, reduction=2, stride=2, num_heads=4)
    x = torch.randn(2, 32, 12, 8)
    expected = module(x)
    out = module.to(memory_format=torch.channels_last)(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    assert out.is_contiguous(memory_format=torch.channels_last)


def test_bf16_autocast_cpu() -> None:
    module = MIIM(32, reduction=2, stride=2, num_heads=4).eval()
    x = torch.randn(2, 32, 12, 8)
    with torch.no_grad():
        expected = module(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = module(x)
    assert out.shape == x.shape
    torch.testing.assert_close(out.float(), expected, rtol=0.05, atol=0.05)


def test_output_keeps_input_dtype() -> None:
    module = MIIM(16, reduction=2, stride=2, num_heads=2).to(torch.bfloat16)
    x = torch.randn(2, 16, 6, 4, dtype=torch.bfloat16)
    assert module(x).dtype == torch.bfloat16


def test_switches_for_ablations() -> None:
    x = torch.randn(2, 16, 6, 4)
    assert MIIM(16, num_heads=2, pos_embed=None, out_norm=False, attn_residual=False)(x).shape == x.shape
    no_norm = MIIM(16, num_heads=2, out_norm=False).eval()
    with torch.no_grad():
        torch.testing.assert_close(no_norm(x), x + x * no_norm.gate(x))


def test_bad_input_messages() -> None:
    module = MIIM(32, num_heads=4)
    with pytest.raises(ValueError, match="built for 32 channels but the input has 16"):
        module(torch.randn(2, 16, 4, 4))
    with pytest.raises(ValueError, match="4-D"):
        module(torch.randn(32, 4, 4))
    with pytest.raises(TypeError):
        module([1, 2, 3])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="reduction must be between 1 and channels"):
        MIIM(3, reduction=4)
    assert MIIM(61).gri.dim == 30  # C' = C // r: rexnet_100's 61 channels build
    with pytest.raises(ValueError, match="stride"):
        MIIM(32, stride=0)


def _eval_reference(module: MIIM, x: torch.Tensor) -> torch.Tensor:
    """docs/paper.md#miim in eval mode, written out: X + γ ⊙ BN(X ⊙ Up_s(G)) with the running statistics."""
    gate = module.gate(x)  # (B, C, h, w)
    upsampled = gate.repeat_interleave(module.stride, 2).repeat_interleave(module.stride, 3)
    reweighted = x * upsampled[:, :, : x.shape[2], : x.shape[3]]
    norm = module.norm
    branch = (reweighted - norm.running_mean[:, None, None]) / torch.sqrt(norm.running_var[:, None, None] + norm.eps)
    if module.gamma is not None:
        branch = branch * module.gamma[:, None, None]
    if module.combine == "gate":
        return branch
    out = x + branch
    return torch.relu(out) if module.combine == "add_relu" else out


@pytest.mark.parametrize("combine", ["add", "add_relu", "gate"])
@pytest.mark.parametrize("init_values", [None, 0.3])
@pytest.mark.parametrize("size", [(8, 4), (7, 5)], ids=["divisible", "padded"])
def test_eval_folded_tail_equals_the_written_out_block_float64(combine, init_values, size) -> None:
    """Eval mode folds the BatchNorm and the residual into one pass (``folded_tail``): values and input / parameter
    gradients equal the unfolded formula, float64."""
    module = MIIM(16, reduction=2, stride=2, num_heads=2, combine=combine, init_values=init_values).double()
    module(torch.randn(6, 16, *size, dtype=torch.float64))  # move the running statistics away from 0 / 1
    module.eval()
    x = torch.randn(3, 16, *size, dtype=torch.float64)
    x_ours, x_ref = x.clone().requires_grad_(), x.clone().requires_grad_()
    out, expected = module(x_ours), _eval_reference(module, x_ref)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    weights = torch.randn_like(out)
    ours = torch.autograd.grad((out * weights).sum(), [x_ours, *module.parameters()])
    theirs = torch.autograd.grad((expected * weights).sum(), [x_ref, *module.parameters()])
    for got, want in zip(ours, theirs, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


def test_scripted_eval_equals_folded_eager() -> None:
    """TorchScript keeps the unfolded passes (the fold is eager / traced only); both give the same output."""
    module = MIIM(16, reduction=2, stride=2, num_heads=2, init_values=0.5)
    module(torch.randn(4, 16, 8, 4))
    module.eval()
    x = torch.randn(2, 16, 8, 4)
    torch.testing.assert_close(torch.jit.script(module)(x), module(x), rtol=1e-5, atol=1e-6)
