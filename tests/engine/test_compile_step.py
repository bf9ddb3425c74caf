"""The training step under torch.compile: one graph (no graph break), no recompile across modality mixes, the
eager values and gradients, and (CUDA) no host synchronisation.

A step is what ``Trainer.train_step`` does: forward in train mode on a mixed batch, the ID loss on every head,
AICL (CMKIC on P5 + P4), backward. ``model.compile: true`` compiles exactly that function.
"""

from __future__ import annotations

import logging

import pytest
import torch
import torch._dynamo
from torch._dynamo.testing import CompileCounterWithBackend

from tests.engine._tiny import tiny_overrides
from wrim.engine import Trainer, load_config
from wrim.engine.build import build_loss
from wrim.engine.config import LossConfig
from wrim.models import create_model

SIZE = (64, 32)
# the sampler's half/half layout (ids x (2 visible + 2 infrared)), 3:1, all visible, all infrared
MIXES = [[0, 0, 1, 1] * 4, [0, 0, 0, 1] * 4, [0] * 16, [1] * 16, [1, 1, 0, 0] * 4, [0, 1, 0, 0] * 4]


def _batches(num_classes: int) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Six batches of 16: other modality mixes and other labels each time (4 identities x 4 images)."""
    out = []
    for index, mix in enumerate(MIXES):
        g = torch.Generator().manual_seed(index)
        ids = torch.randperm(num_classes, generator=g)[:4]
        labels = ids.repeat_interleave(4)
        images = torch.randn(16, 3, *SIZE, generator=g).contiguous(memory_format=torch.channels_last)
        out.append((images, labels, torch.tensor(mix)))
    return out


def _step_fn(model: torch.nn.Module, loss_fn: torch.nn.Module, **kwargs):
    def step(images: torch.Tensor, labels: torch.Tensor, modalities: torch.Tensor) -> torch.Tensor:
        total = loss_fn(model(images, modalities, **kwargs), labels, modalities=modalities)
        total.backward()
        return total.detach()

    return step


@pytest.mark.needs_compile
@pytest.mark.slow
@pytest.mark.parametrize("name", ["wrimnet_resnet50", "wrimnet_resnet18", "baseline_resnet50"])
def test_model_step_has_no_graph_break(name: str) -> None:
    model = create_model(name, num_classes=8, img_size=SIZE).to(memory_format=torch.channels_last).train()
    images, labels, modalities = _batches(8)[0]
    with torch._dynamo.config.patch(trace_autograd_ops=True):
        explained = torch._dynamo.explain(_step_fn(model, build_loss(LossConfig())))(images, labels, modalities)
    assert explained.graph_break_count == 0, [reason.reason for reason in explained.break_reasons]
    assert explained.graph_count == 1
    assert "stage1" not in model.miims or model.miims["stage1"].visible.compress.weight.grad is not None


@pytest.fixture(scope="module")
def trainer(tmp_path_factory) -> Trainer:
    """The tiny synthetic run's Trainer after setup (wrimnet_resnet18 at 64x32, channels_last, fp32 on the CPU)."""
    folder = tmp_path_factory.mktemp("compile")
    trainer = Trainer(load_config("synthetic", tiny_overrides(folder, "run", "data.num_workers=0")))
    trainer._setup()
    yield trainer
    trainer.logger.close()
    for handler in trainer._handlers:
        logging.getLogger("wrim").removeHandler(handler)
        handler.close()
    trainer._lock.release()


