"""MIIM - Multi-dimension Interactive Information Mining: compress, interact globally, restore as a gate.

Shapes: ``B`` batch, ``C`` input channels, ``H, W`` input size, ``r`` channel reduction, ``s`` spatial stride,
``C' = C / r``, ``h = ⌈H / s⌉``, ``w = ⌈W / s⌉``, ``N = h·w`` region tokens.

docs: The paper, section MIIM ("MIIM = Spatial-Channel Compression → GRI → Spatial-Channel Restore"):

```text
F2  = Conv_{s×s, stride s}(X)                       SCC: C → C', H×W → h×w        [P][N]
F4  = GRI(F2)                                       region interaction, (B, N, C')  [P][N]
G   = Up_s(σ(Linear_{C'→C}(F4)))                    SCR: a (B, C, H, W) gate        [N] (+ gate use [D])
Out = X + γ ⊙ BN_{affine=False}(X ⊙ G)              re-weighting + residual         [D]
```

``combine`` chooses the last line ([D], the paper does not give it): ``"add"`` (above, the default),
``"add_relu"`` ``Out = ReLU(X + γ ⊙ BN(X ⊙ G))`` (the ReLU of the [N] module list after the sum, as in a ResNet
block) or ``"gate"`` ``Out = γ ⊙ BN(X ⊙ G)`` (re-weighting only, no residual).

``gate`` chooses where ``G`` comes from ([D], controls for ablations; see
docs: Layers, section Gate modes and interventions): ``"learned"`` (above, the paper's block), ``"constant"``
(``G = gate_value`` everywhere: no compression, GRI or restore, so the block is ``X + BN(X ⊙ c)``, which is
``X + BN(X)`` but for BatchNorm's ε) or ``"static"`` (``G = σ(Θ)`` with ``Θ`` a trained (C, h, w) parameter
initialised to 0: a learned re-weighting of channels and regions that is the same for every image).

Test-time interventions change a trained block's gate inside a ``with miim.intervene(...)`` block and restore the
block exactly when it ends: ``"removed"`` (``Out = X``), ``"channel_mean"`` (``G`` replaced by one given value per
channel), ``"channel_only"`` (``G`` averaged over the ``h × w`` regions of each image), ``"spatial_only"`` (``G``
averaged over the channels of each region), or any callable ``(B, C, h, w) -> (B, C, h, w)`` on the gate.

``γ`` is 1 (the paper's form) unless ``init_values`` is given: then it is a learnable per-channel scale
initialised to ``init_values`` (LayerScale, Touvron et al. 2021) [D]. ``init_values=0`` makes a fresh MIIM the
identity, so inserting it into a pretrained network leaves that network's outputs unchanged at step 0
(docs: Layers, "Inserting MIIM into a pretrained network").

The gate re-weights the input in space and channel at once. The nearest upsampling ``Up_s`` is never materialised
when ``s`` divides ``H`` and ``W``: the (h, w) gate broadcasts over s×s blocks of a view of ``X``.

Sizes that ``s`` does not divide: ``X`` is zero-padded at the bottom and right to ``(h·s, w·s)`` for the
compression only (every pixel belongs to a region; border regions see the zeros), and the upsampled gate is
cropped back to ``H×W``. The output always has the input's shape.
"""

import contextlib
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from wrim._checks import checks_enabled
from wrim.layers.gri import GRI, resolve_num_heads
from wrim.layers.token_linear import TokenLinear

__all__ = [
    "COMBINES",
    "GATES",
    "INTERVENTIONS",
    "MIIM",
    "combine_output",
    "folded_norm",
    "folded_tail",
    "gate_change",
    "reweight",
]

#: The ways ``MIIM`` combines its input with the normalised re-weighted map (``combine`` argument).
COMBINES: tuple[str, ...] = ("add", "add_relu", "gate")

#: Where a MIIM's gate comes from (``gate`` argument): the image (the paper), a constant, or a trained (C, h, w) map.
GATES: tuple[str, ...] = ("learned", "constant", "static")

