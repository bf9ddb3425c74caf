"""wrim.distributed: N processes compute what one process computes on the whole batch.

The slow tests spawn 2 gloo processes (tests/_ddp_equality.py), each with half of a global batch, and compare with
one process on the concatenated batch, in float64: every logged loss term, every parameter gradient (after DDP's
average) and every BatchNorm / ModalityMIIM running statistic, within the issue's bound 1e-5 (absolute and
relative). Measured (printed with ``-s``): gradients and running statistics agree to ~1e-14; the logged terms to
~2e-7, because WRIMNetLoss computes the loss terms in float32 whatever the model's dtype.
"""

import copy

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from tests import _ddp_equality as ddp
from wrim.distributed import all_gather_with_grad, all_reduce_with_grad, gather_shards, shard_range
from wrim.layers import CrossRankBatchNorm, ModalityMIIM, convert_sync_batchnorm


def _spawn(tmp_path, scenario):
    mp.spawn(ddp.worker, args=(ddp.free_port(), str(tmp_path), scenario), nprocs=ddp.WORLD, join=True)
    return [torch.load(tmp_path / f"{scenario}-{r}.pt") for r in range(ddp.WORLD)]


def _max_diff(a: dict, b: dict) -> tuple[float, float]:
    """Max absolute difference, and max relative difference (to each tensor's largest reference magnitude) over the
    tensors that are not ~0 (the zero-initialised residual BatchNorms leave some gradients at 0 or ~1e-10)."""
    assert a.keys() == b.keys()
    abs_d = max(float((a[k] - b[k]).abs().max()) for k in a)
    rel = [float((a[k] - b[k]).abs().max() / b[k].abs().max()) for k in a if b[k].abs().max() > 1e-6]
    return abs_d, max(rel)


def test_single_process_is_a_no_op():
    x = torch.randn(3, 4, requires_grad=True)
    assert all_gather_with_grad(x) is x and all_reduce_with_grad(x) is x and gather_shards(x, 3) is x


def test_shard_range_covers_in_order():
    for total in (0, 1, 7, 8, 33):
        for world in (1, 2, 3, 5):
            blocks = [shard_range(total, r, world) for r in range(world)]
            assert [i for b in blocks for i in b] == list(range(total))
            assert max(map(len, blocks)) - min(map(len, blocks)) <= 1


def test_conversion_keeps_weights_and_buffers_and_marks_modality_miims():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Flatten(), nn.BatchNorm1d(8 * 6 * 6, momentum=None))
    net[1].running_mean.uniform_()
    miim = ModalityMIIM(8, reduction=2, stride=2, num_heads=1)
    model = nn.ModuleDict({"net": net, "miim": miim})
    ref = copy.deepcopy(model)
    converted = convert_sync_batchnorm(model, "cpu")
    assert isinstance(converted["net"][1], CrossRankBatchNorm) and isinstance(converted["net"][3], CrossRankBatchNorm)
    assert converted["miim"].sync_stats and not ref["miim"].sync_stats
    assert converted.state_dict().keys() == ref.state_dict().keys()
    for key, value in ref.state_dict().items():
        torch.testing.assert_close(converted.state_dict()[key], value)
    x = torch.randn(4, 3, 8, 8)
    for mode in (True, False):  # without a process group: plain BatchNorm, training and eval
        converted.train(mode), ref.train(mode)
        torch.testing.assert_close(converted["net"](x), ref["net"](x))
    for a, b in zip(converted.buffers(), ref.buffers()):
        torch.testing.assert_close(a, b)


@pytest.mark.slow
def test_two_processes_equal_one_process_training_step(tmp_path):
    ranks = _spawn(tmp_path, "step")
    report = []
    for metric in ("aicl", "triplet"):
        ref = ddp.train_step(None, metric, gather=True, sync_bn=False)
        got = ranks[0][f"{metric}-True-True"]
        # every rank ends with the same gradients (DDP) and the same running statistics (synced BN)
        assert _max_diff(ranks[1][f"{metric}-True-True"]["buffers"], got["buffers"])[0] < 1e-12
        for part in ("terms", "grads", "buffers"):
            abs_d, rel_d = _max_diff(got[part], ref[part])
            report.append(f"{metric} {part}: max abs {abs_d:.2e}, max rel {rel_d:.2e}")
            assert abs_d < 1e-5 and rel_d < 1e-5, report
    print("\n".join(report))
    ref = ddp.train_step(None, "aicl", gather=True, sync_bn=False)
    # not vacuous: local metric losses (gather off) or per-rank BN statistics (sync off) give other results
    local, unsynced = ranks[0]["aicl-False-True"], ranks[0]["aicl-True-False"]
    gaps = {
        "gather off: metric term": abs(float(local["terms"]["metric"] - ref["terms"]["metric"])),
        "gather off: grads": _max_diff(local["grads"], ref["grads"])[0],
        "sync_bn off: grads": _max_diff(unsynced["grads"], ref["grads"])[0],
        "sync_bn off: buffers": _max_diff(unsynced["buffers"], ref["buffers"])[0],
    }
    print("\n".join(f"{k}: max abs {v:.2e}" for k, v in gaps.items()))
    assert all(v > 1e-3 for v in gaps.values()), gaps


@pytest.mark.slow
def test_modality_miim_synced_statistics_with_a_one_modality_shard(tmp_path):
    ranks = _spawn(tmp_path, "miim")
    assert all(float(r.pop("sum_check")) == ddp.WORLD for r in ranks)
    ref = ddp.miim_step(None)
    for rank, got in enumerate(ranks):  # rank 0 holds visible samples only, yet normalises like one process
        rows = slice(rank * 4, (rank + 1) * 4)
        torch.testing.assert_close(got["out"], ref["out"][rows], rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(got["x_grad"], ref["x_grad"][rows], rtol=1e-10, atol=1e-10)
        for key in [k for k in ref if "." in k]:
            torch.testing.assert_close(got[key], ref[key], rtol=1e-10, atol=1e-10, msg=f"rank {rank} {key}")


@pytest.mark.slow
def test_sharded_feature_extraction_equals_one_process(tmp_path):
    ddp.synthetic(str(tmp_path / "synthetic"))  # generated once, read by every process
    ranks = _spawn(tmp_path, "eval")
    ref = ddp.eval_step(None, str(tmp_path / "synthetic"))
    for got in ranks:  # every rank holds every feature, in dataset order, bit for bit
        assert torch.equal(got["features"], ref["features"])
        assert got["metrics"] == ref["metrics"]
    assert ref["training"] and ranks[0]["training"]  # the training flag is restored