@pytest.mark.needs_compile
@pytest.mark.slow
def test_trainer_step_is_one_graph_without_recompiles_and_equals_eager(trainer: Trainer) -> None:
    """Six batches (half/half, 3:1, all visible, all infrared, other orders and labels) through the compiled
    ``Trainer.train_step``: one graph (fullgraph), compiled once, and each batch's terms and gradients equal eager.

    Compared in float64 (the model; WRIMNetLoss computes the loss in float32): in float32, Inductor's reordered
    reductions move pre-activations that sit within rounding of a ReLU / max-pool / key-instance decision to
    the other side, and such a flip changes a gradient by a discrete amount (measured: 0.4 % of the first
    conv's gradient on one of the six batches, while the float64 graphs agree to 2e-8 on all six). In float64
    the remaining difference is float32 rounding of the loss's gradient: the loss terms agree to <= 1e-6
    (relative), all gradients together and each gradient to <= 1e-6 of the norm of all gradients.
    """
    net = trainer.net.double()
    batches = [
        (images.double(), labels, modalities) for images, labels, modalities in _batches(trainer.dataset.num_classes)
    ]
    try:
        with torch._dynamo.config.patch(trace_autograd_ops=True):
            explained = torch._dynamo.explain(trainer.train_step)(*batches[0])
        assert explained.graph_break_count == 0, [reason.reason for reason in explained.break_reasons]
        torch._dynamo.reset()

        counter = CompileCounterWithBackend("inductor")
        compiled = torch.compile(trainer.train_step, backend=counter, fullgraph=True)
        for index, (images, labels, modalities) in enumerate(batches):
            net.zero_grad(set_to_none=True)
            eager_terms = trainer.train_step(images, labels, modalities)
            eager_grads = {name: p.grad.clone() for name, p in net.named_parameters() if p.grad is not None}
            net.zero_grad(set_to_none=True)
            with torch._dynamo.config.patch(trace_autograd_ops=True):
                terms = compiled(images, labels, modalities)
            assert counter.frame_count == 1, f"recompiled at batch {index}"
            assert terms.keys() == eager_terms.keys()
            for key, value in terms.items():
                assert abs(float(value) - float(eager_terms[key])) <= 1e-6 * max(1.0, abs(float(eager_terms[key])))
            grads = {name: p.grad for name, p in net.named_parameters() if p.grad is not None}
            assert grads.keys() == eager_grads.keys(), index
            scale = float(torch.cat([grad.flatten() for grad in eager_grads.values()]).norm())
            for name, grad in grads.items():
                error = float((grad - eager_grads[name]).norm())
                assert error <= 1e-6 * scale, (index, name, error, scale)
    finally:
        net.zero_grad(set_to_none=True)
        net.float()


@pytest.mark.needs_compile
@pytest.mark.slow
def test_trainer_split_step_does_not_recompile_for_sampler_batches(trainer: Trainer) -> None:
    """The trainer passes the host-counted ``num_visible``: the sampler's batches (always half/half, in any order,
    any labels) compile once. Guards do not depend on the backend, so aot_eager counts them as inductor would."""
    torch._dynamo.reset()
    counter = CompileCounterWithBackend("aot_eager")
    compiled = torch.compile(trainer.train_step, backend=counter, fullgraph=True)
    for images, labels, modalities in _batches(trainer.dataset.num_classes):
        if int((modalities == 0).sum()) != 8:
            continue
        trainer.net.zero_grad(set_to_none=True)  # as train_epoch does before each step
        with torch._dynamo.config.patch(trace_autograd_ops=True):
            compiled(images, labels, modalities, 8)
    assert counter.frame_count == 1
    trainer.net.zero_grad(set_to_none=True)


@pytest.mark.cuda
def test_cuda_step_has_no_host_sync() -> None:
    """Eager training steps (forward, losses, backward; any-order and ``num_visible`` routing) under
    ``set_sync_debug_mode("error")``, bf16 autocast, channels_last.

    The first call of CMKICLoss checks once (eagerly) that the batch has positives; that warm-up step runs first.
    """
    model = create_model("wrimnet_resnet18", num_classes=8, img_size=SIZE).cuda().train()
    model = model.to(memory_format=torch.channels_last)
    loss_fn = build_loss(LossConfig())
    images, labels, modalities = (t.cuda() for t in _batches(8)[0])
    _step_fn(model, loss_fn)(images, labels, modalities)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            _step_fn(model, loss_fn)(images.flip(0), labels.flip(0), modalities.flip(0))
            _step_fn(model, loss_fn, num_visible=8)(images, labels, modalities)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    torch.cuda.synchronize()
