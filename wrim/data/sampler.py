"""Identity x modality batch sampler for cross-modality training (AGW's ``IdentitySampler``, made DDP-aware).

Every batch holds ``num_ids`` identities, each with ``num_instances`` visible and ``num_instances`` infrared images:
``B = num_ids * 2 * num_instances`` indices, all visible ones first (identity by identity) then all infrared ones in
the same identity order, as AGW concatenates ``cat([input_rgb, input_ir])``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
import torch.distributed as dist

from wrim.modality import INFRARED, VISIBLE

__all__ = ["IdentityModalitySampler"]


def _as_int_list(values: Sequence[int] | torch.Tensor | np.ndarray, name: str) -> np.ndarray:
    arr = values.detach().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values)
    if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
        raise TypeError(f"{name} must be a 1-D sequence of ints, got shape {arr.shape} and dtype {arr.dtype}")
    return arr.astype(np.int64)


class IdentityModalitySampler(torch.utils.data.Sampler[list[int]]):
    """Batch sampler: ``num_ids`` identities x (``num_instances`` visible + ``num_instances`` infrared) per batch.

    Only identities with at least one visible and one infrared image are sampled. Identities are taken from a
    shuffled order that is reshuffled when used up (never twice in one step), so every identity is drawn about
    equally often; an identity's images are drawn without replacement when it has at least ``num_instances`` of a
    modality, with replacement otherwise (AGW always draws with replacement).

    An epoch has ``ceil(max(#visible, #infrared) / (num_ids * num_instances * world_size))`` batches per rank, about
    one pass over the larger modality as in AGW (which uses ``int(N / (P * K)) + 1``). Under DDP every step draws
    ``num_ids * world_size`` distinct identities from the order shared by all ranks, and rank ``r`` takes the
    ``r``-th block of ``num_ids``: ranks see disjoint identities at each step and the same number of batches.

    The global batch is a deterministic function of ``(seed, epoch)`` alone: the identities of a step, the images
    drawn for each identity and (``with_seeds``) every sample's augmentation seed come from one generator per
    ``(seed, epoch, step)`` that draws for all ``num_ids * world_size`` identities, and rank ``r`` keeps its block.
    So N ranks x ``num_ids`` identities yield exactly the samples of one process with ``N * num_ids`` identities
    (each rank's batch is the visible and infrared block of its identities; one process holds all visible blocks
    first). When N does not divide the single-process ``num_ids``, no split reproduces it: choose ``num_ids`` per
    rank so that ``N * num_ids`` is the global batch you want (docs: Training). Call
    [`set_epoch()`][wrim.data.IdentityModalitySampler.set_epoch] before each epoch to get a new permutation (as with
    ``DistributedSampler``).

    Args:
        labels: the identity label of every dataset item.
        modalities: the modality of every dataset item, ``wrim.VISIBLE`` (0) or ``wrim.INFRARED`` (1).
        num_ids: identities per batch (per rank).
        num_instances: images per identity and modality in a batch.
        seed: base seed.
        rank: this process's rank; default ``torch.distributed.get_rank()`` when initialised, else 0.
        world_size: number of processes; default ``torch.distributed.get_world_size()`` when initialised, else 1.
        with_seeds: yield ``(index, seed)`` pairs instead of indices; `wrim.data.ImageDataset` then seeds each
            sample's augmentation with its seed (the train loader does this).
    """

    def __init__(
        self,
        labels: Sequence[int] | torch.Tensor | np.ndarray,
        modalities: Sequence[int] | torch.Tensor | np.ndarray,
        num_ids: int = 8,
        num_instances: int = 4,
        seed: int = 0,
        rank: int | None = None,
        world_size: int | None = None,
        with_seeds: bool = False,
    ) -> None:
        labels_arr = _as_int_list(labels, "labels")
        mods = _as_int_list(modalities, "modalities")
        if labels_arr.shape != mods.shape:
            raise ValueError(f"labels and modalities must have the same length, got {len(labels_arr)} and {len(mods)}")
        if np.any((mods != VISIBLE) & (mods != INFRARED)):
            raise ValueError("modalities may only hold wrim.VISIBLE (0) or wrim.INFRARED (1)")
        if num_ids < 1 or num_instances < 1:
            raise ValueError(f"num_ids and num_instances must be >= 1, got {num_ids} and {num_instances}")
        distributed = dist.is_available() and dist.is_initialized()
        self.world_size = int(world_size if world_size is not None else dist.get_world_size() if distributed else 1)
        self.rank = int(rank if rank is not None else dist.get_rank() if distributed else 0)
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank must be in [0, world_size={self.world_size}), got {self.rank}")
        self.num_ids, self.num_instances, self.seed, self.epoch = int(num_ids), int(num_instances), int(seed), 0
        self.with_seeds = bool(with_seeds)

        self.index_by_id: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for pid in np.unique(labels_arr):
            mask = labels_arr == pid
            vis = np.flatnonzero(mask & (mods == VISIBLE))
            ir = np.flatnonzero(mask & (mods == INFRARED))
            if vis.size and ir.size:
                self.index_by_id[int(pid)] = (vis, ir)
        self.ids = np.array(sorted(self.index_by_id), dtype=np.int64)
        if self.ids.size == 0:
            raise ValueError(
                "no identity has both a visible and an infrared image; cross-modality batches are impossible"
            )
        per_step = self.num_ids * self.world_size
        if self.ids.size < per_step:
            raise ValueError(
                f"{self.ids.size} identities have both modalities but a step needs num_ids * world_size = {per_step} "
                "distinct ones; lower num_ids"
            )
        longest = max(int(np.sum(mods == VISIBLE)), int(np.sum(mods == INFRARED)))
        self.num_batches = max(1, -(-longest // (self.num_ids * self.num_instances * self.world_size)))

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose permutation the next iteration yields."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_batches

    def _step_ids(self) -> list[np.ndarray]:
        """The ``num_ids * world_size`` identities of every step of this epoch (same on every rank)."""
        rng = np.random.default_rng([self.seed, self.epoch])
        per_step = self.num_ids * self.world_size
        order = list(rng.permutation(self.ids))
        steps = []
        for _ in range(self.num_batches):
            if len(order) < per_step:  # refill: the leftovers first, then a new permutation of the other ids
                left = set(order)
                order = order + [pid for pid in rng.permutation(self.ids) if pid not in left]
            steps.append(np.array(order[:per_step], dtype=np.int64))
            order = order[per_step:]
        return steps

    def _draw(self, rng: np.random.Generator, pool: np.ndarray) -> np.ndarray:
        return rng.choice(pool, self.num_instances, replace=pool.size < self.num_instances)

    def _step_draw(self, step: int, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Images and augmentation seeds of one step's global identities, independent of the rank split.

        Returns (2, len(ids), num_instances) dataset indices and seeds, indexed [modality, identity slot, instance].
        """
        rng = np.random.default_rng([self.seed, self.epoch, step + 1])
        vis = [self._draw(rng, self.index_by_id[int(pid)][0]) for pid in ids]
        ir = [self._draw(rng, self.index_by_id[int(pid)][1]) for pid in ids]
        indices = np.stack([np.stack(vis), np.stack(ir)])  # (2, P, K)
        seeds = rng.integers(0, 2**31 - 1, size=indices.shape)  # (2, P, K)
        return indices, seeds

    def __iter__(self) -> Iterator[list[int]] | Iterator[list[tuple[int, int]]]:
        lo = self.rank * self.num_ids
        for step, ids in enumerate(self._step_ids()):
            indices, seeds = self._step_draw(step, ids)  # (2, num_ids * world_size, K) each
            mine = indices[:, lo : lo + self.num_ids].reshape(-1).tolist()  # visible block, then infrared block
            if self.with_seeds:
                yield list(zip(mine, seeds[:, lo : lo + self.num_ids].reshape(-1).tolist()))
            else:
                yield mine
