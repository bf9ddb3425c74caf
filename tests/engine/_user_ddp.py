"""Workers of the user-network DDP test (tests/engine/test_parts.py): one float64 training step of the plugin's
ResNet-18 + MIIMs with the default WRIMNetLoss on 2 gloo processes, each with half of the batch of
tests/_ddp_equality.py, and the same step in one process on the whole batch."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import nn

from tests import _ddp_equality as ddp
from tests.engine._user_network import ResNetMIIM
from wrim.layers import convert_sync_batchnorm
from wrim.losses import AICLLoss, CMKICLoss, WRIMNetLoss


def step(rank: int | None) -> dict[str, dict[str, torch.Tensor]]:
    """One forward/backward (``rank`` None: one process, both shards); the terms, gradients and float buffers."""
    torch.manual_seed(0)
    net = ResNetMIIM(ddp.WORLD * ddp.IDS_PER_RANK).double().train()
    if rank is None:
        images, labels, modalities = (torch.cat(t) for t in zip(*[ddp.shard(r) for r in range(ddp.WORLD)]))
        model = net
    else:
        images, labels, modalities = ddp.shard(rank)
        net = convert_sync_batchnorm(net, "cpu")  # model.sync_bn, as the trainer does
        model = nn.parallel.DistributedDataParallel(net)
    loss_fn = WRIMNetLoss(AICLLoss(CMKICLoss(k=2, temperature=0.1)))
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


def worker(rank: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=ddp.WORLD)
    try:
        torch.save(step(rank), os.path.join(out_dir, f"user-{rank}.pt"))
    finally:
        dist.destroy_process_group()
