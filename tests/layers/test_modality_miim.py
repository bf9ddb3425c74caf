"""ModalityMIIM: each sample equals its own modality's MIIM, gradients reach only the copy used, any batch order."""

from __future__ import annotations

import copy

import pytest
import torch

import wrim
from wrim import INFRARED, VISIBLE, ModalityMIIM


def _module(**kwargs) -> ModalityMIIM:
    return ModalityMIIM(32, reduction=2, stride=2, num_heads=4, **kwargs)


@pytest.mark.parametrize("order", [[0, 1, 1, 0, 1, 0], [0, 0, 0, 1, 1, 1], [1, 1, 1, 0, 0, 0], [1, 0, 1, 0, 1, 0]])
def test_train_mode_equals_each_copy_on_its_own_samples(order: list[int]) -> None:
    module = _module()
    alone = copy.deepcopy(module)
    x = torch.randn(6, 32, 10, 6)
    modalities = torch.tensor(order)
    out = module(x, modalities)
    for modality in (VISIBLE, INFRARED):
        picked = modalities == modality
        torch.testing.assert_close(out[picked], alone.branch(modality)(x[picked]), rtol=1e-5, atol=1e-5)
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            torch.testing.assert_close(
                getattr(module.branch(modality).norm, name), getattr(alone.branch(modality).norm, name)
            )


def test_eval_mode_each_sample_equals_its_copy_alone() -> None:
    module = _module()
    module(torch.randn(8, 32, 10, 6), torch.tensor([0, 1] * 4))  # move the running statistics
    module.eval()
    x = torch.randn(5, 32, 10, 6)
    modalities = torch.tensor([1, 0, 0, 1, 0])
    with torch.no_grad():
        out = module(x, modalities)
        for index in range(5):
            single = module.branch(int(modalities[index]))(x[index : index + 1])
            torch.testing.assert_close(out[index : index + 1], single, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("modality", [VISIBLE, INFRARED])
def test_single_modality_batch_trains_only_its_copy(modality: int) -> None:
    module = _module()
    before = copy.deepcopy(module)
    x = torch.randn(4, 32, 10, 6, requires_grad=True)
    module(x, torch.full((4,), modality)).square().mean().backward()
    used, unused = module.branch(modality), module.branch(1 - modality)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in used.parameters())
    assert all(p.grad is None or not p.grad.any() for p in unused.parameters())
    # the absent modality's running statistics are untouched
    for name in ("running_mean", "running_var"):
        assert torch.equal(getattr(unused.norm, name), getattr(before.branch(1 - modality).norm, name)), name
    assert int(unused.norm.num_batches_tracked) == 0
    assert int(used.norm.num_batches_tracked) == 1


def test_mixed_batch_gradients_match_separate_runs() -> None:
    module = _module().double()
    alone = copy.deepcopy(module)
    x = torch.randn(6, 32, 8, 4, dtype=torch.float64)
    modalities = torch.tensor([1, 0, 1, 1, 0, 0])
    weights = torch.randn(6, 32, 8, 4, dtype=torch.float64)
    (module(x, modalities) * weights).sum().backward()
    for modality in (VISIBLE, INFRARED):
        picked = modalities == modality
        (alone.branch(modality)(x[picked]) * weights[picked]).sum().backward()
    for (name, p), q in zip(module.named_parameters(), alone.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-9, atol=1e-9, msg=name)


def test_fused_flag_reaches_both_copies_and_paths_agree() -> None:
    module = _module().double()
    x = torch.randn(4, 32, 8, 4, dtype=torch.float64)
    modalities = torch.tensor([0, 1, 0, 1])
    fused = module(x, modalities)
    module.fused_attn = False
    assert module.visible.gri.fused_attn is False and module.infrared.gri.fused_attn is False
    torch.testing.assert_close(module(x, modalities), fused, rtol=1e-10, atol=1e-10)


def test_without_out_norm() -> None:
    module = _module(out_norm=False).eval()
    x = torch.randn(3, 32, 8, 4)
    modalities = torch.tensor([0, 1, 1])
    with torch.no_grad():
        out = module(x, modalities)
        torch.testing.assert_close(out[1:], module.infrared(x[1:]))


def test_bad_modalities() -> None:
    module = _module()
    x = torch.randn(3, 32, 8, 4)
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        module(x, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"found \[2\]"):
        module(x, torch.tensor([0, 1, 2]))
    with pytest.raises(TypeError, match="integer"):
        module(x, torch.tensor([0.0, 1.0, 0.0]))
    with pytest.raises(ValueError, match="branch|modality"):
        module.branch(3)
    with pytest.raises(ValueError, match="built for 32 channels"):
        module(torch.randn(3, 16, 8, 4), torch.tensor([0, 1, 0]))
    assert wrim.VISIBLE == 0 and wrim.INFRARED == 1


