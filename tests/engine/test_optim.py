"""Tests of the optimiser groups and the AGW warmup/step and cosine schedules."""

import pytest
import torch
from torch import nn

from wrim.engine.config import OptimConfig
from wrim.engine.optim import build_optimizer, build_scheduler, lr_factor


class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.backbone = nn.Linear(4, 4)
        self.head = nn.Linear(4, 2)


def test_agw_step_schedule():
    cfg = OptimConfig(schedule="step", warmup_epochs=10, milestones=(20, 50), gamma=0.1)
    expected = {0: 0.1, 4: 0.5, 9: 1.0, 10: 1.0, 19: 1.0, 20: 0.1, 49: 0.1, 50: 0.01, 80: 0.01}
    for epoch, factor in expected.items():
        assert lr_factor(epoch + 0.5, 81, cfg) == pytest.approx(factor)


def test_cosine_schedule_warmup_and_end():
    cfg = OptimConfig(schedule="cosine", warmup_epochs=2, min_lr_factor=0.01)
    assert lr_factor(1.0, 10, cfg) == pytest.approx(0.5)
    assert lr_factor(2.0, 10, cfg) == pytest.approx(1.0)
    assert lr_factor(10.0, 10, cfg) == pytest.approx(0.01)
    values = [lr_factor(t / 4, 10, cfg) for t in range(8, 41)]
    assert all(a >= b for a, b in zip(values, values[1:]))


@pytest.mark.parametrize("name", ["sgd", "adamw"])
def test_backbone_group_and_per_iteration_scheduler(name):
    net = _Net()
    cfg = OptimConfig(name=name, lr=0.1, backbone_lr_mult=0.1, schedule="step", warmup_epochs=2, milestones=(3,))
    opt = build_optimizer(net, cfg)
    lrs = sorted(g["lr"] for g in opt.param_groups)
    assert lrs == pytest.approx([0.01, 0.1])
    sched = build_scheduler(opt, cfg, epochs=4, iters_per_epoch=3)
    seen = []
    for _ in range(12):
        seen.append(max(g["lr"] for g in opt.param_groups))
        opt.step()
        sched.step()
    assert seen == pytest.approx([0.05] * 3 + [0.1] * 6 + [0.01] * 3)


def test_scheduler_rejects_empty_epoch():
    opt = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1)
    with pytest.raises(ValueError, match="iters_per_epoch"):
        build_scheduler(opt, OptimConfig(), epochs=2, iters_per_epoch=0)
