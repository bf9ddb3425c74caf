"""MIIM, GRI and the sine-cosine table against an independent float64 reference written from docs/layers.md.

The reference below uses plain tensor operations and explicit loops over regions, tokens and heads; it reads the
module's parameters (through :func:`miim_params` / :func:`gri_params` only) and nothing else of the module: it
never calls ``MIIM.gate``, ``GRI.forward`` or ``sincos_2d_pos_embed``. The equations (docs/layers.md)::

    F2  = Conv_{s×s, stride s}(X, zero-padded bottom/right to (h·s, w·s))      (B, C', h, w)
    T   = flatten(F2) + P                  (row-major tokens, P = [sin xω, cos xω, sin yω, cos yω])
    T3  = flatten(AvgPool_k(F2 + P))       (k = kv_pool; T3 = T for k = 1)
    Q = LN(T) W_q,  K = LN(T3) W_k,  V = LN(T3) W_v,  F4 = T + concat_heads(softmax(Q Kᵀ/√d) V) W_o + b_o
    G   = Up_s(σ(Linear_{C'→C}(F4)))       nearest upsampling, cropped to H×W
    Out = X + BN_{affine=False}(X ⊙ G)     batch statistics in training, running ones in eval
"""

from __future__ import annotations

import copy
import math

import pytest
import torch

from wrim import INFRARED, VISIBLE
from wrim.layers import GRI, MIIM, ModalityMIIM, sincos_2d_pos_embed

DTYPE = torch.float64
# The package builds the positional table in float32 (wrim/layers/pos_embed.py) and casts it; that rounding
# (~1e-7 per entry) is the only non-float64 step, so outputs agree to ~1e-7. The planted bugs move them by >1e-2.
TOL = {"rtol": 1e-6, "atol": 1e-6}


# ------------------------------------------------------------------------------------------ parameter access


def gri_params(gri: GRI) -> dict:
    """The GRI parameters the reference needs, by module attribute name (the one place to adapt)."""
    qkv_w = gri.qkv.weight.detach()
    qkv_b = gri.qkv.bias.detach() if gri.qkv.bias is not None else torch.zeros(qkv_w.shape[0], dtype=qkv_w.dtype)
    return {
        "ln_w": gri.norm.weight.detach(),
        "ln_b": gri.norm.bias.detach(),
        "ln_eps": gri.norm.eps,
        "qkv_w": qkv_w,
        "qkv_b": qkv_b,
        "proj_w": gri.proj.weight.detach(),
        "proj_b": gri.proj.bias.detach(),
        "heads": gri.num_heads,
        "kv_pool": gri.kv_pool,
        "pos": gri.pos_embed == "sincos",
        "residual": gri.residual,
    }


def miim_params(miim: MIIM) -> dict:
    """The MIIM parameters (and BatchNorm buffers) the reference needs, by module attribute name."""
    norm = miim.norm
    has_norm = isinstance(norm, torch.nn.BatchNorm2d)
    return {
        "conv_w": miim.compress.weight.detach(),
        "conv_b": miim.compress.bias.detach(),
        "stride": miim.stride,
        "gri": gri_params(miim.gri),
        "restore_w": miim.restore.weight.detach(),
        "restore_b": miim.restore.bias.detach(),
        "bn": None
        if not has_norm
        else {
            "eps": norm.eps,
            "momentum": norm.momentum,
            "running_mean": norm.running_mean.detach().clone(),
            "running_var": norm.running_var.detach().clone(),
        },
    }


# ------------------------------------------------------------------------------------------ the reference


