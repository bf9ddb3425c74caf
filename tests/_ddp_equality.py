"""Workers of tests/test_distributed.py: one training step (or one ModalityMIIM step) on 2 gloo processes, each with
half of a global batch, and the same step in one process on the whole batch. Float64 throughout."""

from __future__ import annotations

import os
import socket

import torch
import torch.distributed as dist
from torch import nn

from wrim import INFRARED, VISIBLE
from wrim.distributed import all_reduce_with_grad
from wrim.layers import ModalityMIIM, convert_sync_batchnorm
from wrim.losses import AICLLoss, CMKICLoss, TripletLoss, WRIMNetLoss

WORLD = 2
IDS_PER_RANK, INSTANCES = 4, 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_net() -> nn.Module:
    from tests.engine._tiny import wrimnet_test_tiny

    torch.manual_seed(0)
    return wrimnet_test_tiny(num_classes=WORLD * IDS_PER_RANK, img_size=(64, 32)).double().train()


def shard(rank: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Rank ``rank``'s images (B, 3, 64, 32), labels (B,), modalities (B,): its identities' visible block, then
    infrared block, as `IdentityModalitySampler` yields them."""
    g = torch.Generator().manual_seed(100 + rank)
    ids = torch.arange(rank * IDS_PER_RANK, (rank + 1) * IDS_PER_RANK).repeat_interleave(INSTANCES)  # (P * K,)
    labels = torch.cat([ids, ids])  # (B,)
    modalities = torch.cat([torch.full_like(ids, VISIBLE), torch.full_like(ids, INFRARED)])  # (B,)
    images = torch.randn(labels.shape[0], 3, 64, 32, generator=g, dtype=torch.float64)
    return images, labels, modalities


def metric_loss(name: str) -> nn.Module:
    if name == "aicl":
        return AICLLoss(CMKICLoss(k=2, temperature=0.1))
    return AICLLoss(TripletLoss(margin=0.3))


def train_step(rank: int | None, metric: str, gather: bool, sync_bn: bool) -> dict[str, dict[str, torch.Tensor]]:
    """One forward/backward; ``rank`` None: one process on the concatenated shards. Returns terms, grads, buffers."""
    net = build_net()
    if rank is None:
        parts = [shard(r) for r in range(WORLD)]
        images, labels, modalities = (torch.cat(t) for t in zip(*parts))
        model = net
    else:
        images, labels, modalities = shard(rank)
        if sync_bn:
            net = convert_sync_batchnorm(net, "cpu")
        model = nn.parallel.DistributedDataParallel(net)
    loss_fn = WRIMNetLoss(metric_loss(metric), gather_across_ranks=gather)
    total = loss_fn(model(images, modalities), labels, modalities=modalities)
    total.backward()
    names = list(loss_fn.terms)
    terms = torch.stack([loss_fn.terms[k] for k in names])  # (T,)
    if rank is not None:  # the trainer's logged value: the mean over ranks
        dist.all_reduce(terms)
        terms = terms / WORLD
    return {
        "terms": dict(zip(names, terms)),
        "grads": {k: p.grad.clone() for k, p in net.named_parameters() if p.requires_grad},
        "buffers": {k: b.clone() for k, b in net.named_buffers() if b.is_floating_point()},
    }


def miim_shards(rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rank 0 holds visible samples only; rank 1 both modalities. (4, 8, 8, 4), (4,)."""
    g = torch.Generator().manual_seed(200 + rank)
    x = torch.randn(4, 8, 8, 4, generator=g, dtype=torch.float64) * (1 + rank) + rank
    modalities = torch.tensor([VISIBLE] * 4 if rank == 0 else [VISIBLE, INFRARED, INFRARED, VISIBLE])
    return x, modalities


def miim_step(rank: int | None) -> dict[str, torch.Tensor]:
    """ModalityMIIM forward/backward on the shards; the loss is the sum over ranks of ``(out * w).sum()``."""
    torch.manual_seed(1)
    m = ModalityMIIM(8, reduction=2, stride=2, num_heads=1).double().train()
    w = torch.randn(8, 8, 8, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    if rank is None:
        x, modalities = (torch.cat(t) for t in zip(*[miim_shards(r) for r in range(WORLD)]))
        x.requires_grad_(True)
        out = m(x, modalities)
        loss = (out * w).sum()
    else:
        m.sync_stats = True
        x, modalities = miim_shards(rank)
        x.requires_grad_(True)
        out = m(x, modalities)
        loss = (out * w[rank * 4 : (rank + 1) * 4]).sum()
    loss.backward()
    result = {"out": out.detach(), "x_grad": x.grad.clone()}
    for name in ("visible", "infrared"):
        norm = m.branch(VISIBLE if name == "visible" else INFRARED).norm
        result[f"{name}.running_mean"] = norm.running_mean.clone()
        result[f"{name}.running_var"] = norm.running_var.clone()
        result[f"{name}.num_batches_tracked"] = norm.num_batches_tracked.clone()
    return result


def synthetic(root: str):
    from wrim.data import SyntheticVIReID

    return SyntheticVIReID(root, num_ids=6, num_test_ids=4, images_per_camera=3, img_size=(64, 32), seed=1)


def eval_step(rank: int | None, root: str) -> dict[str, object]:
    """Test features of every query and gallery image (extracted in shards when ``rank`` is given) and metrics."""
    from wrim.evaluation import evaluate_protocol, extract_features

    dataset = synthetic(root)
    split = dataset.test_split(0)
    records = [*split.query, *split.gallery]
    net = build_net().float()
    with torch.no_grad():
        feats = extract_features(net, records, (64, 32), batch_size=8, device="cpu", num_workers=0, shard=True)
    metrics = evaluate_protocol(dict(zip([r.path for r in records], feats)), dataset, trials=[0]).as_dict()
    return {"features": feats, "metrics": metrics, "training": net.training}


def worker(rank: int, port: int, out_dir: str, scenario: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        if scenario == "step":
            results = {
                f"{metric}-{gather}-{sync}": train_step(rank, metric, gather, sync)
                for metric, gather, sync in (
                    ("aicl", True, True),
                    ("aicl", False, True),
                    ("aicl", True, False),
                    ("triplet", True, True),
                )
            }
        elif scenario == "eval":
            results = eval_step(rank, os.path.join(out_dir, "synthetic"))
        else:
            results = miim_step(rank)
            results["sum_check"] = all_reduce_with_grad(torch.ones(1, dtype=torch.float64))
        torch.save(results, os.path.join(out_dir, f"{scenario}-{rank}.pt"))
    finally:
        dist.destroy_process_group()
