"""ModalityMIIM - the paper's *separate* MIIM: one MIIM per modality, each sample routed to its own copy.

Shapes: ``B`` batch, ``C`` channels, ``H, W`` map size, ``h, w`` the MIIM's token grid; ``modalities: (B,)`` with
``wrim.VISIBLE = 0`` and ``wrim.INFRARED = 1``.

docs: The paper, section Separate and shared MIIMs ([P][N]): the shallow MIIMs are modality-specific - a visible and an
infrared copy with separate weights.
[D] routing is by a per-sample ``modalities`` tensor, so any batch order and single-modality batches work.

Routing keeps every shape static (no ``nonzero``, no data-dependent sub-batches, so ``torch.compile`` sees one
graph). The low-resolution gate ``G_b = G^{m_b}(X_b)`` (SCC → GRI → SCR) has no batch coupling, so two exact
formulations exist ([D]):

- ``num_visible=None`` (any mix, any order): each copy's gate is computed for the whole batch and selected per
  sample, ``G_b = m_b ? G^{ir}(X)_b : G^{vis}(X)_b``; half of that gate compute is discarded;
- ``num_visible=n`` (a Python int, a static size): the batch is modality-sorted, rows ``[0, n)`` visible and
  ``[n, B)`` infrared, and each copy runs once on its own contiguous rows (views, no copy of ``X``),
  ``G = cat(G^{vis}(X_{:n}), G^{ir}(X_{n:}))``. [`WRIMNet`][wrim.models.WRIMNet] sorts the (3-channel) images
  at its input and un-sorts its outputs, so its callers keep any order.

The full-resolution tail ``X + BN^{m}(X ⊙ Up(G))`` runs once for the whole batch either way, with batch-norm
statistics taken per modality (masked per-modality moments), which equals each copy's BatchNorm on its own
samples, running statistics included.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import NamedTuple

import torch
from torch import nn

from wrim._checks import check_modalities, check_modality_split, checks_enabled
from wrim.distributed import all_reduce_with_grad
from wrim.layers.miim import MIIM, GateChange, combine_output, folded_norm, folded_tail, reweight
from wrim.layers.norm import update_running_stats
from wrim.modality import INFRARED, VISIBLE

__all__ = ["ModalityBatch", "ModalityMIIM", "miim_placements"]

torch.fx.wrap("reweight")
torch.fx.wrap("_per_modality_moments")  # one call in fx graphs: torch < 2.4 cannot trace promote_types(y.dtype)


class ModalityBatch(NamedTuple):
    """The modalities of one batch as one value: what a [`ModalityMIIM`][wrim.layers.ModalityMIIM] routes by.

    A network that validates its inputs once (``WRIMNet``) builds one with `ModalityBatch.of` and hands the same
    value to each of its ModalityMIIMs, which then check nothing again.
    """

    ids: torch.Tensor  # (B,) 0 = visible, 1 = infrared
    num_visible: int | None = None  # a modality-sorted batch's visible count (rows [0, n) visible); None: any order
    checked: bool = False  # ids (a (B,) long tensor on the maps' device) and num_visible were validated

    @classmethod
    def of(cls, ids: torch.Tensor, num_visible: int | None = None, checked: bool = False) -> ModalityBatch:
        """A batch of ``ids``; under ``torch.fx`` symbolic tracing a traced ``num_visible`` is dropped (the graph
        holds the any-order formulation, whose values are the same)."""
        if isinstance(num_visible, torch.fx.Proxy):
            num_visible = None
        return cls(ids, num_visible, checked)

    @classmethod
    def given(cls, modalities: torch.Tensor | ModalityBatch, num_visible: int | None, checked: bool) -> ModalityBatch:
        """What a ``forward(x, modalities, num_visible, checked=...)`` was given, as one value: a ``ModalityBatch``
        as it is (which carries its own ``num_visible`` and ``checked``), ids through `of`.

        Raises:
            TypeError: a ``ModalityBatch`` together with ``num_visible`` or ``checked``.
        """
        if not isinstance(modalities, ModalityBatch):
            return cls.of(modalities, num_visible, checked)
        if num_visible is not None or checked:
            raise TypeError(
                "a ModalityBatch carries its own num_visible and checked: leave the num_visible and checked "
                "arguments at their defaults (None, False)"
            )
        return modalities

    def validated(self, batch_size: int, device: torch.device) -> ModalityBatch:
        """This batch, checked (eagerly; a no-op under fx tracing): ``batch_size`` ids of 0 / 1 as a long tensor
        on ``device``, and ``num_visible`` visible ids first when it is given.

        Raises:
            TypeError / ValueError: as ``wrim._checks.check_modalities`` and ``check_modality_split``.
        """
        if self.checked or not checks_enabled():
            return self
        ids = check_modalities(self.ids, batch_size).to(device)
        if self.num_visible is not None:
            check_modality_split(ids, self.num_visible)
        return ModalityBatch(ids, self.num_visible, True)


class ModalityMIIM(nn.Module):
    """Separate (modality-specific) MIIM: ``forward(x, modalities)``, (B, C, H, W), (B,) -> (B, C, H, W)."""

    def __init__(self, channels: int, **kwargs) -> None:
        """
        Args:
            channels: input (and output) channels ``C``.
            **kwargs: the [`MIIM`][wrim.layers.MIIM] arguments (``reduction``, ``stride``, ``num_heads``,
                ``kv_pool``, ``pos_embed``, ...), shared by both copies.
        """
        super().__init__()
        self.visible = MIIM(channels, **kwargs)
        self.infrared = MIIM(channels, **kwargs)
        self.channels = channels
        self.stride = self.visible.stride
        self.sync_stats = False  # per-modality statistics over all ranks (wrim.layers.convert_sync_batchnorm)

    def branch(self, modality: int) -> MIIM:
        """The MIIM copy of one modality (``wrim.VISIBLE`` or ``wrim.INFRARED``)."""
        if modality == VISIBLE:
            return self.visible
        if modality == INFRARED:
            return self.infrared
        raise ValueError(f"modality must be wrim.VISIBLE (0) or wrim.INFRARED (1); got {modality!r}")

    @property
    def fused_attn(self) -> bool:
        """Whether both copies use the fused SDPA path (settable)."""
        return self.visible.fused_attn and self.infrared.fused_attn

    @fused_attn.setter
    def fused_attn(self, enable: bool) -> None:
        self.visible.fused_attn = enable
        self.infrared.fused_attn = enable

    def forward(
        self,
        x: torch.Tensor,
        modalities: torch.Tensor | ModalityBatch,
        num_visible: int | None = None,
        *,
        checked: bool = False,
    ) -> torch.Tensor:
        """Route each sample through its modality's MIIM: ``X + γ^{m} ⊙ BN^{m}(X ⊙ Up(G^{m}(X)))``.

        Args:
            x: feature map, (B, C, H, W).
            modalities: (B,) ids, 0 = visible, 1 = infrared; or a [`ModalityBatch`][wrim.layers.ModalityBatch],
                which carries ``num_visible`` and ``checked`` itself (then leave both at their defaults).
            num_visible: None for any batch; or the number ``n`` of visible samples of a modality-sorted batch
                (rows ``[0, n)`` visible, ``[n, B)`` infrared; checked), so that each copy's gate runs only on its
                own rows. A Python int: ``torch.compile`` specialises on it.
            checked: keyword-only; the caller has already validated ``x``, ``modalities`` (a (B,) long tensor on
                ``x``'s device) and ``num_visible``, so they are not checked again (check at the entrance, trust
                inside: [`WRIMNet`][wrim.models.WRIMNet] passes True). Direct calls keep the default and are checked.

        Returns:
            (B, C, H, W).
        """
        batch = ModalityBatch.given(modalities, num_visible, checked)
        if checks_enabled() and not batch.checked:
            self.visible.check_input(x)
            batch = batch.validated(x.shape[0], x.device)
        if not torch.jit.is_scripting() and (self.visible.removed() or self.infrared.removed()):
            return self._without_removed(x, batch.ids, batch.num_visible)  # a copy taken out: its rows keep X
        return self._routed(x, batch.ids, batch.num_visible)

    def _routed(self, x: torch.Tensor, modalities: torch.Tensor, num_visible: int | None) -> torch.Tensor:
        """`forward` on validated inputs. (B, C, H, W), (B,) -> (B, C, H, W)."""
        is_infrared = (modalities == INFRARED).view(-1, 1, 1, 1)  # (B, 1, 1, 1)
        gate = self._gate(x, is_infrared, num_visible)  # (B, C, h, w)
        if self.visible.folds_norm():  # eval: one pass over x ([D], wrim.layers.miim.folded_tail)
            folded = [folded_norm(copy.norm, copy.gamma) for copy in (self.visible, self.infrared)]
            scale = torch.stack([folded[0][0], folded[1][0]])[modalities]  # (B, C)
            shift = torch.stack([folded[0][1], folded[1][1]])[modalities]  # (B, C)
            return folded_tail(x, gate, scale, shift, self.stride, self.visible.combine)
        reweighted = reweight(x, gate, self.stride)  # (B, C, H, W)
        if isinstance(self.visible.norm, nn.Identity):
            branch = reweighted
        else:
            branch = self._modality_batch_norm(reweighted, modalities, num_visible)  # (B, C, H, W)
        if self.visible.gamma is not None:
            gamma = torch.where(is_infrared.view(-1, 1), self.infrared.gamma, self.visible.gamma)  # (B, C)
            branch = branch * gamma[:, :, None, None]
        return combine_output(x, branch, self.visible.combine)

    @torch.jit.unused
    def _without_removed(self, x: torch.Tensor, modalities: torch.Tensor, num_visible: int | None) -> torch.Tensor:
        """``Out_b = X_b`` for the samples of a removed copy, the block's output for the others. -> (B, C, H, W)."""
        if self.visible.removed() and self.infrared.removed():
            return x
        keep_input = (modalities == (INFRARED if self.infrared.removed() else VISIBLE)).view(-1, 1, 1, 1)  # (B,1,1,1)
        return torch.where(keep_input, x, self._routed(x, modalities, num_visible))

    @contextlib.contextmanager
    def intervene(self, change: str | GateChange, channel_mean: torch.Tensor | None = None) -> Iterator[ModalityMIIM]:
        """`MIIM.intervene` on both copies until the ``with`` block ends; both are then restored exactly.

        Args:
            change: as for [`MIIM.intervene`][wrim.layers.MIIM.intervene] (``"removed"`` takes the whole block out).
            channel_mean: for ``"channel_mean"``: (C,) for both copies, or (2, C) with the visible copy's values in
                row 0 and the infrared copy's in row 1.
        """
        per_copy = [channel_mean, channel_mean]
        if channel_mean is not None and channel_mean.dim() == 2:
            if channel_mean.shape[0] != 2:
                shape = tuple(channel_mean.shape)
                raise ValueError(f"channel_mean must be (C,) or (2, C) (visible, infrared); got {shape}")
            per_copy = [channel_mean[VISIBLE], channel_mean[INFRARED]]
        with contextlib.ExitStack() as stack:
            for copy, values in zip((self.visible, self.infrared), per_copy):
                stack.enter_context(copy.intervene(change, values))
            yield self

    def describe_gate(self) -> str:
        """The copies' gate mode in words (as [`MIIM.describe_gate`][wrim.layers.MIIM.describe_gate])."""
        return self.visible.describe_gate()

    def _gate(self, x: torch.Tensor, is_infrared: torch.Tensor, num_visible: int | None) -> torch.Tensor:
        """Each sample's gate from its own copy. (B, C, H, W), (B, 1, 1, 1) -> (B, C, h, w)."""
        if num_visible is None:  # any order: both gates for the whole batch, one kept per sample
            return torch.where(is_infrared, self.infrared.gate(x), self.visible.gate(x))
        batch = x.shape[0]
        if num_visible in (0, batch):  # one modality: its copy on the whole batch
            return self.branch(INFRARED if num_visible == 0 else VISIBLE).gate(x)
        x_visible, x_infrared = x.split([num_visible, batch - num_visible])  # views; backward: one cat
        return torch.cat([self.visible.gate(x_visible), self.infrared.gate(x_infrared)])  # (B, C, h, w)

    def _modality_batch_norm(
        self, y: torch.Tensor, modalities: torch.Tensor, num_visible: int | None = None
    ) -> torch.Tensor:
        """Non-affine BatchNorm with per-modality statistics and running buffers. (B, C, H, W) -> (B, C, H, W).

        A modality-sorted batch in training (``num_visible``, one process's statistics) runs each copy's own
        ``BatchNorm2d`` on its rows (views; [D]: PyTorch's fused batch-norm kernels, forward and backward, instead of
        the masked moments below); otherwise:

        ``BN^{m}(y) = (y - μ_m) / sqrt(σ²_m + ε) = y ⊙ s_m + t_m`` with ``s_m = 1 / sqrt(σ²_m + ε)`` and
        ``t_m = -μ_m s_m`` (statistics in at least float32): one pass over the map (``addcmul``), in ``y``'s memory
        format (the folding of PyTorch's own batch_norm kernel), with a float32 result for a bf16 / fp16 ``y``; the
        statistics accumulate in float32 without a float32 copy of ``y``.
        """
        if num_visible is not None and self.training and not self.sync_stats:
            return self._sorted_batch_norm(y, num_visible)
        norms = (self.visible.norm, self.infrared.norm)
        if self.training or norms[0].running_mean is None:
            # statistics in at least float32, without a float32 copy of y: (2, C), (2, C), (2,)
            mean, var, counts = _per_modality_moments(y, modalities, self.sync_stats and self.training)
            if self.training and norms[0].track_running_stats:
                for index, norm in enumerate(norms):  # indexed, not iterated: fx traces this too
                    update_running_stats(norm, mean[index], var[index], counts[index])  # unchanged when count is 0
        else:
            mean = torch.stack([norm.running_mean for norm in norms])  # (2, C)
            var = torch.stack([norm.running_var for norm in norms])
        scale = torch.rsqrt(var + norms[0].eps)[modalities]  # (B, C)
        shift = -mean[modalities] * scale  # (B, C)
        return torch.addcmul(shift[:, :, None, None], y, scale[:, :, None, None])  # (B, C, H, W)

    def _sorted_batch_norm(self, y: torch.Tensor, num_visible: int) -> torch.Tensor:
        """Each copy's BatchNorm on its own rows of a modality-sorted batch. (B, C, H, W) -> (B, C, H, W)."""
        batch = y.shape[0]
        if num_visible in (0, batch):  # one modality: its BatchNorm on the whole batch
            return self.branch(INFRARED if num_visible == 0 else VISIBLE).norm(y)
        visible, infrared = y.split([num_visible, batch - num_visible])  # views
        return torch.cat([self.visible.norm(visible), self.infrared.norm(infrared)])  # (B, C, H, W)