#: The named test-time interventions of ``MIIM.intervene`` (a callable on the gate is accepted too).
INTERVENTIONS: tuple[str, ...] = ("removed", "channel_mean", "channel_only", "spatial_only")

#: A change of a (B, C, h, w) gate into another of the same shape.
GateChange = Callable[[torch.Tensor], torch.Tensor]


def combine_output(x: torch.Tensor, normed: torch.Tensor, combine: str) -> torch.Tensor:
    """The MIIM output from ``X`` and ``BN(X ⊙ G)``, both (B, C, H, W): ``X + ·``, ``ReLU(X + ·)`` or ``·``."""
    normed = normed.to(x.dtype)
    if combine == "add":
        return x + normed
    if combine == "add_relu":
        return F.relu(x + normed)
    return normed


def pad_to_multiple(x: torch.Tensor, stride: int) -> torch.Tensor:
    """Zero-pad a (B, C, H, W) map at the bottom and right to ``(⌈H/s⌉·s, ⌈W/s⌉·s)`` (unchanged when ``s`` divides)."""
    height, width = x.shape[-2:]
    pad_h, pad_w = -height % stride, -width % stride
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h))  # (B, C, h·s, w·s)
    return x


def reweight(x: torch.Tensor, gate: torch.Tensor, stride: int, shift: torch.Tensor | None = None) -> torch.Tensor:
    """``X ⊙ Up_s(G)`` (``+ b`` given ``shift``): a map times a low-resolution gate, nearest-upsampled by ``stride``.

    One pass over ``X``: the upsampling is a broadcast over s×s blocks of a view where ``s`` divides the map, and the
    shift is added in the same kernel (``addcmul``).

    Args:
        x: the input map, (B, C, H, W).
        gate: the gate, (B, C, ⌈H/s⌉, ⌈W/s⌉).
        stride: the upsampling factor ``s``.
        shift: None, or a per-channel shift ``b`` added to the product, (B, C) or (1, C).

    Returns:
        (B, C, H, W), in ``x``'s memory format.
    """
    batch, channels, height, width = x.shape
    if stride != 1 and height % stride == 0 and width % stride == 0:
        grid_h, grid_w = gate.shape[-2:]
        blocks = x.reshape(batch, channels, grid_h, stride, grid_w, stride)  # (B, C, h, s, w, s), a view
        block_gate = gate[:, :, :, None, :, None]  # (B, C, h, 1, w, 1)
        if shift is None:
            return (blocks * block_gate).reshape(batch, channels, height, width)
        out = torch.addcmul(shift[:, :, None, None, None, None], blocks, block_gate)  # (B, C, h, s, w, s)
        return out.reshape(batch, channels, height, width)
    if stride != 1:
        gate = F.interpolate(gate, scale_factor=float(stride), mode="nearest")[:, :, :height, :width]  # (B, C, H, W)
    if shift is None:
        return x * gate
    return torch.addcmul(shift[:, :, None, None], x, gate)  # (B, C, H, W)


