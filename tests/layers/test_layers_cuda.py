"""CUDA: bf16/fp16 fused path against the fp32 reference, channels_last, a fast SDPA backend, compile.

Skipped without a GPU (see tests/conftest.py). Tolerances: bf16 has an 8-bit mantissa, so outputs of a
unit-scale MIIM agree with fp32 to about 3e-2; fp16 to about 5e-3.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from wrim import MIIM, ModalityMIIM

pytestmark = pytest.mark.cuda

PLACEMENTS = [(256, 2, 4, (72, 36)), (512, 2, 2, (36, 18)), (1024, 4, 1, (18, 9)), (2048, 4, 1, (18, 9))]
TOLERANCE = {torch.bfloat16: 3e-2, torch.float16: 5e-3}


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("kv_pool", [1, 2])
@pytest.mark.parametrize("placement", PLACEMENTS, ids=["stage1", "stage2", "stage3", "stage4"])
def test_autocast_fused_matches_fp32_reference(dtype: torch.dtype, kv_pool: int, placement: tuple) -> None:
    channels, reduction, stride, (height, width) = placement
    module = MIIM(channels, reduction=reduction, stride=stride, kv_pool=kv_pool).cuda().eval()
    reference = copy.deepcopy(module)
    reference.fused_attn = False
    x = torch.randn(4, channels, height, width, device="cuda").to(memory_format=torch.channels_last)
    with torch.no_grad():
        expected = reference(x)
        with torch.autocast("cuda", dtype=dtype):
            out = module(x)
    tol = TOLERANCE[dtype]
    torch.testing.assert_close(out.float(), expected, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_fused_path_runs_on_flash_attention(dtype: torch.dtype) -> None:
    module = MIIM(256, reduction=2, stride=4).cuda().to(dtype)
    x = torch.randn(8, 256, 72, 36, device="cuda", dtype=dtype).to(memory_format=torch.channels_last)
    with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):  # raises if the inputs are not eligible for flash
        module(x).float().square().mean().backward()


def test_float32_fused_matches_reference_on_cuda() -> None:
    module = MIIM(512, reduction=2, stride=2).cuda()
    x = torch.randn(4, 512, 36, 18, device="cuda", requires_grad=True)
    out = module(x)
    module.fused_attn = False
    torch.testing.assert_close(out, module(x), rtol=1e-4, atol=1e-4)


def test_channels_last_training_step_bf16() -> None:
    module = ModalityMIIM(256, reduction=2, stride=4).cuda().to(memory_format=torch.channels_last)
    x = torch.randn(8, 256, 72, 36, device="cuda").to(memory_format=torch.channels_last).requires_grad_(True)
    modalities = torch.tensor([0, 1] * 4, device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = module(x, modalities)
    assert out.dtype == torch.float32 and out.is_contiguous(memory_format=torch.channels_last)
    out.square().mean().backward()
    assert torch.isfinite(x.grad).all()


def test_compile_on_cuda_matches_eager() -> None:
    module = ModalityMIIM(256, reduction=2, stride=4).cuda()
    x = torch.randn(8, 256, 72, 36, device="cuda")
    modalities = torch.tensor([0, 1] * 4, device="cuda")
    compiled = torch.compile(module, fullgraph=True)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        torch.testing.assert_close(compiled(x, modalities).float(), module(x, modalities).float(), rtol=3e-2, atol=3e-2)
