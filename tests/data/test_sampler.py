"""IdentityModalitySampler: batch composition, replacement, epochs, determinism and the DDP partition."""

from __future__ import annotations

import numpy as np
import pytest

from wrim import INFRARED, VISIBLE
from wrim.data import IdentityModalitySampler


def _toy(num_ids: int = 12, seed: int = 0) -> tuple[list[int], list[int]]:
    """Ids 0..num_ids-1 with 1..6 images per modality; id ``num_ids`` has visible images only."""
    rng = np.random.default_rng(seed)
    labels, mods = [], []
    for pid in range(num_ids):
        for mod in (VISIBLE, INFRARED):
            n = int(rng.integers(1, 7))
            labels += [pid] * n
            mods += [mod] * n
    labels += [num_ids] * 5
    mods += [VISIBLE] * 5
    order = rng.permutation(len(labels))
    return [labels[i] for i in order], [mods[i] for i in order]


def test_batch_composition() -> None:
    labels, mods = _toy()
    sampler = IdentityModalitySampler(labels, mods, num_ids=4, num_instances=3, seed=1)
    batches = list(sampler)
    assert len(batches) == len(sampler) > 0
    n_vis = sum(m == VISIBLE for m in mods)
    assert len(sampler) == -(-max(n_vis, len(mods) - n_vis) // 12)
    for batch in batches:
        assert len(batch) == 4 * 2 * 3
        vis, ir = batch[:12], batch[12:]
        assert all(mods[i] == VISIBLE for i in vis) and all(mods[i] == INFRARED for i in ir)
        vis_ids = [labels[i] for i in vis]
        ir_ids = [labels[i] for i in ir]
        assert vis_ids == ir_ids  # same identity order in both halves
        blocks = [vis_ids[k : k + 3] for k in range(0, 12, 3)]
        assert all(len(set(b)) == 1 for b in blocks) and len({b[0] for b in blocks}) == 4
        assert 12 not in vis_ids  # the visible-only identity is never sampled
        for k in range(0, 12, 3):  # without replacement when an identity has enough images
            pid = vis_ids[k]
            for half in (vis, ir):
                picked = half[k : k + 3]
                available = sum(1 for i, (p, m) in enumerate(zip(labels, mods)) if p == pid and m == mods[picked[0]])
                if available >= 3:
                    assert len(set(picked)) == 3


def test_replacement_when_an_identity_has_few_images() -> None:
    labels = [0, 0, 1, 1]
    mods = [VISIBLE, INFRARED, VISIBLE, INFRARED]
    batch = next(iter(IdentityModalitySampler(labels, mods, num_ids=2, num_instances=4)))
    assert len(batch) == 16 and sorted(set(batch)) == [0, 1, 2, 3]


def test_epochs_and_determinism() -> None:
    labels, mods = _toy()
    a = IdentityModalitySampler(labels, mods, num_ids=4, num_instances=2, seed=0)
    b = IdentityModalitySampler(labels, mods, num_ids=4, num_instances=2, seed=0)
    assert list(a) == list(b)
    first = list(a)
    a.set_epoch(1)
    assert list(a) != first
    b.set_epoch(1)
    assert list(a) == list(b)
    c = IdentityModalitySampler(labels, mods, num_ids=4, num_instances=2, seed=5)
    assert list(c) != first


@pytest.mark.parametrize(("num_ids", "per_step"), [(10, 3), (12, 4), (7, 2), (11, 5)])
def test_identities_are_drawn_in_rounds(num_ids: int, per_step: int) -> None:
    """The design (sampler docstring): identities come from a shuffled order refilled when fewer than a step's
    worth are left: the leftovers first, then every other identity once. With n eligible identities, p per step
    and l = n mod p, each block of floor(n / p) consecutive steps (from the epoch's start) therefore draws n - l
    distinct identities, and the l it missed open the next block's first step."""
    labels, mods = _toy(num_ids=num_ids, seed=num_ids)
    sampler = IdentityModalitySampler(labels, mods, num_ids=per_step, num_instances=2, seed=3)
    block, left = divmod(num_ids, per_step)
    for epoch in range(10):
        sampler.set_epoch(epoch)
        steps = [[labels[i] for i in batch[: per_step * 2 : 2]] for batch in sampler]  # one index per identity
        for start in range(0, len(steps), block):
            drawn = [pid for step in steps[start : start + block] for pid in step]
            assert len(set(drawn)) == len(drawn), (epoch, start)  # no identity twice in a block
            missed = set(range(num_ids)) - set(drawn)
            if start + block < len(steps):  # a complete block with a next one
                assert len(missed) == left and missed <= set(steps[start + block]), (epoch, start)


def test_identities_are_used_evenly() -> None:
    """The per-epoch spread the rounds guarantee. Here n = 10 identities, p = 3 per step, l = 1: blocks of 3 steps,
    and the epoch has 7 steps = blocks of 3, 3 and 1 steps. Block 1 draws every identity once but one (a); block 2
    draws a first and then 8 distinct others, missing one (b); the last step draws b and 2 more. So a is drawn
    0 + 1 + (0 or 1) times, b 1 + 0 + 1, the rest 1 + 1 + (0 or 1): per epoch max - min <= 3 - 1 = 2. (A sampler
    that draws 3 distinct random identities per step meets that bound in ~10 % of epochs, so 20 epochs catch it.)
    """
    labels, mods = _toy(num_ids=10)
    sampler = IdentityModalitySampler(labels, mods, num_ids=3, num_instances=2)
    assert len(sampler) == 7  # the case derived above
    for epoch in range(20):
        sampler.set_epoch(epoch)
        counts = np.zeros(10, dtype=int)
        for batch in sampler:
            for pid in {labels[i] for i in batch}:
                counts[pid] += 1
        assert counts.max() - counts.min() <= 2, (epoch, counts)


@pytest.mark.parametrize("world_size", [2, 3])
def test_ddp_partition(world_size: int) -> None:
    labels, mods = _toy(num_ids=30, seed=2)
    samplers = [
        IdentityModalitySampler(labels, mods, num_ids=3, num_instances=2, seed=7, rank=r, world_size=world_size)
        for r in range(world_size)
    ]
    lengths = {len(s) for s in samplers}
    assert len(lengths) == 1
    per_rank = [list(s) for s in samplers]
    assert all(len(batches) == len(samplers[0]) for batches in per_rank)
    seen = set()
    for step in range(len(samplers[0])):
        ids = [{labels[i] for i in per_rank[r][step]} for r in range(world_size)]
        for r in range(world_size):
            for q in range(r + 1, world_size):
                assert not ids[r] & ids[q], "ranks share an identity in one step"
        seen.update(*ids)
    eligible = set(range(30))
    if len(samplers[0]) * 3 * world_size >= len(eligible):
        assert seen == eligible  # the ranks together cover every identity in an epoch


def test_default_rank_without_distributed() -> None:
    labels, mods = _toy()
    sampler = IdentityModalitySampler(labels, mods, num_ids=2)
    assert (sampler.rank, sampler.world_size) == (0, 1)


def test_errors() -> None:
    with pytest.raises(ValueError, match="both a visible and an infrared"):
        IdentityModalitySampler([0, 0, 1], [VISIBLE, VISIBLE, INFRARED])
    labels, mods = _toy(num_ids=5)
    with pytest.raises(ValueError, match="lower num_ids"):
        IdentityModalitySampler(labels, mods, num_ids=3, rank=0, world_size=2)
    with pytest.raises(ValueError, match="same length"):
        IdentityModalitySampler([0, 1], [0])
    with pytest.raises(ValueError, match="rank"):
        IdentityModalitySampler(labels, mods, num_ids=1, rank=2, world_size=2)
    with pytest.raises(ValueError, match="VISIBLE"):
        IdentityModalitySampler([0, 0], [0, 2])
    with pytest.raises(TypeError):
        IdentityModalitySampler([0.5, 1.0], [0, 1])


@pytest.mark.parametrize("world_size", [2, 4])
def test_ranks_split_the_single_process_global_batch(world_size: int) -> None:
    """N ranks x (num_ids / N) identities draw exactly the samples (and augmentation seeds) of one process with
    num_ids identities: each rank gets its identities' visible block and infrared block of the global batch."""
    labels, mods = _toy(num_ids=30, seed=2)
    num_ids, k = 8, 3
    single = IdentityModalitySampler(labels, mods, num_ids=num_ids, num_instances=k, seed=5, with_seeds=True)
    ranks = [
        IdentityModalitySampler(
            labels, mods, num_ids=num_ids // world_size, num_instances=k, seed=5, rank=r, world_size=world_size,
            with_seeds=True,
        )
        for r in range(world_size)
    ]  # fmt: skip
    for epoch in (0, 3):
        for s in (single, *ranks):
            s.set_epoch(epoch)
        per_rank = [list(s) for s in ranks]
        assert len(single) == len(ranks[0])
        for step, batch in enumerate(single):
            vis, ir = batch[: num_ids * k], batch[num_ids * k :]  # (index, seed) pairs, identity by identity
            block = num_ids // world_size * k
            expected = [vis[r * block : (r + 1) * block] + ir[r * block : (r + 1) * block] for r in range(world_size)]
            assert [per_rank[r][step] for r in range(world_size)] == expected
    plain = IdentityModalitySampler(labels, mods, num_ids=num_ids, num_instances=k, seed=5)
    plain.set_epoch(3)
    assert next(iter(plain)) == [i for i, _ in next(iter(single))]