def miim_placements(model: nn.Module) -> dict[str, MIIM | ModalityMIIM]:
    """The MIIM placements of ``model`` by name, in module order: a ``ModalityMIIM`` counts once (its copies are not
    listed), and ``miims.stage1`` of a WRIMNet is ``stage1``."""
    found: dict[str, MIIM | ModalityMIIM] = {}
    inside: set[int] = set()
    for name, module in model.named_modules():
        if isinstance(module, ModalityMIIM):
            found[name.removeprefix("miims.") or "miim"] = module
            inside.update((id(module.visible), id(module.infrared)))
        elif isinstance(module, MIIM) and id(module) not in inside:
            found[name.removeprefix("miims.") or "miim"] = module
    return found


def _per_modality_moments(
    y: torch.Tensor, modalities: torch.Tensor, sync: bool = False
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r"""Per-modality channel mean, biased variance and element count over (samples, H, W).

    (B, C, H, W) any float dtype, (B,) -> (2, C), (2, C), (2,), in float32 (float64 for float64 ``y``).

    [D] Two passes over per-modality sums, each all-reduced over ranks with gradient when ``sync`` and a process
    group is active (`wrim.distributed.all_reduce_with_grad`), so a rank whose shard holds one modality still
    normalises with the global per-modality moments:

    $$
    n_m = \sum_r \sum_{b \in r, m_b = m} HW,\quad \mu_m = \frac{1}{n_m} \sum_r \sum_{b, h, w} y_{bchw},\quad
    \sigma^2_m = \frac{1}{n_m} \sum_r \sum_{b, h, w} (y_{bchw} - \mu_{m})^2
    $$

    The sums accumulate in float32 (``dtype=`` reductions) without a float32 copy of a low-precision map; the
    centred map of the second pass is in ``y``'s dtype. A modality absent from the (global) batch gets mean 0,
    variance 0 and count 0; no sample reads them.
    """
    acc = torch.promote_types(y.dtype, torch.float32)
    onehot = (modalities[:, None] == torch.arange(2, device=modalities.device)).to(acc)  # (B, 2), no value check
    pixels = y.shape[2] * y.shape[3]
    sums = onehot.t() @ y.sum(dim=(2, 3), dtype=acc)  # (2, B) @ (B, C) -> (2, C)
    counts = onehot.sum(0) * pixels  # (2,)
    if sync:
        packed = all_reduce_with_grad(torch.cat([sums, counts[:, None]], dim=1))  # (2, C + 1)
        sums, counts = packed[:, :-1], packed[:, -1]
    mean = sums / counts.clamp(min=1)[:, None]  # (2, C)
    centered = y - mean.to(y.dtype)[modalities][:, :, None, None]  # (B, C, H, W), y's dtype
    squares = onehot.t() @ centered.square().sum(dim=(2, 3), dtype=acc)  # (2, C)
    if sync:
        squares = all_reduce_with_grad(squares)
    var = squares / counts.clamp(min=1)[:, None]  # (2, C)
    return mean, var, counts
