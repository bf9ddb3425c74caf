r"""Batch normalisation over every rank's batch, and the running-statistics update wrim's norms share.

[`CrossRankBatchNorm`][wrim.layers.CrossRankBatchNorm] (what
[`convert_sync_batchnorm()`][wrim.layers.convert_sync_batchnorm] puts in place of a BatchNorm off CUDA) and
[`ModalityMIIM`][wrim.layers.ModalityMIIM]'s per-modality statistics both update their buffers with
`update_running_stats()`; the cross-rank sums come from
`wrim.distributed.all_reduce_with_grad`. The gradient bookkeeping under DDP is derived in `wrim.distributed`.

Shape legend: ``B`` batch, ``C`` channels.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from wrim.distributed import all_reduce_with_grad, is_distributed

__all__ = ["CrossRankBatchNorm", "convert_sync_batchnorm", "update_running_stats"]


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
            update_running_stats(self, mean, var, total)
        y = centered * torch.rsqrt(var + self.eps).view(shape)  # (B, C, *)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


@torch.no_grad()
def update_running_stats(norm: _BatchNorm, mean: torch.Tensor, var: torch.Tensor, count: torch.Tensor) -> None:
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
    module with a ``sync_stats`` attribute (the protocol of layers that keep their own statistics, such as
    ``wrim.layers.ModalityMIIM``'s per-modality ones) gets ``sync_stats = True`` (statistics over all ranks).
    Returns the converted module (the same object when only attributes changed); a no-op for the statistics in a
    single process.
    """
    for sub in module.modules():
        if hasattr(sub, "sync_stats"):
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
