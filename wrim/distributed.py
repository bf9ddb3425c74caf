r"""Cross-rank collectives: N processes compute what one process computes on the whole batch (docs/training.md).

Process-group setup (``torchrun``, ``RANK``/``WORLD_SIZE``) lives in `wrim.engine.distributed`; this module holds
the pieces the losses, layers and evaluation use. Every function is a no-op without an initialised process group
(a single process), so losses and layers stay usable anywhere.

[D] Gradient bookkeeping under DDP (docs/training.md#multi-gpu-and-multi-node-torchrun-ddp). Rank ``r`` holds
the shard ``x_r`` of the global batch and DDP averages the parameter gradients of the per-rank losses. With
`all_gather_with_grad()` every rank computes the same global metric loss ``M`` of all shards; its backward sums the
incoming gradients over ranks, so rank ``r`` receives ``N`` times the gradient of ``M`` with respect to ``x_r``:

$$
\frac{1}{N} \sum_{r} \sum_{q} \frac{\partial M}{\partial x_r} \frac{\partial x_r}{\partial \theta}
= \sum_r \frac{\partial M}{\partial x_r} \frac{\partial x_r}{\partial \theta}
= \frac{\partial M}{\partial \theta}
$$

so the DDP average is exactly the single-process gradient and no loss scaling is needed (pytorch-metric-learning's
``DistributedLossWrapper`` instead keeps gradient on the local rows only and multiplies the loss by N). The same
argument holds for the all-reduced batch-norm sums of `CrossRankBatchNorm` and ``ModalityMIIM``. A per-sample mean
computed per rank (the ID cross-entropy) averages to the global mean when every rank holds the same number of
samples, which `wrim.data.IdentityModalitySampler` guarantees.

Shape legend: ``n`` rows on this rank, ``N`` ranks, ``D`` feature size, ``C`` channels.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

__all__ = [
    "CrossRankBatchNorm",
    "all_gather_with_grad",
    "all_reduce_with_grad",
    "convert_sync_batchnorm",
    "gather_shards",
    "is_distributed",
    "shard_range",
]


def is_distributed() -> bool:
    """Whether a process group with more than one rank is active."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class _AllGatherWithGrad(torch.autograd.Function):
    """Concatenate every rank's (n, ...) tensor in rank order; backward sums the gradients over ranks."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # (n, ...) -> (N * n, ...)
        world = dist.get_world_size()
        parts = [torch.empty_like(x) for _ in range(world)]
        dist.all_gather(parts, x.contiguous())
        ctx.rows, ctx.rank = x.shape[0], dist.get_rank()
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # (N * n, ...) -> (n, ...)
        grad = grad.contiguous()
        dist.all_reduce(grad)  # every rank's loss may depend on this rank's rows
        return grad[ctx.rank * ctx.rows : (ctx.rank + 1) * ctx.rows]


def all_gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Every rank's rows in rank order, with gradient flowing back to the rows' owner. (n, ...) -> (N * n, ...).

    Every rank must pass the same shape (equal shards; gloo and NCCL require it). Integer tensors (labels,
    modalities) are gathered without gradient. A single process returns ``x`` itself.
    """
    if not is_distributed():
        return x
    if not x.is_floating_point():
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts)
    return _AllGatherWithGrad.apply(x)


