"""``optim.name=adam``: torch.optim.Adam with L2 weight decay on every parameter (the BoT recipe), not AdamW."""

import torch
from torch import nn

from wrim.engine.config import load_config
from wrim.engine.optim import build_optimizer


class _Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
        self.head = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


def test_adam_recipe_builds_torch_adam_with_decay_on_every_parameter():
    config = load_config("sysu_adam").optim
    model = _Tiny()
    optimizer = build_optimizer(model, config)
    assert type(optimizer) is torch.optim.Adam  # not AdamW
    assert [g["lr"] for g in optimizer.param_groups] == [3.5e-4, 3.5e-4]  # backbone_lr_mult 1.0
    assert all(g["weight_decay"] == 5e-4 and not g.get("decoupled_weight_decay", False) for g in optimizer.param_groups)
    grouped = {id(p) for g in optimizer.param_groups for p in g["params"]}
    assert grouped == {id(p) for p in model.parameters()}  # BatchNorm weights and biases decay too


def test_adam_step_is_the_l2_update():
    """Two steps against Adam written out: g' = g + wd·θ, m, v, bias correction, θ -= lr·m̂/(√v̂ + eps)."""
    torch.manual_seed(0)
    config = load_config("sysu_adam", ["optim.lr=0.01", "optim.weight_decay=0.1"]).optim
    model = _Tiny()
    theta = [p.detach().clone() for p in model.parameters()]
    m = [torch.zeros_like(t) for t in theta]
    v = [torch.zeros_like(t) for t in theta]
    optimizer = build_optimizer(model, config)
    order = [p for g in optimizer.param_groups for p in g["params"]]
    index = {id(p): i for i, p in enumerate(model.parameters())}
    b1, b2 = config.betas
    for step in (1, 2):
        x = torch.randn(8, 3)
        optimizer.zero_grad()
        model(x).square().mean().backward()
        grads = {index[id(p)]: p.grad.detach().clone() for p in order}
        optimizer.step()
        for i, t in enumerate(theta):
            g = grads[i] + config.weight_decay * t
            m[i] = b1 * m[i] + (1 - b1) * g
            v[i] = b2 * v[i] + (1 - b2) * g * g
            m_hat, v_hat = m[i] / (1 - b1**step), v[i] / (1 - b2**step)
            theta[i] = t - config.lr * m_hat / (v_hat.sqrt() + 1e-8)
    for p, t in zip(model.parameters(), theta):
        torch.testing.assert_close(p.detach(), t, atol=1e-6, rtol=1e-5)
    adamw = build_optimizer(_Tiny(), load_config("sysu_adam", ["optim.name=adamw"]).optim)
    assert type(adamw) is torch.optim.AdamW
