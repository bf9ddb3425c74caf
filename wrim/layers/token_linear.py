"""TokenLinear - ``nn.Linear`` over region tokens, computed on the CPU as a 1×1 convolution (same values).

Shapes: ``B`` batch, ``N`` tokens, ``C_in`` / ``C_out`` channels.

[D] (docs: Performance, section Where the time goes): on the CPU, PyTorch sends a float32 ``F.linear`` to the
BLAS (MKL in the x86 wheels) and a convolution to oneDNN, which can run the same product at a higher rate (the
two compared there, forward + backward, by ``wrim bench miim_parts``). So on the CPU, for products of at least
`CONV_MIN_MACS` multiply-adds, the tokens are laid out channel-first, ``(B, N, C_in) -> (B, C_in, N, 1)``, and
convolved with the Linear's own weight viewed as ``(C_out, C_in, 1, 1)``; the result is returned as a
``(B, N, C_out)`` view of the contiguous ``(B, C_out, N)`` product, the layout the MIIM gate needs next
([`MIIM`][wrim.layers.MIIM]). Other devices, smaller products, TorchScript, and graphs being compiled, exported
or traced (whose compilers choose their own kernels, and whose batch size may be symbolic) call ``F.linear``. The
parameters, the state dict, forward hooks and the values (up to float rounding) are those of ``nn.Linear``.
"""

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["CONV_MIN_MACS", "TokenLinear", "token_linear"]

#: Products smaller than this many multiply-adds (tokens x C_in x C_out) stay on ``F.linear``: below it the layout
#: change costs more than the faster kernel saves (products on both sides of it are timed in docs: Performance,
#: section Where the time goes) [D].
CONV_MIN_MACS = 2**25


def token_linear(tokens: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """``F.linear(tokens, weight, bias)`` for (B, N, C_in) tokens; on the CPU a 1×1 convolution ([D], above) from
    `CONV_MIN_MACS` multiply-adds on.

    Args:
        tokens: (B, N, C_in).
        weight: (C_out, C_in).
        bias: (C_out,) or None.

    Returns:
        (B, N, C_out); as a convolution, a transposed view of a contiguous (B, C_out, N) tensor.
    """
    if torch.jit.is_scripting():  # TorchScript compiles only this branch
        return F.linear(tokens, weight, bias)
    else:  # noqa: RET505 - the else keeps the rest out of TorchScript's compilation
        # compile, export and ONNX see the plain op, before any test of a (possibly symbolic) batch size
        if torch.compiler.is_compiling() or torch.jit.is_tracing() or tokens.device.type != "cpu" or tokens.dim() != 3:
            return F.linear(tokens, weight, bias)
        if tokens.shape[0] * tokens.shape[1] * weight.numel() < CONV_MIN_MACS:
            return F.linear(tokens, weight, bias)
        grid = tokens.transpose(1, 2).contiguous().unsqueeze(-1)  # (B, C_in, N, 1)
        out = F.conv2d(grid, weight.unsqueeze(-1).unsqueeze(-1), bias)  # (B, C_out, N, 1)
        return out.squeeze(-1).transpose(1, 2)  # (B, N, C_out), a view


torch.fx.wrap("token_linear")  # a device-dependent branch: one node in an fx graph


class TokenLinear(nn.Linear):
    """``nn.Linear`` whose forward is `token_linear` (forward hooks, parameters and state dict unchanged).

    Shapes: (B, N, C_in) -> (B, N, C_out); other ranks go to ``F.linear``.
    """

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, N, C_in) -> (B, N, C_out)."""
        return token_linear(tokens, self.weight, self.bias)
