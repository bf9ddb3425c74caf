"""Tests for wrim.evaluation.visualize: plot_ranklist writes a PNG."""

from __future__ import annotations

import sys

import pytest
import torch

from wrim.data import SyntheticVIReID
from wrim.evaluation import plot_ranklist


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic") / "set"
    dataset = SyntheticVIReID(root=root, num_ids=4, num_test_ids=3, images_per_camera=1, img_size=(32, 16))
    return dataset.test_split(0)


def test_writes_png(split, tmp_path):
    dist = torch.rand(len(split.query), len(split.gallery))
    out = plot_ranklist(
        dist, split.query, split.gallery, tmp_path / "figs" / "ranks.png", protocol=split.protocol, topk=4
    )
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
    # more columns than gallery images, explicit rows, numpy input
    out = plot_ranklist(
        dist.numpy(), split.query, split.gallery, tmp_path / "b.png", protocol="regdb", topk=50, query_indices=[0, 2]
    )
    assert out.stat().st_size > 1000


def test_errors(split, tmp_path, monkeypatch):
    dist = torch.rand(len(split.query), len(split.gallery))
    with pytest.raises(ValueError, match="distmat must be"):
        plot_ranklist(dist[:1], split.query, split.gallery, tmp_path / "x.png")
    with pytest.raises(ValueError, match="query_indices"):
        plot_ranklist(dist, split.query, split.gallery, tmp_path / "x.png", query_indices=[99])
    with pytest.raises(ValueError, match="unknown protocol"):
        plot_ranklist(dist, split.query, split.gallery, tmp_path / "x.png", protocol="market")
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r"wrim\[train\]"):
        plot_ranklist(dist, split.query, split.gallery, tmp_path / "x.png")