def test_cumulative_momentum_matches_batchnorm() -> None:
    """``momentum=None`` (cumulative average, computed without ``.item()``) updates like each copy's BatchNorm."""
    module = _module()
    for norm in (module.visible.norm, module.infrared.norm):
        norm.momentum = None
    alone = copy.deepcopy(module)
    for step in range(3):
        x = torch.randn(6, 32, 10, 6)
        modalities = torch.tensor([0, 1, 0, 0, 1, 0] if step != 1 else [0] * 6)  # step 1: no infrared sample
        module(x, modalities)
        for modality in (VISIBLE, INFRARED):
            picked = modalities == modality
            if picked.any():
                alone.branch(modality)(x[picked])
    for modality in (VISIBLE, INFRARED):
        for name in ("running_mean", "running_var", "num_batches_tracked"):
            torch.testing.assert_close(
                getattr(module.branch(modality).norm, name), getattr(alone.branch(modality).norm, name)
            )


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_moments_of_a_low_precision_map_accumulate_in_float32(dtype: torch.dtype) -> None:
    from wrim.layers.modality_miim import _per_modality_moments

    y = torch.randn(6, 32, 10, 6) * 3 + 5
    modalities = torch.tensor([0, 1, 1, 0, 1, 0])
    mean, var, counts = _per_modality_moments(y.to(dtype), modalities)
    ref_mean, ref_var, ref_counts = _per_modality_moments(y.to(dtype).float(), modalities)
    assert mean.dtype == var.dtype == torch.float32
    torch.testing.assert_close(counts, ref_counts)
    torch.testing.assert_close(mean, ref_mean, rtol=1e-5, atol=1e-5)  # exact sums of the same low-precision values
    torch.testing.assert_close(var, ref_var, rtol=2e-2, atol=1e-2)  # the centred map is in the input dtype


MIXES = {
    "half/half": [0, 1, 1, 0, 1, 0, 0, 1],
    "3:1": [0, 0, 1, 0, 0, 0, 1, 0],
    "all visible": [0] * 6,
    "all infrared": [1] * 6,
    "B=1 visible": [0],
    "B=1 infrared": [1],
}


def _reference(module: ModalityMIIM, x: torch.Tensor, modalities: torch.Tensor) -> torch.Tensor:
    """Each copy as a plain MIIM on its own samples only, gathered back into the batch order ([P][N] routing)."""
    out = torch.zeros_like(x)
    for modality in (VISIBLE, INFRARED):
        rows = [index for index, m in enumerate(modalities.tolist()) if m == modality]
        if rows:
            out = out.index_copy(0, torch.tensor(rows), module.branch(modality)(x[rows]))
    return out


@pytest.mark.parametrize("split", [False, True], ids=["any-order", "num_visible"])
@pytest.mark.parametrize("mix", list(MIXES), ids=list(MIXES))
def test_both_formulations_equal_each_copy_on_its_own_samples_float64(mix: str, split: bool) -> None:
    """Values, parameter and input gradients, running statistics: float64, against the reference."""
    module = _module(init_values=0.5).double()
    reference = copy.deepcopy(module)
    modalities = torch.tensor(MIXES[mix])
    batch = len(modalities)
    x = torch.randn(batch, 32, 8, 4, dtype=torch.float64)
    weights = torch.randn(batch, 32, 8, 4, dtype=torch.float64)
    num_visible = None
    if split:  # the contract of num_visible: a modality-sorted batch
        order = torch.argsort(modalities, stable=True)
        x, weights, modalities = x[order], weights[order], modalities[order]
        num_visible = int((modalities == VISIBLE).sum())
    x_ours, x_ref = x.clone().requires_grad_(), x.clone().requires_grad_()
    out = module(x_ours, modalities, num_visible=num_visible)
    expected = _reference(reference, x_ref, modalities)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    (out * weights).sum().backward()
    (expected * weights).sum().backward()
    torch.testing.assert_close(x_ours.grad, x_ref.grad, rtol=1e-10, atol=1e-12)
    for (name, p), q in zip(module.named_parameters(), reference.parameters(), strict=True):
        if q.grad is None:  # a copy without samples gets no gradient in the reference
            assert p.grad is None or not p.grad.any(), name
        else:
            torch.testing.assert_close(p.grad, q.grad, rtol=1e-10, atol=1e-12, msg=name)
    for (name, buffer), expected_buffer in zip(module.named_buffers(), reference.buffers(), strict=True):
        torch.testing.assert_close(buffer, expected_buffer, rtol=1e-12, atol=1e-12, msg=name)


def test_num_visible_runs_each_copy_only_on_its_rows() -> None:
    module = _module().eval()
    calls: dict[str, int] = {}
    for name in ("visible", "infrared"):
        getattr(module, name).compress.register_forward_hook(
            lambda _m, args, _out, name=name: calls.__setitem__(name, calls.get(name, 0) + args[0].shape[0])
        )
    with torch.no_grad():
        module(torch.randn(5, 32, 8, 4), torch.tensor([0, 0, 1, 1, 1]), num_visible=2)
    assert calls == {"visible": 2, "infrared": 3}
    calls.clear()
    with torch.no_grad():
        module(torch.randn(5, 32, 8, 4), torch.tensor([0, 0, 1, 1, 1]))
    assert calls == {"visible": 5, "infrared": 5}  # the any-order formulation


