"""StagedBackbone: CNN / ViT staging, last stride 1, backbone swap, local pretrained files and their errors."""

from __future__ import annotations

import pytest
import timm
import torch
from safetensors.torch import save_file
from torch import nn

from wrim.models import StagedBackbone, WRIMNet

MODALITIES = torch.tensor([0, 1])


@pytest.mark.parametrize("backbone", ["resnet18", "convnext_atto", "vit_tiny_patch16_224"])
def test_backbone_swap_forward_backward(backbone) -> None:
    """issue 4 / 11: resnet18, convnext_atto (40 channels: 5 heads by default) and vit_tiny build and train with
    default arguments at 256x128."""
    model = WRIMNet(backbone, num_classes=3, img_size=(256, 128)).train()
    out = model(torch.randn(2, 3, 256, 128), MODALITIES)
    loss = sum(logits.logsumexp(1).mean() for logits in out.logits.values()) + out.p5_projection.square().mean()
    loss.backward()
    grads = [p.grad for p in model.miims.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert out.features["p5_global"].shape == (2, model.backbone.channels[3])
    if backbone.startswith("vit"):
        expected = (192,) * 4
    else:
        feature_info = timm.create_model(backbone, features_only=True, out_indices=(-4, -3, -2, -1)).feature_info
        expected = tuple(feature_info.channels())
    assert model.backbone.channels == expected


def _dilations(module: nn.Module) -> set[tuple[int, int]]:
    return {m.dilation for m in module.modules() if isinstance(m, nn.Conv2d)}


def test_resnet_last_stride() -> None:
    images = torch.randn(1, 3, 64, 32)
    plain = StagedBackbone("resnet18", last_stride=1).eval()
    assert plain.reductions == (4, 8, 16, 16)
    assert _dilations(plain.model.layer4) == {(1, 1)}  # re-id convention: no dilation
    assert plain.model.layer4[0].conv1.stride == (1, 1)
    dilated = StagedBackbone("resnet18", last_stride=1, last_stage_dilation=True).eval()
    assert (2, 2) in _dilations(dilated.model.layer4)
    strided = StagedBackbone("resnet18", last_stride=2).eval()
    assert strided.reductions == (4, 8, 16, 32)
    with torch.no_grad():
        sizes = [tuple(m.shape[-2:]) for m in plain(images)]
        assert sizes == [(16, 8), (8, 4), (4, 2), (4, 2)]
        assert [tuple(m.shape[-2:]) for m in dilated(images)] == sizes
        assert tuple(strided(images)[-1].shape[-2:]) == (2, 1)
    # same weights (timm zero-inits each block's last BN, which would hide the dilation): differ only in stage 4
    for module in plain.modules():
        if isinstance(module, nn.BatchNorm2d):
            nn.init.uniform_(module.weight, 0.5, 1.5)
    dilated.load_state_dict(plain.state_dict())
    with torch.no_grad():
        a, b = plain(images), dilated(images)
    torch.testing.assert_close(a[2], b[2])
    assert not torch.allclose(a[3], b[3])


def test_convnext_last_stride_undilated() -> None:
    backbone = StagedBackbone("convnext_atto").eval()
    assert backbone.reductions == (4, 8, 16, 16)
    assert _dilations(backbone.model.stages_3) == {(1, 1)}
    with torch.no_grad():
        assert [tuple(m.shape[1:]) for m in backbone(torch.randn(1, 3, 64, 32))] == [
            (40, 16, 8),
            (80, 8, 4),
            (160, 4, 2),
            (320, 4, 2),
        ]


def test_cnn_stages_cover_the_feature_extractor() -> None:
    backbone = StagedBackbone("resnet18")
    assert backbone.tap_names == ("layer1", "layer2", "layer3", "layer4")
    assert [type(m).__name__ for m in backbone.stage_modules(1)] == ["Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d"] + [
        "Sequential"
    ]
    assert [backbone.stage_modules(k) for k in (2, 3, 4)] == [
        [backbone.model.layer2],
        [backbone.model.layer3],
        [backbone.model.layer4],
    ]
    staged = sum(p.numel() for index in range(1, 5) for p in backbone.stage_parameters(index))
    assert staged == sum(p.numel() for p in backbone.parameters())


def test_vit_stages() -> None:
    """A ViT's stages end at blocks 3, 6, 9, 12 (timm's feature_info names every block); the hook sees (B, N, D)
    tokens and hands the block the (B, D, h, w) patch grid, class token untouched."""
    backbone = StagedBackbone("vit_tiny_patch16_224", img_size=(64, 32)).eval()
    assert backbone.tap_names == ("model.blocks.2", "model.blocks.5", "model.blocks.8", "model.blocks.11")
    assert [layout.kind for layout in backbone.layouts] == ["tokens"] * 4
    assert {(layout.grid, layout.prefix) for layout in backbone.layouts} == {((4, 2), 1)}
    assert backbone.reductions == (16,) * 4
    assert backbone.fixed_size
    vit = backbone.model.model
    assert vit.pos_embed.shape == (1, 1 + 8, 192)  # resized to the 4x2 grid (+ class token)
    images = torch.randn(2, 3, 64, 32)
    seen = {}

    class Record(nn.Module):
        def forward(self, x):
            seen["map"] = x
            return x * 2

    with torch.no_grad():
        tokens = vit.blocks[:3](vit.norm_pre(vit._pos_embed(vit.patch_embed(images))))  # (B, 1 + 8, D)
        backbone.set_block(1, Record())
        maps = backbone(images)
    torch.testing.assert_close(seen["map"][:, :, 1, 0], tokens[:, 1 + 2])  # row-major patch order
    torch.testing.assert_close(maps[0], 2 * seen["map"])
    with torch.no_grad():  # stage 2 consumed the doubled patch tokens and the untouched class token
        expected = vit.blocks[3:6](torch.cat([tokens[:, :1], 2 * tokens[:, 1:]], dim=1))[:, 1:]
    torch.testing.assert_close(maps[1], expected.transpose(1, 2).reshape(2, 192, 4, 2))
    staged = sum(p.numel() for index in range(1, 5) for p in backbone.stage_parameters(index))
    assert staged == sum(p.numel() for p in backbone.parameters())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "resnet5"}, "Close timm names: .*resnet50"),
        ({"name": "convnxt_tiny"}, "convnext_tiny"),
        (
            {"name": "vit_tiny_patch16_224", "img_size": (60, 32)},
            r"multiple of .* use img_size=\(48, 32\) or \(64, 32\)",
        ),
        ({"name": "levit_128s"}, "has 3 feature levels"),
        ({"name": "swin_tiny_patch4_window7_224", "last_stride": 1}, "cannot run its last stage at stride 1"),
        ({"name": "resnet18", "img_size": (0, 32)}, "img_size"),
        ({"name": "resnet18", "last_stride": 3}, "last_stride"),
    ],
)
def test_bad_backbones(kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        StagedBackbone(**kwargs)


def test_no_last_stride_one_warns_once_and_builds() -> None:
    """Swin merges patches by reshaping: no stride to change; by default one warning, the backbone's own stride."""
    with pytest.warns(UserWarning, match="cannot run its last stage at stride 1") as record:
        backbone = StagedBackbone("swin_tiny_patch4_window7_224", img_size=(64, 32))
    assert len(record) == 1
    assert backbone.reductions == (4, 8, 16, 32) and backbone.last_stride == 2
    assert [layout.kind for layout in backbone.layouts] == ["NHWC"] * 4


def test_stride_surgery_where_timm_has_no_output_stride() -> None:
    """vgg11_bn has no output_stride: its last-stage max pool is set to stride 1 instead."""
    backbone = StagedBackbone("vgg11_bn", img_size=(64, 32))
    assert backbone.last_stride == 1
    assert backbone.reductions[2] == backbone.reductions[3]
    with torch.no_grad():
        maps = backbone(torch.randn(1, 3, 64, 32))
    assert maps[2].shape[-2:] == maps[3].shape[-2:]


# -------------------------------------------------------------------------------------------- pretrained files


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_pretrained_file(tmp_path, suffix) -> None:
    source = timm.create_model("resnet18")
    path = tmp_path / f"resnet18{suffix}"
    if suffix == ".safetensors":
        save_file(source.state_dict(), str(path))
    else:  # a training checkpoint with a DDP prefix
        torch.save({"state_dict": {f"module.{k}": v for k, v in source.state_dict().items()}, "epoch": 3}, path)
    model = WRIMNet("resnet18", num_classes=3, img_size=(64, 32), pretrained_file=path)
    torch.testing.assert_close(model.backbone.model.layer3[1].conv2.weight, source.layer3[1].conv2.weight)
    torch.testing.assert_close(model.backbone.model.bn1.running_mean, source.bn1.running_mean)


def test_pretrained_file_vit_positional_embedding_resized(tmp_path) -> None:
    source = timm.create_model("vit_tiny_patch16_224")  # 14x14 grid
    path = tmp_path / "vit.safetensors"
    save_file(source.state_dict(), str(path))
    backbone = StagedBackbone("vit_tiny_patch16_224", img_size=(64, 32), pretrained_file=path)
    assert backbone.model.model.pos_embed.shape == (1, 9, 192)
    torch.testing.assert_close(backbone.model.model.blocks[5].mlp.fc1.weight, source.blocks[5].mlp.fc1.weight)


def test_pretrained_file_errors(tmp_path) -> None:
    wrong = tmp_path / "wrong.safetensors"
    save_file(timm.create_model("resnet34").state_dict(), str(wrong))
    with pytest.raises(ValueError, match="pretrained_file .* does not fit backbone 'resnet18'"):
        StagedBackbone("resnet18", pretrained_file=wrong)
    with pytest.raises(FileNotFoundError):
        StagedBackbone("resnet18", pretrained_file=tmp_path / "missing.pth")
    unsafe = tmp_path / "unsafe.pth"
    torch.save({"state_dict": timm.create_model("resnet18").state_dict(), "config": _Opaque()}, unsafe)
    with pytest.raises(ValueError, match="weights_only=True"):
        StagedBackbone("resnet18", pretrained_file=unsafe)


class _Opaque:
    """A pickled object that ``torch.load(weights_only=True)`` refuses."""


def test_pretrained_download_failure_names_pretrained_file(monkeypatch) -> None:
    """Without internet timm's download raises an OSError; the error must point to ``pretrained_file``."""
    create = timm.create_model

    def offline(name, pretrained=False, **kwargs):
        if pretrained and "pretrained_cfg_overlay" not in kwargs:
            raise OSError("We couldn't connect to 'https://huggingface.co'")
        return create(name, pretrained=pretrained, **kwargs)

    monkeypatch.setattr(timm, "create_model", offline)
    with pytest.raises(RuntimeError, match="pretrained_file="):
        WRIMNet("resnet18", num_classes=3, pretrained=True)


def _ids_seen_by(backbone: StagedBackbone, stage: int, seen: list) -> None:
    class RecordIds(nn.Module):
        def forward(self, x, batch):
            seen.append((stage, batch.ids.tolist(), batch.num_visible))
            return x

    backbone.set_block(stage, RecordIds(), takes_modalities=True)


def test_each_call_and_a_nested_call_see_their_own_modality_batch() -> None:
    """The blocks get the ModalityBatch of the forward call that runs them: a second backbone call made from inside
    stage 1's block (nested) sees its own batch, the outer call's later stages see the outer batch again, and
    after the call no batch is left behind (a direct call of the timm model is a clear error)."""
    backbone = StagedBackbone("resnet18", img_size=(64, 32)).eval()
    images = torch.randn(2, 3, 64, 32)
    seen: list = []
    for stage in (2, 3):
        _ids_seen_by(backbone, stage, seen)
    inner = torch.tensor([1, 1])

    class CallsAgain(nn.Module):
        def forward(self, x, batch):
            seen.append((1, batch.ids.tolist(), batch.num_visible))
            if len(seen) == 1:  # once: the nested call
                backbone(images, inner, num_visible=0)
            return x

    backbone.set_block(1, CallsAgain(), takes_modalities=True)
    with torch.no_grad():
        backbone(images, torch.tensor([0, 1]))
    outer = [0, 1]
    assert seen == [
        (1, outer, None),
        (1, [1, 1], 0),
        (2, [1, 1], 0),
        (3, [1, 1], 0),
        (2, outer, None),
        (3, outer, None),
    ]
    with pytest.raises(ValueError, match="takes modalities, but none were given"):
        backbone.model(images)


def test_a_thread_sees_only_its_own_modality_batch() -> None:
    """Two models in two threads at once: each model's blocks see only their own call's ModalityBatch."""
    import threading

    results: dict[int, list] = {0: [], 1: []}
    models = {}
    for modality in (0, 1):
        models[modality] = StagedBackbone("resnet18", img_size=(64, 32)).eval()
        _ids_seen_by(models[modality], 2, results[modality])
    images = torch.randn(2, 3, 64, 32)

    def run(modality: int) -> None:
        with torch.no_grad():
            for _ in range(3):
                models[modality](images, torch.full((2,), modality))

    threads = [threading.Thread(target=run, args=(modality,)) for modality in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {m: [(2, [m, m], None)] * 3 for m in (0, 1)}
