"""Workers of the user-network DDP tests (tests/engine/test_parts.py): one float64 training step of the plugin's
ResNet-18 + MIIMs on 2 gloo processes, each with half of the batch of tests/_ddp_equality.py, and the same step in
one process on the whole batch; with the default WRIMNetLoss, or with a loss of the user's own written as
docs/training.md says (its CMKIC term gathered across ranks), or the same loss without the gather."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from tests import _ddp_equality as ddp
from tests.engine._user_network import ResNetMIIM
from wrim.distributed import all_gather_with_grad
from wrim.layers import convert_sync_batchnorm
from wrim.losses import AICLLoss, CMKICLoss, WRIMNetLoss


class DocsLoss(nn.Module):
    """docs/training.md's ``MyLoss`` on this network's training output: the ID loss on this rank's shard, CMKIC on
    every rank's features (``gather=False``: on this rank's only, which the docs say not to do)."""

    def __init__(self, gather: bool = True) -> None:
        super().__init__()
        self.cmkic = CMKICLoss(k=2, temperature=0.1)
        self.gather = gather

    def forward(self, outputs, labels, modalities):
        features, logits = outputs.features["p5_global"], outputs.logits["p5_global"]  # (B, 512), (B, K)
        id_loss = F.cross_entropy(logits, labels, label_smoothing=0.1)
        parts = (features, labels, modalities)
        everyone = [all_gather_with_grad(t) for t in parts] if self.gather else parts  # (N * B, ...)
        metric = self.cmkic(everyone[0], everyone[1], modalities=everyone[2])
        self.terms = {"id": id_loss.detach(), "metric": metric.detach()}
        return id_loss + metric


LOSSES = {
    "default": lambda: WRIMNetLoss(AICLLoss(CMKICLoss(k=2, temperature=0.1))),
    "docs": DocsLoss,
    "docs_without_gather": lambda: DocsLoss(gather=False),
}


def step(rank: int | None, loss: str = "default") -> dict[str, dict[str, torch.Tensor]]:
    """One forward/backward (``rank`` None: one process, both shards) with ``LOSSES[loss]``; the terms, gradients
    and float buffers."""
    torch.manual_seed(0)
    net = ResNetMIIM(ddp.WORLD * ddp.IDS_PER_RANK).double().train()
    if rank is None:
        images, labels, modalities = (torch.cat(t) for t in zip(*[ddp.shard(r) for r in range(ddp.WORLD)]))
        model = net
    else:
        images, labels, modalities = ddp.shard(rank)
        net = convert_sync_batchnorm(net, "cpu")  # model.sync_bn, as the trainer does
        model = nn.parallel.DistributedDataParallel(net)
    loss_fn = LOSSES[loss]()
    loss_fn(model(images, modalities), labels, modalities=modalities).backward()
    terms = torch.stack(list(loss_fn.terms.values()))  # (T,)
    if rank is not None:  # the trainer's logged value: the mean over ranks
        dist.all_reduce(terms)
        terms = terms / ddp.WORLD
    return {
        "terms": dict(zip(loss_fn.terms, terms)),
        "grads": {k: p.grad.clone() for k, p in net.named_parameters()},
        "buffers": {k: b.clone() for k, b in net.named_buffers() if b.is_floating_point()},
    }


def worker(rank: int, port: int, out_dir: str, loss: str = "default") -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=ddp.WORLD)
    try:
        torch.save(step(rank, loss), os.path.join(out_dir, f"user-{loss}-{rank}.pt"))
    finally:
        dist.destroy_process_group()
