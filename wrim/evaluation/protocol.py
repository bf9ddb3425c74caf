"""Run a dataset's whole evaluation protocol: embed query / gallery, rank, score every trial, average.

Shape legend:
    B: batch, D: embedding size, Q / G: query / gallery images of one trial.

    model(images (B, 3, H, W), modalities (B,)) -> (B, D) embeddings; distances (Q, G), smaller = more similar.

The field's procedure [N] (AGW / DEEN ``test.py``): the query set is fixed, the gallery is resampled per trial
(SYSU-MM01 / LLCM seeds 0..9; RegDB has one split per trained model), each trial is scored with the protocol's
``eval_*`` function and the CMC, mAP and mINP are averaged over the trials. Images shared by several trials are
embedded once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from wrim.evaluation.metrics import RankMetrics, evaluate, mean_metrics
from wrim.evaluation.rerank import k_reciprocal_rerank
from wrim.flip import flip_average
from wrim.pairs import cosine_similarity_matrix

if TYPE_CHECKING:
    from wrim.data import ImageRecord, TestSplit, VIReIDDataset

__all__ = ["DISTANCES", "ProtocolResult", "evaluate_protocol", "extract_features", "pairwise_distance"]

DISTANCES: tuple[str, ...] = ("cosine", "euclidean")


@dataclass
class ProtocolResult:
    """Metrics of every trial of a protocol and their average.

    Attributes:
        mean: the trial average (mean CMC, mean mAP, mean mINP), the number the field reports.
        trials: one ``RankMetrics`` per trial, in the order of ``trial_ids``.
        trial_ids: the trials evaluated.
    """

    mean: RankMetrics
    trials: list[RankMetrics]
    trial_ids: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, float]:
        """The trial average as ``{name: value}`` in percent, one value per ``METRIC_NAMES``."""
        return self.mean.as_dict()


def pairwise_distance(query: torch.Tensor, gallery: torch.Tensor, distance: str = "cosine") -> torch.Tensor:
    """Distances between two embedding sets, smaller = more similar.

    Args:
        query: (Q, D) embeddings.
        gallery: (G, D) embeddings.
        distance: ``"cosine"`` (``1 - cos`` of the L2-normalised embeddings, the ranking of the reference code's
            ``-q @ g.T`` on normalised features) or ``"euclidean"``.

    Returns:
        (Q, G) float32 distances.
    """
    if distance not in DISTANCES:
        raise ValueError(f"unknown distance {distance!r}; choose one of {DISTANCES}")
    if query.dim() != 2 or gallery.dim() != 2 or query.shape[1] != gallery.shape[1]:
        raise ValueError(
            f"query and gallery must be (Q, D) and (G, D) with the same D; got {tuple(query.shape)} and "
            f"{tuple(gallery.shape)}"
        )
    query, gallery = query.float(), gallery.float()
    if distance == "cosine":
        return 1.0 - cosine_similarity_matrix(query, gallery)  # (Q, D), (G, D) -> (Q, G)
    return torch.cdist(query, gallery)


def _model_device(model: Callable) -> torch.device:
    if isinstance(model, torch.nn.Module):
        for tensor in model.parameters():
            return tensor.device
        for tensor in model.buffers():
            return tensor.device
    return torch.device("cpu")


@torch.no_grad()
def extract_features(
    model: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    records: Sequence[ImageRecord],
    img_size: tuple[int, int] = (288, 144),
    batch_size: int = 128,
    device: torch.device | str | None = None,
    flip: bool = False,
    num_workers: int = 2,
    shard: bool = False,
) -> torch.Tensor:
    """Embed images with a model in eval mode (its training flag is restored afterwards).

    Args:
        model: ``model(images, modalities) -> (B, D)``.
        records: ``wrim.data.ImageRecord`` s, loaded with ``wrim.data.build_test_loader``.
        img_size: (H, W) of the test transform.
        batch_size: images per forward pass.
        device: where the model runs; default its parameters' device (CPU for a parameter-free callable).
        flip: average with the embedding of the horizontally flipped image, renormalised
            ([`wrim.evaluation.flip_average()`][wrim.evaluation.flip_average]); a model with ``.embed(images,
            modalities, flip)`` (``WRIMNet``) is called through it, with or without flip. DEEN's unnormalised sum:
            docs: Evaluation.
        num_workers: DataLoader workers.
        shard: under an active process group, embed only this rank's contiguous block of ``records``
            (`wrim.distributed.shard_range`) and gather every rank's block in order, so extraction time falls as
            1/N and every rank returns all N embeddings (each rank must call; the model must be the same on every
            rank). A no-op in one process or with fewer records than ranks.

    Returns:
        (N, D) float32 embeddings on ``device``, in the order of ``records``.
    """
    from wrim.data import build_test_loader
    from wrim.distributed import gather_shards, is_distributed, shard_range

    if shard and is_distributed() and len(records) >= torch.distributed.get_world_size():  # no empty block
        block = shard_range(len(records))
        mine = list(records)[block.start : block.stop]
        mine = extract_features(model, mine, img_size, batch_size, device, flip, num_workers)  # (n_r, D)
        return gather_shards(mine, len(records))  # (n_r, D) -> (N, D) in the order of records

    device = _model_device(model) if device is None else torch.device(device)
    was_training = getattr(model, "training", None)
    if isinstance(model, torch.nn.Module):
        model.eval()
    feats = []
    try:
        loader = build_test_loader(records, img_size=img_size, batch_size=batch_size, num_workers=num_workers)
        for images, _, _, modalities in loader:
            images, modalities = images.to(device), modalities.to(device)  # (B, 3, H, W), (B,)
            if hasattr(model, "embed"):  # WRIMNet: routed by modality, through a model.compile()-d forward too
                out = model.embed(images, modalities, flip=flip)
            elif flip:
                out = flip_average(model, images, modalities)
            else:
                out = model(images, modalities)
            if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != images.shape[0]:
                got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                raise ValueError(
                    f"the model must return (B, D) embeddings in eval mode for a batch of {images.shape[0]}; got {got}"
                )
            feats.append(out.float())  # (B, D)
    finally:
        if isinstance(model, torch.nn.Module) and was_training is not None:
            model.train(was_training)
    return torch.cat(feats)


def trial_splits(dataset: VIReIDDataset, trial_ids: list[int], protocol: dict) -> list[TestSplit]:
    """Each trial's ``dataset.test_split(trial, **protocol)``, logging first how the galleries are drawn.

    A reader with a choice of galleries (SYSU-MM01: the official ``rand_perm_cam.mat`` or seeded sampling) says
    which one this evaluation uses through its ``log_galleries(mode, shots)``, once per mode and shots; checks that
    read a split for its counts stay silent.
    """
    log_galleries = getattr(dataset, "log_galleries", None)
    if log_galleries is not None:
        log_galleries(protocol.get("mode", "all"), protocol.get("shots", 1))
    return [dataset.test_split(trial, **protocol) for trial in trial_ids]


def evaluate_protocol(
    model_or_features: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | Mapping[str, torch.Tensor],
    dataset: VIReIDDataset,
    trials: Sequence[int] | None = None,
    img_size: tuple[int, int] = (288, 144),
    batch_size: int = 128,
    device: torch.device | str | None = None,
    flip: bool = False,
    distance: str = "cosine",
    rerank: bool = False,
    *,
    num_workers: int = 2,
    max_rank: int = 20,
    cmc: str = "reference",
    **protocol,
) -> ProtocolResult:
    """Evaluate a model (or precomputed embeddings) on every trial of a dataset's protocol and average [N].

    Each trial's ``dataset.test_split(trial, **protocol)`` gives query / gallery and the camera rule; every image
    used by any trial is embedded once; each trial is scored with [`evaluate()`][wrim.evaluation.evaluate]; the CMC,
    mAP and mINP are averaged over the trials.

    Examples:
        ```python
        result = evaluate_protocol(model, SYSUMM01(root), mode="all")   # 10 trials
        result.as_dict()  # {"R1": ..., "R5": ..., "R10": ..., "R20": ..., "mAP": ..., "mINP": ...} in %
        ```

    Args:
        model_or_features: a model ``model(images, modalities) -> (B, D)`` (put in eval mode for the call), or a
            mapping from image path to its precomputed (D,) embedding.
        dataset: a ``wrim.data.VIReIDDataset`` (``SYSUMM01``, ``RegDB``, ``LLCM``, ``SyntheticVIReID``).
        trials: the trials to run; default ``dataset.default_trials`` (10 gallery seeds for SYSU-MM01 / LLCM).
        img_size: (H, W) of the test transform.
        batch_size: images per forward pass.
        device: where the model runs; default its parameters' device.
        flip: test-time horizontal flip (see [`extract_features()`][wrim.evaluation.extract_features]).
        distance: ``"cosine"`` or ``"euclidean"``.
        rerank: apply k-reciprocal re-ranking (Zhong et al. 2017; k1=20, k2=6, lambda=0.3) to each trial.
        num_workers: DataLoader workers.
        max_rank: CMC length.
        cmc: ``"reference"`` (the curve the reference code returns) or ``"standard"``.
        **protocol: passed to ``dataset.test_split`` (SYSU-MM01 ``mode``, ``shots``; RegDB / LLCM ``direction``).

    Returns:
        ``ProtocolResult`` with ``.mean``, ``.trials`` and ``.as_dict()``.
    """
    if distance not in DISTANCES:
        raise ValueError(f"unknown distance {distance!r}; choose one of {DISTANCES}")
    trial_ids = list(dataset.default_trials if trials is None else trials)
    if not trial_ids:
        raise ValueError(f"no trials to evaluate: pass trials=... ({type(dataset).__name__} has no default_trials)")
    splits = trial_splits(dataset, trial_ids, protocol)

    # Every image used by any trial, once (the query set is shared by all trials, galleries overlap).
    unique: dict[str, ImageRecord] = {}
    for split in splits:
        for record in (*split.query, *split.gallery):
            unique.setdefault(record.path, record)
    feats = _embed_all(model_or_features, unique, img_size, batch_size, device, flip, num_workers)  # (N, D)
    index = {path: i for i, path in enumerate(unique)}
    results = [_score_split(feats, index, split, distance, rerank, max_rank, cmc) for split in splits]
    return ProtocolResult(mean=mean_metrics(results), trials=results, trial_ids=trial_ids)


def _embed_all(
    model_or_features: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | Mapping[str, torch.Tensor],
    records: Mapping[str, ImageRecord],
    img_size: tuple[int, int],
    batch_size: int,
    device: torch.device | str | None,
    flip: bool,
    num_workers: int,
) -> torch.Tensor:
    """The (N, D) embeddings of ``records`` (by path, in order): looked up in a mapping or computed by a model."""
    if isinstance(model_or_features, Mapping):
        missing = [path for path in records if path not in model_or_features]
        if missing:
            raise ValueError(
                f"the feature mapping lacks {len(missing)} of the {len(records)} images the protocol uses, "
                f"e.g. '{missing[0]}'; key it by ImageRecord.path"
            )
        feats = torch.stack([torch.as_tensor(model_or_features[path]).float().flatten() for path in records])
        return feats if device is None else feats.to(device)
    if callable(model_or_features):
        return extract_features(
            model_or_features,
            list(records.values()),
            img_size=img_size,
            batch_size=batch_size,
            device=device,
            flip=flip,
            num_workers=num_workers,
        )  # (N, D)
    raise TypeError(
        "model_or_features must be a model (images, modalities) -> (B, D) or a mapping path -> feature; "
        f"got {type(model_or_features).__name__}"
    )


def _score_split(
    feats: torch.Tensor,
    index: Mapping[str, int],
    split: TestSplit,
    distance: str,
    rerank: bool,
    max_rank: int,
    cmc: str,
) -> RankMetrics:
    """One trial: the query / gallery rows of ``feats`` (N, D), their distances (re-ranked if asked), the metrics."""
    q_idx = torch.tensor([index[r.path] for r in split.query], device=feats.device)
    g_idx = torch.tensor([index[r.path] for r in split.gallery], device=feats.device)
    q_feat, g_feat = feats[q_idx], feats[g_idx]  # (Q, D), (G, D)
    dist = pairwise_distance(q_feat, g_feat, distance)  # (Q, G)
    if rerank:
        dist = k_reciprocal_rerank(
            dist, pairwise_distance(q_feat, q_feat, distance), pairwise_distance(g_feat, g_feat, distance)
        )
    return evaluate(
        dist,
        [r.pid for r in split.query],
        [r.pid for r in split.gallery],
        [r.camid for r in split.query],
        [r.camid for r in split.gallery],
        protocol=split.protocol,
        max_rank=max_rank,
        cmc=cmc,
    )