def folded_norm(norm: nn.BatchNorm2d, gamma: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """An eval-mode non-affine BatchNorm (and the branch scale ``γ``) as one scale and shift, (C,) and (C,).

    ``γ ⊙ BN(y) = γ ⊙ (y - μ) / sqrt(σ² + ε) = y ⊙ a + b`` with ``a = γ / sqrt(σ² + ε)`` and ``b = -μ a`` from the
    running statistics (in the buffers' dtype).
    """
    scale = torch.rsqrt(norm.running_var + norm.eps)  # (C,)
    if gamma is not None:
        scale = scale * gamma
    return scale, -norm.running_mean * scale


def folded_tail(
    x: torch.Tensor, gate: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor, stride: int, combine: str
) -> torch.Tensor:
    """The eval-mode MIIM output in one pass over ``X`` ([D], the same maths as ``combine_output``).

    With the folded ``γ ⊙ BN(y) = y ⊙ a + b`` (`folded_norm`), ``X + γ ⊙ BN(X ⊙ Up(G)) = X ⊙ Up(1 + a ⊙ G) + b``:
    the factor ``1 + a ⊙ G`` is computed on the low-resolution gate, and one ``addcmul`` over the full map gives the
    output (``"gate"``: ``X ⊙ Up(a ⊙ G) + b``; ``"add_relu"``: its ReLU).

    Args:
        x: the input map, (B, C, H, W).
        gate: the low-resolution gate, (B, C, h, w).
        scale: ``a``, (B, C) or (1, C).
        shift: ``b``, (B, C) or (1, C).
        stride: the gate's upsampling factor.
        combine: one of `COMBINES`.

    Returns:
        (B, C, H, W) in ``x``'s dtype.
    """
    factor = gate * scale[:, :, None, None]  # (B, C, h, w)
    if combine != "gate":
        factor = factor + 1
    out = reweight(x, factor, stride, shift)  # (B, C, H, W)
    if combine == "add_relu":
        out = F.relu(out)
    return out.to(x.dtype)


def gate_change(change: str | GateChange, channel_mean: torch.Tensor | None = None) -> GateChange | None:
    """The gate function of an intervention (``None`` for ``"removed"``, which bypasses the gate).

    ``"channel_mean"``: ``G'_{bcij} = m_c`` (``channel_mean``, (C,)); ``"channel_only"``: ``G'_{bcij} = mean_{ij}
    G_{bcij}``; ``"spatial_only"``: ``G'_{bcij} = mean_c G_{bcij}``; a callable is used as given.

    Raises:
        ValueError: an unknown name, or ``"channel_mean"`` without its (C,) values.
    """
    if callable(change):
        return change
    if change not in INTERVENTIONS:
        raise ValueError(f"intervention must be one of {INTERVENTIONS} or a callable on the gate; got {change!r}")
    if change == "removed":
        return None
    if change == "channel_mean":
        if channel_mean is None or channel_mean.dim() != 1:
            raise ValueError("intervene('channel_mean') needs channel_mean=, a (C,) tensor of gate values")
        values = channel_mean.detach()
        return lambda gate: values.to(gate)[None, :, None, None].expand_as(gate)  # (B, C, h, w)
    if change == "channel_only":
        return lambda gate: gate.mean(dim=(2, 3), keepdim=True).expand_as(gate)  # (B, C, h, w)
    return lambda gate: gate.mean(dim=1, keepdim=True).expand_as(gate)  # spatial_only: (B, C, h, w)


torch.fx.wrap("reweight")  # size-dependent branches: one node in an fx graph
torch.fx.wrap("pad_to_multiple")


class MIIM(nn.Module):
    """Multi-dimension Interactive Information Mining block (docs: The paper, section MIIM).

    Shapes: (B, C, H, W) -> (B, C, H, W).
    """

    __jit_unused_properties__ = ["fused_attn"]  # a Python property over ``gri.fused_attn``

    def __init__(
        self,
        channels: int,
        reduction: int = 2,
        stride: int = 1,
        num_heads: int | None = None,
        kv_pool: int = 1,
        pos_embed: str | None = "sincos",
        qkv_bias: bool = False,
        attn_residual: bool = True,
        attn_residual_pos_embed: bool = True,
        out_norm: bool = True,
        combine: str = "add",
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        init_values: float | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        gate: str = "learned",
        gate_value: float = 0.5,
        gate_grid: tuple[int, int] | None = None,
    ) -> None:
        """
        Args:
            channels: input (and output) channels ``C``.
            reduction: channel reduction ``r`` of the compression conv (paper placements: 2, 2, 4, 4); the compressed
                width is ``C' = C // r`` (rounded down where ``r`` does not divide ``C``, e.g. 61 channels). [D]
            stride: kernel size and stride ``s`` of the compression conv (paper placements: 4, 2, 1, 1).
            num_heads: GRI heads; must divide ``C / r``. None (default): 8 as in [N], or the largest divisor of
                ``C / r`` below 8 when 8 does not divide it. [D]
            kv_pool: GRI key/value pooling factor, 1 = none. [D]
            pos_embed: ``"sincos"`` or ``None``. [D]
            qkv_bias: bias in GRI's qkv projection ([N]: none).
            attn_residual: GRI adds attention to its input tokens. [D]
            attn_residual_pos_embed: GRI's residual carries the positional encoding (see
                [`GRI`][wrim.layers.GRI] ``residual_pos_embed``). [D] True.
            out_norm: normalise the re-weighted branch with a non-affine BatchNorm before the residual sum
                ([N] shows a non-affine BatchNorm in each block; where it sits is [D]).
            combine: ``"add"`` ``X + BN(X ⊙ G)``, ``"add_relu"`` ``ReLU(X + BN(X ⊙ G))`` or ``"gate"``
                ``BN(X ⊙ G)``. [D] ``"add"`` (the [N] module list shows a ReLU whose place is not known).
            attn_drop: attention dropout.
            proj_drop: GRI output-projection dropout.
            init_values: None (default) keeps the paper's ``X + BN(X ⊙ G)``; a float adds a learnable per-channel
                scale ``γ`` on the branch, initialised to it (0: a fresh MIIM is the identity). [D]
            device: parameter device.
            dtype: parameter dtype.
            gate: keyword-only. ``"learned"`` (the paper: SCC → GRI → SCR on the image), ``"constant"``
                (``G = gate_value``; the compression, GRI and restore are not built) or ``"static"`` (``G = σ(Θ)``,
                ``Θ`` a trained (C, h, w) parameter starting at 0, the same for every image; needs ``gate_grid``).
                [D] controls.
            gate_value: the constant gate's value, in (0, 1].
            gate_grid: ``(h, w)``, the region grid of the static gate (``⌈H/s⌉ × ⌈W/s⌉`` of the maps it will see).
        """
        super().__init__()
        _check_arguments(channels, reduction, stride, combine)
        _check_gate(gate, gate_value, gate_grid)
        factory = {"device": device, "dtype": dtype}
        self.channels = channels
        self.reduction = reduction
        self.stride = stride
        self.combine = combine
        self.gate_mode = gate
        self.gate_value = float(gate_value)
        self._interventions: tuple[str | GateChange, ...] = ()  # the active ones, outermost first (``intervene``)
        dim = channels // reduction
        num_heads = resolve_num_heads(dim, num_heads, f"dim = channels // reduction = {channels} // {reduction}")
        learned = gate == "learned"
        self.compress = nn.Conv2d(channels, dim, kernel_size=stride, stride=stride, **factory) if learned else None
        self.gri = (
            GRI(
                dim,
                num_heads=num_heads,
                kv_pool=kv_pool,
                pos_embed=pos_embed,
                qkv_bias=qkv_bias,
                residual=attn_residual,
                residual_pos_embed=attn_residual_pos_embed,
                attn_drop=attn_drop,
                proj_drop=proj_drop,
                **factory,
            )
            if learned
            else None
        )
        self.restore = TokenLinear(dim, channels, **factory) if learned else None
        logits = torch.zeros((channels, *gate_grid), **factory) if gate == "static" else None
        self.gate_logits = None if logits is None else nn.Parameter(logits)  # Θ, (C, h, w): σ(0) = ½ at the start
        self.norm = nn.BatchNorm2d(channels, affine=False, **factory) if out_norm else nn.Identity()
        gamma = None if init_values is None else torch.full((channels,), float(init_values), **factory)
        self.gamma = None if gamma is None else nn.Parameter(gamma)

    @property
    def fused_attn(self) -> bool:
        """Whether GRI uses the fused SDPA path (settable; always False for a gate without GRI)."""
        return self.gri is not None and self.gri.fused_attn

    @fused_attn.setter
    def fused_attn(self, enable: bool) -> None:
        if self.gri is not None:
            self.gri.fused_attn = enable

    @torch.jit.unused
    def check_input(self, x: torch.Tensor) -> None:
        """Raise a ValueError unless ``x`` is a (B, channels, H, W) tensor."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{type(self).__name__} expects a torch.Tensor; got {type(x).__name__}")
        if x.dim() != 4:
            raise ValueError(
                f"{type(self).__name__} expects a 4-D (B, C, H, W) feature map; got shape {tuple(x.shape)}"
            )
        if x.shape[1] != self.channels:
            raise ValueError(
                f"{type(self).__name__} was built for {self.channels} channels but the input has {x.shape[1]} "
                f"(shape {tuple(x.shape)}); build it with channels={x.shape[1]}"
            )

    @torch.jit.unused
    def folds_norm(self) -> bool:
        """Whether the output BatchNorm is folded into the gate (eval mode with running statistics)."""
        norm = self.norm  # any eval-mode BatchNorm with running statistics (SyncBatchNorm too: the same maths)
        return not self.training and isinstance(norm, nn.modules.batchnorm._BatchNorm) and norm.running_var is not None

    def gate(self, x: torch.Tensor) -> torch.Tensor:
        """The gate without the upsampling, (B, C, H, W) -> (B, C, ⌈H/s⌉, ⌈W/s⌉) in (0, 1]: SCC → GRI → SCR
        (``"learned"``), ``σ(Θ)`` (``"static"``) or the constant; changed by an active intervention."""
        batch = x.shape[0]
        grid_h, grid_w = -(-x.shape[2] // self.stride), -(-x.shape[3] // self.stride)
        if self.compress is not None and self.gri is not None and self.restore is not None:
            compressed = self.compress(pad_to_multiple(x, self.stride))  # (B, C', h, w)
            tokens = self.gri(compressed)  # (B, N, C')
            gate = torch.sigmoid(self.restore(tokens))  # (B, N, C)
            gate = gate.view(batch, grid_h, grid_w, self.channels).permute(0, 3, 1, 2)  # (B, C, h, w)
        elif self.gate_logits is not None:
            if not torch.jit.is_scripting():
                self._check_static_grid(grid_h, grid_w)
            gate = torch.sigmoid(self.gate_logits).to(x.dtype)[None].expand(batch, -1, -1, -1)  # (B, C, h, w)
        else:
            gate = x.new_full((batch, self.channels, grid_h, grid_w), self.gate_value)  # (B, C, h, w)
        if not torch.jit.is_scripting():  # noqa: SIM102 (TorchScript skips only this test alone, never compiling the body)
            if self._interventions:
                gate = self._changed_gate(gate)
        return gate

    @torch.jit.unused
    def _check_static_grid(self, grid_h: int, grid_w: int) -> None:
        expected = tuple(self.gate_logits.shape[1:])
        if (grid_h, grid_w) != expected:
            raise ValueError(
                f"this MIIM's static gate was trained on a {expected[0]}x{expected[1]} region grid; the input gives "
                f"{grid_h}x{grid_w} (stride {self.stride}): feed maps of the training size"
            )

    @torch.jit.unused
    def _changed_gate(self, gate: torch.Tensor) -> torch.Tensor:
        for change in self._interventions:  # outermost first: an inner change sees the outer one's gate
            if not isinstance(change, str):
                gate = change(gate)
        return gate

    @torch.jit.unused
    def removed(self) -> bool:
        """Whether an active ``intervene("removed")`` takes this block out (``Out = X``)."""
        return any(isinstance(change, str) for change in self._interventions)

    @contextlib.contextmanager
    def intervene(self, change: str | GateChange, channel_mean: torch.Tensor | None = None) -> Iterator["MIIM"]:
        """Change the gate until the ``with`` block ends; then restore the block exactly (parameters, buffers such
        as re-estimated BatchNorm statistics, and train / eval modes). Interventions nest: an inner one changes the
        gate that the outer one made (``wrim.visualize.capture_gates`` records the gate of an intervened block so).

        Examples:
            ```python
            with miim.intervene("channel_only"):
                out = miim(x)                                # G averaged over the regions of each image
            ```

        Args:
            change: ``"removed"`` (``Out = X``), ``"channel_mean"`` (``G`` = ``channel_mean`` per channel),
                ``"channel_only"``, ``"spatial_only"``, or a callable (B, C, h, w) -> (B, C, h, w) on the gate.
            channel_mean: (C,) gate values for ``"channel_mean"``.
        """
        changed = gate_change(change, channel_mean)
        state = {name: value.detach().clone() for name, value in self.state_dict().items()}
        modes = [module.training for module in self.modules()]
        outer = self._interventions
        self._interventions = (*outer, "removed" if changed is None else changed)
        try:
            yield self
        finally:
            self._interventions = outer
            self.load_state_dict(state)
            for module, mode in zip(self.modules(), modes):
                module.training = mode

    def describe_gate(self) -> str:
        """The gate mode in words: ``"learned"``, ``"constant 0.5"`` or ``"static 8x4"``."""
        if self.gate_mode == "constant":
            return f"constant {self.gate_value:g}"
        if self.gate_logits is not None:
            return f"static {self.gate_logits.shape[1]}x{self.gate_logits.shape[2]}"
        return self.gate_mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        if not torch.jit.is_scripting():  # TorchScript skips this branch, never compiles it
            if checks_enabled():
                self.check_input(x)
            if self._interventions and self.removed():
                return x
            if self.folds_norm():  # eval: one pass over x ([D], folded_tail); the scripted module keeps the passes
                scale, shift = folded_norm(self.norm, self.gamma)  # (C,), (C,)
                return folded_tail(x, self.gate(x), scale[None], shift[None], self.stride, self.combine)
        reweighted = reweight(x, self.gate(x), self.stride)  # (B, C, H, W)
        branch = self.norm(reweighted)  # (B, C, H, W)
        if self.gamma is not None:
            branch = branch * self.gamma.view(1, -1, 1, 1)
        return combine_output(x, branch, self.combine)

    def extra_repr(self) -> str:
        described = f"channels={self.channels}, reduction={self.reduction}, stride={self.stride}"
        if self.gri is None:
            return f"{described}, gate={self.describe_gate()!r}"
        return f"{described}, num_heads={self.gri.num_heads}"


def _check_arguments(channels: int, reduction: int, stride: int, combine: str) -> None:
    """Raise a ValueError for a reduction outside [1, channels], a stride below 1 or an unknown combine."""
    if reduction < 1 or channels < reduction:
        raise ValueError(
            f"reduction must be between 1 and channels (dim = channels // reduction >= 1); got "
            f"channels={channels}, reduction={reduction}"
        )
    if stride < 1:
        raise ValueError(f"stride must be >= 1; got {stride}")
    if combine not in COMBINES:
        raise ValueError(f"combine must be one of {COMBINES}; got {combine!r}")


def _check_gate(gate: str, gate_value: float, gate_grid: tuple[int, int] | None) -> None:
    """Raise a ValueError for an unknown gate mode, a constant outside (0, 1] or a static gate without its grid."""
    if gate not in GATES:
        raise ValueError(f"gate must be one of {GATES}; got {gate!r}")
    if gate == "constant" and not 0.0 < float(gate_value) <= 1.0:
        raise ValueError(f"gate_value must be in (0, 1] (a sigmoid gate's range); got {gate_value!r}")
    if gate == "static":
        grid = tuple(gate_grid) if isinstance(gate_grid, (tuple, list)) else ()
        if len(grid) != 2 or not all(isinstance(v, int) and v >= 1 for v in grid):
            raise ValueError(
                f"gate='static' needs gate_grid=(h, w), the region grid ⌈H/s⌉ x ⌈W/s⌉ it will see; got {gate_grid!r}"
            )