def sincos_reference(height: int, width: int, dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """P[y·w + x] = [sin(x ω_i), cos(x ω_i), sin(y ω_i), cos(y ω_i)], ω_i = T^(-i / (dim/4)); token by token."""
    quarter = dim // 4
    table = torch.zeros(height * width, dim, dtype=DTYPE)
    for y in range(height):
        for x in range(width):
            row = []
            for fn, coord in ((math.sin, x), (math.cos, x), (math.sin, y), (math.cos, y)):
                row += [fn(coord * temperature ** (-i / quarter)) for i in range(quarter)]
            table[y * width + x] = torch.tensor(row, dtype=DTYPE)
    return table


def _layer_norm(t: torch.Tensor, p: dict) -> torch.Tensor:
    mean = t.mean(-1, keepdim=True)
    var = ((t - mean) ** 2).mean(-1, keepdim=True)  # biased, as LayerNorm
    return (t - mean) / torch.sqrt(var + p["ln_eps"]) * p["ln_w"] + p["ln_b"]


def gri_reference(f2: torch.Tensor, p: dict) -> torch.Tensor:
    """F4 tokens (B, h·w, C') of a (B, C', h, w) map, from the equations."""
    batch, dim, height, width = f2.shape
    grid = f2.clone()
    if p["pos"]:
        table = sincos_reference(height, width, dim)
        for y in range(height):
            for x in range(width):
                grid[:, :, y, x] = grid[:, :, y, x] + table[y * width + x]
    tokens = torch.stack([grid[:, :, y, x] for y in range(height) for x in range(width)], 1)  # (B, N, C')
    k = p["kv_pool"]
    if k == 1:
        kv_tokens = tokens
    else:  # mean over each k×k window's cells inside the grid
        pooled = []
        for y0 in range(0, height, k):
            for x0 in range(0, width, k):
                pooled.append(grid[:, :, y0 : y0 + k, x0 : x0 + k].mean(dim=(2, 3)))
        kv_tokens = torch.stack(pooled, 1)  # (B, M, C')
    w_q, w_k, w_v = p["qkv_w"][:dim], p["qkv_w"][dim : 2 * dim], p["qkv_w"][2 * dim :]
    b_q, b_k, b_v = p["qkv_b"][:dim], p["qkv_b"][dim : 2 * dim], p["qkv_b"][2 * dim :]
    q = _layer_norm(tokens, p) @ w_q.T + b_q  # (B, N, C')
    key = _layer_norm(kv_tokens, p) @ w_k.T + b_k  # (B, M, C')
    v = _layer_norm(kv_tokens, p) @ w_v.T + b_v
    d = dim // p["heads"]
    heads = []
    for h in range(p["heads"]):
        cols = slice(h * d, (h + 1) * d)
        scores = q[:, :, cols] @ key[:, :, cols].transpose(1, 2) / math.sqrt(d)  # (B, N, M)
        weights = torch.exp(scores - scores.amax(-1, keepdim=True))
        weights = weights / weights.sum(-1, keepdim=True)
        heads.append(weights @ v[:, :, cols])  # (B, N, d)
    out = torch.cat(heads, -1) @ p["proj_w"].T + p["proj_b"]  # (B, N, C')
    return tokens + out if p["residual"] else out


def miim_gate_reference(x: torch.Tensor, p: dict) -> torch.Tensor:
    """The full-resolution gate G = Up_s(σ(Linear(F4))), (B, C, H, W), from the equations."""
    batch, channels, height, width = x.shape
    s = p["stride"]
    grid_h, grid_w = -(-height // s), -(-width // s)
    padded = torch.zeros(batch, channels, grid_h * s, grid_w * s, dtype=x.dtype)
    padded[:, :, :height, :width] = x
    dim = p["conv_w"].shape[0]
    f2 = torch.zeros(batch, dim, grid_h, grid_w, dtype=x.dtype)
    for i in range(grid_h):
        for j in range(grid_w):
            patch = padded[:, :, i * s : (i + 1) * s, j * s : (j + 1) * s]  # (B, C, s, s)
            f2[:, :, i, j] = torch.einsum("bcuv,ocuv->bo", patch, p["conv_w"]) + p["conv_b"]
    f4 = gri_reference(f2, p["gri"])  # (B, N, C')
    restored = 1.0 / (1.0 + torch.exp(-(f4 @ p["restore_w"].T + p["restore_b"])))  # (B, N, C)
    gate = torch.zeros_like(x)
    for y in range(height):
        for xx in range(width):
            gate[:, :, y, xx] = restored[:, (y // s) * grid_w + xx // s]
    return gate


def miim_reference(x: torch.Tensor, p: dict, training: bool) -> tuple[torch.Tensor, dict | None]:
    """Out = X + BN(X ⊙ G); also the BatchNorm running statistics after the call (None without BN)."""
    y = x * miim_gate_reference(x, p)
    bn = p["bn"]
    if bn is None:
        return x + y, None
    if training:
        mean = y.mean(dim=(0, 2, 3))
        var = ((y - mean[:, None, None]) ** 2).mean(dim=(0, 2, 3))
        count = y.numel() // y.shape[1]
        m = bn["momentum"]
        stats = {
            "running_mean": (1 - m) * bn["running_mean"] + m * mean,
            "running_var": (1 - m) * bn["running_var"] + m * var * count / (count - 1),
        }
    else:
        mean, var = bn["running_mean"], bn["running_var"]
        stats = {"running_mean": mean, "running_var": var}
    out = x + (y - mean[:, None, None]) / torch.sqrt(var[:, None, None] + bn["eps"])
    return out, stats


def _randomise(module: torch.nn.Module, seed: int) -> None:
    """Non-trivial values for every parameter and BatchNorm buffer (LayerNorm weight 1 / bias 0 hide bugs)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            scale = param[0].numel() ** -0.5 if param.dim() > 1 else 0.5  # keep activations O(1): no saturation
            param.copy_(scale * torch.randn(param.shape, generator=gen, dtype=param.dtype))
        for name, buffer in module.named_buffers():
            if name.endswith("running_mean"):
                buffer.copy_(0.3 * torch.randn(buffer.shape, generator=gen, dtype=buffer.dtype))
            elif name.endswith("running_var"):
                buffer.copy_(0.5 + torch.rand(buffer.shape, generator=gen, dtype=buffer.dtype))


# ------------------------------------------------------------------------------------------ tests

# (C, r, s, H, W, heads, kv_pool): s divides H and W, s divides neither, s divides one, non-square grids, s = 1
CASES = [
    (16, 2, 2, 6, 4, 2, 1),
    (16, 2, 4, 7, 5, 4, 1),
    (32, 4, 3, 9, 7, 2, 1),
    (8, 1, 2, 5, 8, 2, 1),
    (16, 4, 1, 3, 5, 1, 1),
    (16, 2, 2, 10, 6, 2, 2),
]


@pytest.mark.parametrize("fused", [False, True])
@pytest.mark.parametrize(("channels", "reduction", "stride", "height", "width", "heads", "kv_pool"), CASES)
def test_miim_matches_reference(channels, reduction, stride, height, width, heads, kv_pool, fused) -> None:
    miim = MIIM(channels, reduction=reduction, stride=stride, num_heads=heads, kv_pool=kv_pool, dtype=DTYPE)
    _randomise(miim, seed=channels + stride + height)
    miim.fused_attn = fused
    gen = torch.Generator().manual_seed(height * width)
    x = torch.randn(3, channels, height, width, generator=gen, dtype=DTYPE)

    for training in (True, False):
        miim.train(training)
        params = miim_params(miim)
        expected, stats = miim_reference(x, params, training)
        with torch.no_grad():
            out = miim(x)
        torch.testing.assert_close(out, expected, **TOL)
        for name, value in stats.items():
            torch.testing.assert_close(getattr(miim.norm, name), value, **TOL, msg=name)


def test_miim_without_out_norm_or_positions_matches_reference() -> None:
    miim = MIIM(16, reduction=2, stride=2, num_heads=2, out_norm=False, pos_embed=None, attn_residual=False)
    miim = miim.to(DTYPE)
    _randomise(miim, seed=3)
    x = torch.randn(2, 16, 5, 7, dtype=DTYPE)
    expected, _ = miim_reference(x, miim_params(miim), training=True)
    with torch.no_grad():
        torch.testing.assert_close(miim(x), expected, **TOL)


def test_gate_layout_matches_reference() -> None:
    """``MIIM.gate`` is the (B, C, h, w) low-resolution gate: channel c of region (i, j) at [:, c, i, j]."""
    miim = MIIM(16, reduction=2, stride=3, num_heads=2, dtype=DTYPE)
    _randomise(miim, seed=5)
    x = torch.randn(2, 16, 8, 5, dtype=DTYPE)
    full = miim_gate_reference(x, miim_params(miim))  # (B, C, H, W)
    with torch.no_grad():
        gate = miim.gate(x)  # (B, C, 3, 2)
    assert gate.shape == (2, 16, 3, 2)
    torch.testing.assert_close(gate, full[:, :, ::3, ::3], **TOL)


@pytest.mark.parametrize(
    ("dim", "heads", "height", "width", "kv_pool", "qkv_bias"),
    [
        (8, 2, 3, 4, 1, False),
        (16, 4, 5, 3, 2, True),
        (12, 3, 4, 4, 3, False),
    ],
)
def test_gri_matches_reference(dim, heads, height, width, kv_pool, qkv_bias) -> None:
    gri = GRI(dim, num_heads=heads, kv_pool=kv_pool, qkv_bias=qkv_bias, dtype=DTYPE)
    _randomise(gri, seed=dim)
    f2 = torch.randn(2, dim, height, width, dtype=DTYPE)
    expected = gri_reference(f2, gri_params(gri))
    for fused in (False, True):
        gri.fused_attn = fused
        with torch.no_grad():
            torch.testing.assert_close(gri(f2), expected, **TOL)


@pytest.mark.parametrize(("height", "width", "dim"), [(1, 1, 4), (3, 5, 8), (6, 2, 16), (4, 4, 64), (24, 8, 128)])
def test_sincos_matches_closed_form(height, width, dim) -> None:
    table = sincos_2d_pos_embed(height, width, dim, dtype=DTYPE)
    assert table.shape == (height * width, dim)
    # computed in float32 inside: float32 rounding of angles up to max(h, w)
    torch.testing.assert_close(table, sincos_reference(height, width, dim), rtol=0, atol=2e-5)


def test_sincos_first_half_encodes_x() -> None:
    """Moving along a row (x) changes only the first half; moving down a column (y) only the second."""
    dim, width = 16, 5
    table = sincos_2d_pos_embed(4, width, dim, dtype=DTYPE)
    half = dim // 2
    origin, right, below = table[0], table[1], table[width]
    torch.testing.assert_close(right[half:], origin[half:])
    assert (right[:half] - origin[:half]).abs().max() > 0.1
    torch.testing.assert_close(below[:half], origin[:half])
    assert (below[half:] - origin[half:]).abs().max() > 0.1
    # the first frequency is 1 (ω_0 = T^0): sin(x) at x = 1 in column 0, cos(y) at y = 1 in column 3/4 dim
    assert right[0].item() == pytest.approx(math.sin(1.0), abs=1e-6)
    assert below[3 * dim // 4].item() == pytest.approx(math.cos(1.0), abs=1e-6)
    # the last frequency is T^(-(q-1)/q), not T^((q-1)/q)
    quarter = dim // 4
    assert right[quarter - 1].item() == pytest.approx(math.sin(10000.0 ** (-(quarter - 1) / quarter)), abs=1e-6)


def test_modality_miim_statistics_equal_a_plain_batchnorm_per_modality() -> None:
    """Each copy's running statistics equal a plain BatchNorm2d fed only that modality's X ⊙ G, step by step;
    a modality absent from a batch keeps its running mean and variance bit for bit."""
    module = ModalityMIIM(16, reduction=2, stride=2, num_heads=2, dtype=DTYPE)
    _randomise(module, seed=11)
    plain = {m: torch.nn.BatchNorm2d(16, affine=False, dtype=DTYPE) for m in (VISIBLE, INFRARED)}
    for m in (VISIBLE, INFRARED):
        plain[m].load_state_dict(module.branch(m).norm.state_dict())
    gen = torch.Generator().manual_seed(0)
    steps = [[0, 1, 1, 0], [0, 0, 0], [1, 0, 1, 1, 0], [1, 1], [0, 0, 1], [0, 0, 0, 0]]
    for order in steps:
        x = torch.randn(len(order), 16, 6, 5, generator=gen, dtype=DTYPE)
        modalities = torch.tensor(order)
        before = {m: copy.deepcopy(module.branch(m).norm.state_dict()) for m in (VISIBLE, INFRARED)}
        with torch.no_grad():
            out = module(x, modalities)
        for m in (VISIBLE, INFRARED):
            norm = module.branch(m).norm
            picked = modalities == m
            if not picked.any():
                for name in ("running_mean", "running_var", "num_batches_tracked"):
                    assert torch.equal(getattr(norm, name), before[m][name]), (order, m, name)
                continue
            reweighted = x[picked] * miim_gate_reference(x[picked], miim_params(module.branch(m)))
            expected_out = x[picked] + plain[m](reweighted)
            torch.testing.assert_close(out[picked], expected_out, **TOL)
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                torch.testing.assert_close(getattr(norm, name), getattr(plain[m], name), **TOL, msg=name)
    module.eval()
    x = torch.randn(4, 16, 6, 5, generator=gen, dtype=DTYPE)
    modalities = torch.tensor([1, 0, 0, 1])
    with torch.no_grad():
        out = module(x, modalities)
    for m in (VISIBLE, INFRARED):
        picked = modalities == m
        reweighted = x[picked] * miim_gate_reference(x[picked], miim_params(module.branch(m)))
        torch.testing.assert_close(out[picked], x[picked] + plain[m].eval()(reweighted), **TOL)