def test_num_visible_must_describe_a_sorted_batch() -> None:
    module = _module()
    x = torch.randn(4, 32, 8, 4)
    with pytest.raises(ValueError, match="2 visible ids .0. followed by 2 infrared"):
        module(x, torch.tensor([0, 1, 0, 1]), num_visible=2)
    with pytest.raises(ValueError, match="between 0 and the batch size 4"):
        module(x, torch.tensor([0, 0, 1, 1]), num_visible=5)
    with pytest.raises(TypeError, match="num_visible must be an int"):
        module(x, torch.tensor([0, 0, 1, 1]), num_visible=torch.tensor(2))


def _eval_reference(module: ModalityMIIM, x: torch.Tensor, modalities: torch.Tensor) -> torch.Tensor:
    """Eval mode written out per sample: X_b + γ_m ⊙ (X_b ⊙ Up(G^m(X_b)) - μ_m) / sqrt(σ²_m + ε), m = m_b."""
    rows = []
    for index, modality in enumerate(modalities.tolist()):
        copy_ = module.branch(modality)
        sample = x[index : index + 1]
        gate = copy_.gate(sample).repeat_interleave(copy_.stride, 2).repeat_interleave(copy_.stride, 3)
        norm = copy_.norm
        mean, var = norm.running_mean[:, None, None], norm.running_var[:, None, None]
        branch = (sample * gate - mean) / torch.sqrt(var + norm.eps) * copy_.gamma[:, None, None]
        rows.append(sample + branch)
    return torch.cat(rows)


@pytest.mark.parametrize("split", [False, True], ids=["any-order", "num_visible"])
@pytest.mark.parametrize("mix", list(MIXES), ids=list(MIXES))
def test_eval_folded_tail_equals_each_copy_written_out_float64(mix: str, split: bool) -> None:
    """Eval mode (the folded one-pass tail): values and input / parameter gradients, float64, both formulations."""
    module = _module(init_values=0.5).double()
    module(torch.randn(8, 32, 8, 4, dtype=torch.float64), torch.tensor([0, 1] * 4))  # move the running statistics
    module.eval()
    modalities = torch.tensor(MIXES[mix])
    x = torch.randn(len(modalities), 32, 8, 4, dtype=torch.float64)
    num_visible = None
    if split:
        order = torch.argsort(modalities, stable=True)
        x, modalities = x[order], modalities[order]
        num_visible = int((modalities == VISIBLE).sum())
    x_ours, x_ref = x.clone().requires_grad_(), x.clone().requires_grad_()
    out = module(x_ours, modalities, num_visible=num_visible)
    expected = _eval_reference(module, x_ref, modalities)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    weights = torch.randn_like(out)
    params = list(module.parameters())
    ours = torch.autograd.grad((out * weights).sum(), [x_ours, *params], allow_unused=True, materialize_grads=True)
    theirs = torch.autograd.grad(
        (expected * weights).sum(), [x_ref, *params], allow_unused=True, materialize_grads=True
    )
    for got, want in zip(ours, theirs, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)


def test_checked_skips_the_checks_only_when_asked() -> None:
    """``checked=True`` (what WRIMNet passes after validating) trusts the caller; a direct call is checked."""
    module = _module().eval()
    x = torch.randn(2, 32, 8, 4)
    with pytest.raises(ValueError, match="modalities must have shape"):
        module(x, torch.tensor([0, 1, 1]))
    with pytest.raises(ValueError, match="2 visible ids .0. followed by 0 infrared"):
        module(x, torch.tensor([0, 1]), num_visible=2)
    with torch.no_grad():
        trusted = module(x, torch.tensor([0, 1]), checked=True)
        torch.testing.assert_close(trusted, module(x, torch.tensor([0, 1])))


def test_a_modality_batch_is_the_same_call_as_its_three_arguments() -> None:
    """``module(x, ModalityBatch(ids, n, checked))`` is ``module(x, ids, n, checked=checked)``: the same values, the
    same checks (an unchecked batch is validated); given with ``num_visible`` / ``checked`` besides, a TypeError."""
    from wrim.layers import ModalityBatch

    module = _module().eval()
    x = torch.randn(4, 32, 8, 4)
    ids = torch.tensor([0, 0, 1, 1])
    with torch.no_grad():
        for num_visible in (None, 2):
            torch.testing.assert_close(module(x, ModalityBatch(ids, num_visible)), module(x, ids, num_visible))
    with pytest.raises(ValueError, match="1 visible ids .0. followed by 3 infrared"):
        module(x, ModalityBatch(ids, 1))
    with pytest.raises(TypeError, match="carries its own num_visible and checked"):
        module(x, ModalityBatch(ids), num_visible=2)
    checked = ModalityBatch(ids, 2).validated(4, x.device)
    assert checked.checked and checked.ids.dtype == torch.long