class _AllReduceWithGrad(torch.autograd.Function):
    """Sum over ranks; the backward sums the incoming gradients over ranks (every rank's loss reads the sum)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # (...) -> (...)
        out = x.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # (...) -> (...)
        grad = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(grad)
        return grad


def all_reduce_with_grad(x: torch.Tensor) -> torch.Tensor:
    """The sum of ``x`` over ranks; backward sums the gradients over ranks. Identity in a single process."""
    if not is_distributed():
        return x
    return _AllReduceWithGrad.apply(x)


def shard_range(total: int, rank: int | None = None, world_size: int | None = None) -> range:
    """The contiguous block of ``range(total)`` that ``rank`` handles (the first ``total % N`` ranks get one more).

    Defaults to this process's rank and world size (0 and 1 without a process group).
    """
    if world_size is None:
        world_size = dist.get_world_size() if is_distributed() else 1
    if rank is None:
        rank = dist.get_rank() if is_distributed() else 0
    base, extra = divmod(total, world_size)
    start = rank * base + min(rank, extra)
    return range(start, start + base + (rank < extra))


def gather_shards(x: torch.Tensor, total: int) -> torch.Tensor:
    """Reassemble the `shard_range()` blocks of every rank in order, on every rank. (n_r, D) -> (total, D).

    Unequal blocks are padded to the largest for the all_gather (gloo and NCCL need equal shapes) and trimmed after.
    No gradient. A single process returns ``x``.
    """
    if not is_distributed():
        return x
    world = dist.get_world_size()
    sizes = [len(shard_range(total, r, world)) for r in range(world)]
    if x.shape[0] != sizes[dist.get_rank()]:
        raise ValueError(f"this rank holds {x.shape[0]} rows; shard_range({total}) gives it {sizes[dist.get_rank()]}")
    padded = x.new_zeros((max(sizes), *x.shape[1:]))  # (max n_r, D)
    padded[: x.shape[0]] = x
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded)
    return torch.cat([part[:size] for part, size in zip(parts, sizes)])  # (total, D)


class CrossRankBatchNorm(_BatchNorm):
    r"""BatchNorm whose training statistics are taken over every rank's batch (any device, gloo or NCCL).

    [D] In training under an active process group, per channel ``c`` (two all-reduces with gradient; the second
    pass keeps the variance numerically sound):

    $$
    n = \sum_r n_r,\quad \mu_c = \frac{1}{n} \sum_r \sum_{i \in r} x_{ic},\quad
    \sigma^2_c = \frac{1}{n} \sum_r \sum_{i \in r} (x_{ic} - \mu_c)^2,\quad
    y_{ic} = \gamma_c \frac{x_{ic} - \mu_c}{\sqrt{\sigma^2_c + \epsilon}} + \beta_c
    $$

    and the running statistics are updated with μ and the unbiased σ² n / (n − 1), as one BatchNorm
    over the concatenated batch would (so every rank keeps the same buffers). Evaluation, or training without a
    process group, is plain ``F.batch_norm``. Statistics are computed in at least float32. On CUDA prefer torch's
    ``nn.SyncBatchNorm`` (what `convert_sync_batchnorm()` picks); this class exists because SyncBatchNorm does not
    run on the CPU.

    Shapes: ``(B, C)`` or ``(B, C, *)`` -> same.
    """

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"CrossRankBatchNorm expects (B, C) or (B, C, ...) input; got shape {tuple(x.shape)}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise ``x`` (B, C, *) -> (B, C, *) with the global batch statistics in training."""
        self._check_input_dim(x)
        if not (self.training and is_distributed()):
            return super().forward(x)
        dims = [d for d in range(x.dim()) if d != 1]
        shape = [1, -1] + [1] * (x.dim() - 2)
        x32 = x.to(torch.promote_types(x.dtype, torch.float32))  # (B, C, *)
        count = x32.new_full((1,), x.numel() // x.shape[1])  # (1,) elements per channel on this rank
        stats = all_reduce_with_grad(torch.cat([x32.sum(dims), count]))  # (C + 1,)
        total, mean = stats[-1], stats[:-1] / stats[-1]  # (), (C,)
        centered = x32 - mean.view(shape)  # (B, C, *)
        var = all_reduce_with_grad(centered.square().sum(dims)) / total  # (C,) biased
        if self.track_running_stats and self.running_mean is not None:
            _update_running_stats(self, mean, var, total)
        y = centered * torch.rsqrt(var + self.eps).view(shape)  # (B, C, *)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


@torch.no_grad()
def _update_running_stats(norm: _BatchNorm, mean: torch.Tensor, var: torch.Tensor, count: torch.Tensor) -> None:
    """Update ``norm``'s running mean / var from one batch's moments as torch's BatchNorm does.

    ``mean`` and the biased ``var`` are (C,), ``count`` () the elements per channel they were taken over (all ranks'
    when the moments are global); the running variance takes the unbiased ``var · n / (n - 1)``, ``momentum=None``
    is the cumulative average. A ``count`` of 0 (a modality absent from the batch, see ``ModalityMIIM``) leaves
    every buffer unchanged. No host synchronisation.
    """
    present = count > 0
    elements = count.to(var.dtype)
    unbiased = var * elements / (elements - 1).clamp(min=1)
    norm.num_batches_tracked.add_(present.long())
    momentum = norm.momentum
    if momentum is None:  # cumulative average
        momentum = (1.0 / norm.num_batches_tracked.clamp(min=1)).to(norm.running_mean.dtype)
    new_mean = torch.lerp(norm.running_mean, mean.to(norm.running_mean.dtype), momentum)
    new_var = torch.lerp(norm.running_var, unbiased.to(norm.running_var.dtype), momentum)
    norm.running_mean.copy_(torch.where(present, new_mean, norm.running_mean))
    norm.running_var.copy_(torch.where(present, new_var, norm.running_var))


def _cross_rank_copy(bn: _BatchNorm) -> CrossRankBatchNorm:
    new = CrossRankBatchNorm(bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats)
    new.to(device=bn.running_mean.device if bn.running_mean is not None else None)
    with torch.no_grad():
        if bn.affine:
            new.weight, new.bias = bn.weight, bn.bias
        if bn.track_running_stats:
            new.running_mean, new.running_var = bn.running_mean, bn.running_var
            new.num_batches_tracked = bn.num_batches_tracked
    new.train(bn.training)
    return new


def convert_sync_batchnorm(module: nn.Module, device: torch.device | str) -> nn.Module:
    """Make every BatchNorm of ``module`` use statistics over all ranks (the cross-rank part of ``model.sync_bn``).

    On CUDA the BatchNorm layers become torch's ``nn.SyncBatchNorm``; elsewhere `CrossRankBatchNorm`. Every
    ``wrim.layers.ModalityMIIM`` gets ``sync_stats = True`` (per-modality statistics over all ranks). Returns the
    converted module (the same object when only attributes changed); a no-op for the statistics in a single process.
    """
    from wrim.layers.modality_miim import ModalityMIIM

    for sub in module.modules():
        if isinstance(sub, ModalityMIIM):
            sub.sync_stats = True
    if torch.device(device).type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    if isinstance(module, _BatchNorm) and not isinstance(module, (nn.SyncBatchNorm, CrossRankBatchNorm)):
        return _cross_rank_copy(module)
    for name, child in module.named_children():
        converted = convert_sync_batchnorm(child, device)
        if converted is not child:
            setattr(module, name, converted)
    return module
