"""TokenLinear / token_linear: nn.Linear's values, gradients, parameters and hooks; GRI keeps the fused CPU kernel."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from wrim.layers import GRI, MIIM
from wrim.layers import token_linear as token_linear_module
from wrim.layers.token_linear import CONV_MIN_MACS, TokenLinear, token_linear


@pytest.fixture(params=["convolution", "f_linear"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both CPU paths on small shapes: the threshold at 0 sends every product through the 1x1 convolution."""
    if request.param == "convolution":
        monkeypatch.setattr(token_linear_module, "CONV_MIN_MACS", 0)
    return request.param


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(3, 7, 5), (1, 1, 5), (2, 162, 5)])
def test_equals_f_linear_float64_values_and_grads(bias: bool, shape: tuple[int, int, int], path: str) -> None:
    """Against the written-out product ``x Wᵀ + b`` (not against itself): values and every gradient."""
    torch.manual_seed(0)
    layer = TokenLinear(shape[-1], 6, bias=bias).double()
    tokens = torch.randn(*shape, dtype=torch.float64, requires_grad=True)
    upstream = torch.randn(*shape[:-1], 6, dtype=torch.float64)
    out = layer(tokens)
    expected = tokens.detach() @ layer.weight.detach().t() + (layer.bias.detach() if bias else 0)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    grads = torch.autograd.grad(out, [tokens, *layer.parameters()], upstream)
    assert grads[0].shape == tokens.shape
    torch.testing.assert_close(grads[0], upstream @ layer.weight.detach(), rtol=1e-12, atol=1e-12)
    flat_up, flat_in = upstream.reshape(-1, 6), tokens.detach().reshape(-1, shape[-1])
    torch.testing.assert_close(grads[1], flat_up.t() @ flat_in, rtol=1e-12, atol=1e-12)
    if bias:
        torch.testing.assert_close(grads[2], flat_up.sum(0), rtol=1e-12, atol=1e-12)


def test_gradcheck(path: str) -> None:
    tokens = torch.randn(2, 4, 3, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(token_linear, (tokens, weight, bias))


def test_the_default_threshold_picks_the_path_by_size() -> None:
    """A product of GRI's size at 288x144 (16 x 162 tokens, 512 -> 2048) is a convolution (its output the
    channel-first view), a small one is F.linear; both equal the float64 product to float32 rounding."""
    torch.manual_seed(0)
    for tokens, c_in, c_out, convolved in ((2, 4, 8, False), (162, 512, 2048, True)):
        assert (16 * tokens * c_in * c_out >= CONV_MIN_MACS) == convolved
        layer = TokenLinear(c_in, c_out)
        x = torch.randn(16, tokens, c_in)
        out = layer(x)
        assert out.is_contiguous() != convolved
        expected = (x.double() @ layer.weight.double().t() + layer.bias.double()).float()
        torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-4)


def test_other_ranks_and_devices_take_f_linear() -> None:
    layer = TokenLinear(4, 3)
    x2d = torch.randn(5, 4)
    torch.testing.assert_close(layer(x2d), F.linear(x2d, layer.weight, layer.bias))
    meta = TokenLinear(4, 3, device="meta")
    assert meta(torch.empty(2, 5, 4, device="meta")).shape == (2, 5, 3)


def test_state_dict_and_hooks_are_those_of_nn_linear() -> None:
    """Checkpoints of MIIMs saved before TokenLinear load unchanged, and forward hooks (the gate maps) still fire."""
    miim = MIIM(16, stride=2)
    plain = torch.nn.Linear(8, 16)
    assert {k: v.shape for k, v in miim.restore.state_dict().items()} == {
        k: v.shape for k, v in plain.state_dict().items()
    }
    seen = []
    miim.restore.register_forward_hook(lambda _m, _i, out: seen.append(out.shape))
    miim(torch.randn(2, 16, 8, 4))
    assert seen == [(2, 8, 16)]  # (B, N, C): a 4 x 2 grid of tokens, 16 channels


def test_gri_on_cpu_keeps_the_fused_attention_kernel(path: str) -> None:
    """The CPU's flash kernel needs ``d`` innermost: a channel-first q / k / v would fall back to the math path, which
    saves the (B, H, N, N) attention weights for backward. GRI must save no tensor of that size."""
    gri = GRI(64, num_heads=8).train()
    x = torch.randn(4, 64, 12, 6)
    tokens = 12 * 6
    shapes = []

    def pack(saved: torch.Tensor) -> torch.Tensor:
        shapes.append(tuple(saved.shape))
        return saved

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda saved: saved):
        gri(x)
    assert gri.fused_attn
    assert not [shape for shape in shapes if shape[-2:] == (tokens, tokens)], shapes


def test_export_with_a_dynamic_batch_and_torchscript(monkeypatch: pytest.MonkeyPatch) -> None:
    """Graphs being exported see F.linear before any test of the (symbolic) batch size, and TorchScript compiles
    only the F.linear branch (the threshold is a Python global it cannot read)."""
    monkeypatch.setattr(token_linear_module, "CONV_MIN_MACS", 0)
    layer = TokenLinear(8, 4).eval()
    batch = torch.export.Dim("batch", min=1, max=64)
    program = torch.export.export(layer, (torch.randn(3, 5, 8),), dynamic_shapes={"tokens": {0: batch}})
    other = torch.randn(7, 5, 8)
    torch.testing.assert_close(program.module()(other), F.linear(other, layer.weight, layer.bias))
    torch.testing.assert_close(torch.jit.script(layer)(other), layer(other))
