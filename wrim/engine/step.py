"""One training step of the engine, with every input explicit: the model, the loss, the optimiser and the precision.

`TrainStep` is what [`Trainer`][wrim.engine.Trainer] runs for each batch and what ``wrim bench`` times. One step
([P] losses, [D] weights) with the default parts:

```text
out  = model(images, modalities)                       # WRIMNetOutput, B = num_ids * 2 * num_instances
L_id = sum_h CE_ls(out.logits[h], pids)                # every head: P5 global, P5 parts, P4 global
L_m  = AICL(out.p5_projection, out.p4_projection, pids, modalities)   # CMKIC on P5 + p4_weight * P4
L    = id_weight * L_id + metric_weight * L_m
grad = d(scale * L) / d(theta);  clip;  theta <- optimiser(theta, grad)
```

With a given model and loss, ``L = loss(model(images, modalities), pids, modalities=modalities)``.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from wrim._versions import compile_if_supported
from wrim.engine.precision import autocast

__all__ = ["TrainStep", "loss_scaler"]


def loss_scaler(device: torch.device, amp_dtype: torch.dtype | None) -> torch.amp.GradScaler:
    """The GradScaler of a training precision: loss scaling under fp16 only; disabled (its ``step`` is the
    optimiser's own) under bf16 and fp32."""
    return torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)


class TrainStep:
    """Forward, losses, backward and the optimiser update of one batch.

    ``step(images, pids, modalities, num_visible)`` zeroes the gradients, runs `forward_backward` (compiled as one
    graph when ``compile=True``), clips the gradient norm when asked, and steps the optimiser through the
    GradScaler. The learning-rate schedule is the caller's (the epoch loop steps it after each batch).

    Args:
        model: the module called as ``model(images, modalities)``: the network, or the network wrapped in
            ``DistributedDataParallel`` (its ``forward`` is then compiled around the wrapper, and its backward stays
            eager for DDP's gradient hooks).
        loss: called as ``loss(outputs, labels, modalities=modalities)``, returns a scalar tensor; a ``terms``
            dict on it (name -> tensor) is reported after each call.
        optimizer: updates the model's parameters.
        amp_dtype: the autocast dtype of the forward pass (``None``: fp32).
        scaler: the GradScaler of that precision (`loss_scaler`); ``None`` for a disabled one.
        clip_grad_norm: the maximum gradient norm (``None``: no clipping).
        compile: compile `forward_backward` with ``torch.compile`` (the backward traced in).
        output_type: the type the loss needs from the model (the default loss: ``WRIMNetOutput``), checked every
            step; ``None`` checks nothing.
    """

    def __init__(
        self,
        model: nn.Module,
        loss: Callable[..., torch.Tensor],
        optimizer: torch.optim.Optimizer,
        *,
        amp_dtype: torch.dtype | None = None,
        scaler: torch.amp.GradScaler | None = None,
        clip_grad_norm: float | None = None,
        compile: bool = False,
        output_type: type | None = None,
    ) -> None:
        self.model = model
        self.loss = loss
        self.optimizer = optimizer
        self.amp_dtype = amp_dtype
        self.scaler = scaler if scaler is not None else torch.amp.GradScaler("cpu", enabled=False)
        self.clip_grad_norm = clip_grad_norm
        self.output_type = output_type
        self.distributed = isinstance(model, nn.parallel.DistributedDataParallel)
        network = model.module if self.distributed else model
        self.takes_num_visible = "num_visible" in inspect.signature(network.forward).parameters
        self.compiled = compile
        self.loss_scaling = self.scaler.is_enabled()  # a plain bool: dynamo does not trace GradScaler
        self._forward_backward = compile_if_supported(self.forward_backward) if compile else self.forward_backward

    def compute_losses(
        self, out: Any, pids: torch.Tensor, modalities: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The total loss and every named term: the loss's ``terms`` (for ``WRIMNetLoss``: ``id_<head>``, ``id``,
        ``metric`` and the metric's parts) and ``loss``, the total.

        Args:
            out: the model's training output (a ``WRIMNetOutput`` for the default loss).
            pids: (B,) identity labels.
            modalities: (B,) 0 = visible, 1 = infrared.

        Raises:
            TypeError: the default loss on a model that returns something else, or a loss that does not return a
                scalar tensor (one line saying what to pass).
        """
        if self.output_type is not None and not isinstance(out, self.output_type):
            raise TypeError(
                f"the default loss (WRIMNetLoss) needs the model's training-mode forward to return a WRIMNetOutput, "
                f"got {type(out).__name__}: pass your own loss, Trainer(config, model=..., loss=my_loss), called as "
                "my_loss(outputs, labels, modalities=modalities)"
            )
        total = self.loss(out, pids, modalities=modalities)
        if not isinstance(total, torch.Tensor) or total.dim() != 0:
            shape = tuple(total.shape) if isinstance(total, torch.Tensor) else type(total).__name__
            raise TypeError(f"the loss must return a scalar tensor, got {shape}: reduce it (e.g. .mean()) in the loss")
        terms = dict(getattr(self.loss, "terms", None) or {})
        terms.setdefault("loss", total)
        return total, terms

    def forward_backward(
        self, images: torch.Tensor, pids: torch.Tensor, modalities: torch.Tensor, num_visible: int | None = None
    ) -> dict[str, torch.Tensor]:
        """Forward, losses and backward of one batch: what ``compile=True`` compiles as one graph.

        The gradients are accumulated into the parameters' ``.grad`` (scaled by the GradScaler under fp16, whose
        ``scale()`` dynamo does not trace: a graph break there, none under bf16 or fp32); the optimiser step and
        gradient clipping stay outside (the graph does not depend on the optimiser). Nothing here reads a tensor
        value on the host.

        Args:
            images: (B, 3, H, W) on the device, in the training memory format.
            pids: (B,) identity labels on the device.
            modalities: (B,) ids on the device, 0 = visible, 1 = infrared.
            num_visible: the batch's visible count, counted on the host (``WRIMNet.forward``: each ModalityMIIM
                copy then runs on its own samples only); passed only to a model whose ``forward`` takes it.

        Returns:
            The loss terms by name (as `compute_losses`), detached float32 scalars still on the device.
        """
        kwargs = {"num_visible": num_visible} if num_visible is not None and self.takes_num_visible else {}
        with autocast(images.device.type, self.amp_dtype):
            out = self.model(images, modalities, **kwargs)
        total, terms = self.compute_losses(out, pids, modalities)
        (self.scaler.scale(total) if self.loss_scaling else total).backward()
        return {name: value.detach().float() for name, value in terms.items()}

    def __call__(
        self, images: torch.Tensor, pids: torch.Tensor, modalities: torch.Tensor, num_visible: int | None = None
    ) -> dict[str, torch.Tensor]:
        """One whole step: zero the gradients, `forward_backward`, clip, and step the optimiser (arguments and
        result as `forward_backward`)."""
        self.optimizer.zero_grad(set_to_none=True)
        with self._backward_in_graph():
            terms = self._forward_backward(images, pids, modalities, num_visible)
        if self.clip_grad_norm is not None:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.clip_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return terms

    def _backward_in_graph(self) -> contextlib.AbstractContextManager:
        """Lets dynamo trace ``backward()`` into the compiled step (one graph); a DDP step keeps the eager backward,
        whose gradient hooks DDP needs, so its compiled step ends at the backward call."""
        if not self.compiled or self.distributed:
            return contextlib.nullcontext()
        return torch._dynamo.config.patch(trace_autograd_ops=True)
