"""Tests for wrim.evaluation.protocol: evaluate_protocol on a tiny synthetic SYSU-layout set."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from tests.metric_bounds import assert_metric_bounds
from wrim.data import SyntheticVIReID
from wrim.evaluation import ProtocolResult, evaluate, evaluate_protocol, k_reciprocal_rerank, pairwise_distance

IMG_SIZE = (32, 16)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    return SyntheticVIReID(root=root / "set", num_ids=4, num_test_ids=3, images_per_camera=1, img_size=IMG_SIZE)


class TinyNet(nn.Module):
    """Counts the images it embeds and checks it runs in eval mode."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.seen = 0

    def forward(self, images, modalities):
        assert not self.training
        assert modalities.shape == (images.shape[0],)
        self.seen += images.shape[0]
        return self.conv(images).mean((2, 3))  # (B, 3, H, W) -> (B, 8)


def _all_records(dataset, trials, **protocol):
    splits = [dataset.test_split(t, **protocol) for t in trials]
    return splits, {r.path: r for s in splits for r in (*s.query, *s.gallery)}


def test_precomputed_features_perfect(dataset):
    splits, records = _all_records(dataset, dataset.default_trials)
    # one-hot identity features: every query's nearest gallery images share its identity
    feats = {path: nn.functional.one_hot(torch.tensor(r.pid), 16).float() for path, r in records.items()}
    result = evaluate_protocol(feats, dataset)
    assert isinstance(result, ProtocolResult)
    assert len(result.trials) == 10 and result.trial_ids == list(range(10))
    assert result.mean.mAP == pytest.approx(1.0) and result.mean.mINP == pytest.approx(1.0)
    assert result.as_dict()["R1"] == pytest.approx(100.0)


def test_precomputed_features_match_manual_average(dataset):
    splits, records = _all_records(dataset, (0, 3), mode="indoor")
    gen = torch.Generator().manual_seed(0)
    feats = {path: torch.randn(6, generator=gen) for path in records}
    result = evaluate_protocol(feats, dataset, trials=(0, 3), distance="euclidean", mode="indoor")
    manual = []
    for s in splits:
        q = torch.stack([feats[r.path] for r in s.query])
        g = torch.stack([feats[r.path] for r in s.gallery])
        manual.append(
            evaluate(
                torch.cdist(q, g),
                [r.pid for r in s.query],
                [r.pid for r in s.gallery],
                [r.camid for r in s.query],
                [r.camid for r in s.gallery],
                protocol=s.protocol,
            )
        )
    assert result.mean.mAP == pytest.approx((manual[0].mAP + manual[1].mAP) / 2)
    assert result.mean.mINP == pytest.approx((manual[0].mINP + manual[1].mINP) / 2)
    torch.testing.assert_close(result.trials[1].cmc, manual[1].cmc)


def test_rerank_is_applied_to_each_trial(dataset):
    """rerank=True scores each trial on k_reciprocal_rerank of its cosine distances (checked against the loop
    reference in test_rerank.py), and on these features that changes the metrics."""
    trials = (0, 1)
    splits, records = _all_records(dataset, trials)
    gen = torch.Generator().manual_seed(0)
    feats = {path: torch.randn(6, generator=gen) for path in records}
    plain = evaluate_protocol(feats, dataset, trials=trials)
    reranked = evaluate_protocol(feats, dataset, trials=trials, rerank=True)
    for split, got in zip(splits, reranked.trials, strict=True):
        q = torch.stack([feats[r.path] for r in split.query])
        g = torch.stack([feats[r.path] for r in split.gallery])
        dist = k_reciprocal_rerank(pairwise_distance(q, g), pairwise_distance(q, q), pairwise_distance(g, g))
        expected = evaluate(
            dist,
            [r.pid for r in split.query],
            [r.pid for r in split.gallery],
            [r.camid for r in split.query],
            [r.camid for r in split.gallery],
            protocol=split.protocol,
        )
        assert got.mAP == pytest.approx(expected.mAP) and got.mINP == pytest.approx(expected.mINP)
        torch.testing.assert_close(got.cmc, expected.cmc)
    assert reranked.mean.mAP != pytest.approx(plain.mean.mAP)  # the case is one re-ranking changes


def test_model_embeds_each_image_once_and_restores_mode(dataset):
    model = TinyNet().train()
    _, records = _all_records(dataset, (0, 1, 2))
    result = evaluate_protocol(model, dataset, trials=(0, 1, 2), img_size=IMG_SIZE, batch_size=4, num_workers=0)
    assert model.training  # restored
    assert model.seen == len(records)  # shared images embedded once
    assert len(result.trials) == 3
    assert_metric_bounds(result.as_dict(), num_test_ids=3)


def test_model_flip_and_rerank(dataset):
    model = TinyNet().eval()
    plain = evaluate_protocol(model, dataset, trials=(0,), img_size=IMG_SIZE, num_workers=0)
    flipped = evaluate_protocol(model, dataset, trials=(0,), img_size=IMG_SIZE, num_workers=0, flip=True)
    reranked = evaluate_protocol(model, dataset, trials=(0,), img_size=IMG_SIZE, num_workers=0, rerank=True)
    assert not model.training
    assert model.seen == 4 * len(dataset.test_split(0).query + dataset.test_split(0).gallery)
    for r in (plain, flipped, reranked):
        assert_metric_bounds(r.as_dict(), num_test_ids=3)  # R20 = 100: every gallery here has <= 12 images


def test_model_with_embed_is_used_for_flip(dataset):
    class WithEmbed(TinyNet):
        def embed(self, images, modalities, flip=True):
            self.embed_calls = getattr(self, "embed_calls", 0) + 1
            return self(images, modalities)

    model = WithEmbed()
    evaluate_protocol(model, dataset, trials=(0,), img_size=IMG_SIZE, num_workers=0, flip=True)
    assert model.embed_calls >= 1


def test_errors(dataset):
    with pytest.raises(ValueError, match="lacks"):
        evaluate_protocol({}, dataset, trials=(0,))
    with pytest.raises(TypeError, match="model_or_features"):
        evaluate_protocol(3, dataset, trials=(0,))
    with pytest.raises(ValueError, match="unknown distance"):
        evaluate_protocol({}, dataset, distance="hamming")
    with pytest.raises(ValueError, match="no trials"):
        evaluate_protocol({}, dataset, trials=())
    with pytest.raises(ValueError, match="must return"):
        evaluate_protocol(lambda x, m: x, dataset, trials=(0,), img_size=IMG_SIZE, num_workers=0)


def test_pairwise_distance():
    q, g = torch.randn(4, 5), torch.randn(3, 5)
    cos = pairwise_distance(q, g)
    expected = 1 - nn.functional.cosine_similarity(q[:, None], g[None], dim=-1)
    torch.testing.assert_close(cos, expected)
    torch.testing.assert_close(pairwise_distance(q, g, "euclidean"), torch.cdist(q, g))
    with pytest.raises(ValueError, match="same D"):
        pairwise_distance(q, torch.randn(3, 4))
