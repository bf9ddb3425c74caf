"""Backbone sweep (issue 11): WRIMNet over timm backbones of every family, each with default arguments.

For every name: ``WRIMNet(name, num_classes=10, img_size=size)``; a train-mode forward and backward on a mixed
visible/infrared batch where every trainable parameter gets a finite gradient; a finite, unit-norm eval embedding;
and each MIIM sitting after the module that timm's ``feature_info`` names (it sees that module's output, and the
model goes on with the MIIM's output). Names that cannot work must fail with a ValueError naming the reason.

The default run covers ``FAST`` (a few small backbones of different kinds); ``pytest -m slow`` runs all of them.
``python tests/models/test_backbone_sweep.py`` prints the Markdown table of docs/models.md.
"""

from __future__ import annotations

import sys
import time
import warnings

import pytest
import torch

from wrim.models import WRIMNet

UNSUPPORTED = {  # name -> the part of the ValueError that gives the reason
    "levit_128": "has 3 feature levels",
    "levit_128s": "has 3 feature levels",
    "efficientvit_m0": "has 3 feature levels",
    "hrnet_w18_small": "not the outputs of a chain of stages",
    "twins_svt_small": "not the outputs of a chain of stages",  # timm's feature_info names block.k, not blocks.k
}

NAMES = (
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet18d",
    "resnet26d",
    "resnext26ts",
    "seresnext26d_32x4d",
    "legacy_seresnet18",
    "skresnet18",
    "res2net50_14w_8s",
    "cspresnet50",
    "regnetx_002",
    "regnety_002",
    "regnetz_005",
    "convnext_atto",
    "convnext_femto",
    "convnextv2_atto",
    "convnext_tiny",
    "inception_next_atto",
    "efficientnet_b0",
    "tf_efficientnet_b0",
    "efficientnetv2_rw_t",
    "tf_efficientnetv2_b0",
    "mobilenetv2_050",
    "mobilenetv3_large_100",
    "mobilenetv3_small_050",
    "mobilenetv4_conv_small",
    "mixnet_s",
    "mnasnet_100",
    "tinynet_e",
    "lcnet_050",
    "ghostnet_100",
    "ghostnetv2_100",
    "rexnet_100",
    "hgnetv2_b0",
    "densenet121",
    "hrnet_w18_small",
    "dla34",
    "dla46_c",
    "vgg11_bn",
    "vgg16_bn",
    "ese_vovnet19b_dw",
    "dpn68",
    "repvgg_a0",
    "mobileone_s0",
    "repvit_m1",
    "xception41",
    "swin_tiny_patch4_window7_224",
    "swinv2_tiny_window8_256",
    "maxvit_nano_rw_256",
    "maxvit_tiny_tf_224",
    "coatnet_nano_rw_224",
    "pvt_v2_b0",
    "poolformer_s12",
    "poolformerv2_s12",
    "convformer_s18",
    "caformer_s18",
    "fastvit_t8",
    "efficientvit_b0",
    "efficientvit_m0",
    "edgenext_xx_small",
    "efficientformer_l1",
    "efficientformerv2_s0",
    "davit_tiny",
    "focalnet_tiny_srf",
    "tiny_vit_5m_224",
    "gcvit_xxtiny",
    "hiera_tiny_224",
    "starnet_s1",
    "twins_svt_small",
    "sequencer2d_s",
    "mambaout_femto",
    "vit_tiny_patch16_224",
    "vit_small_patch16_224",
    "deit_tiny_patch16_224",
    "deit_tiny_distilled_patch16_224",
    "deit3_small_patch16_224",
    "vit_base_patch16_clip_224",
    "eva02_tiny_patch14_224",
    "beit_base_patch16_224",
    "vit_small_patch14_dinov2",
    "vit_small_patch14_reg4_dinov2",
    "vit_small_patch16_rope_224",
    "vit_relpos_small_patch16_224",
    "vit_tiny_r_s16_p8_224",
    "levit_128",
    "levit_128s",
)

SIZES = {"efficientformer_l1": (224, 224)}  # name -> (H, W) where (128, 64) does not fit (fixed 7x7 attention)

# small backbones of different kinds for the default run: timm's EfficientNet / MobileNetV3 feature classes,
# channels-last stages (MambaOut), a ViT (token sequence) and an unsupported one (3 feature levels)
FAST = ("efficientnet_b0", "mobilenetv3_small_050", "mambaout_femto", "lcnet_050", "vit_tiny_patch16_224", "levit_128s")


def size_of(name: str) -> tuple[int, int]:
    """The sweep's input size for ``name``: (112, 56) for patch-14 models, else (128, 64) unless listed."""
    return SIZES.get(name, (112, 56) if "patch14" in name else (128, 64))


def check_backbone(name: str) -> dict:
    """Build, train one step and embed; raise AssertionError (or the build's ValueError) on any failure."""
    size = size_of(name)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = WRIMNet(name, num_classes=10, img_size=size)
    notes = [str(w.message) for w in caught if "cannot run its last stage" in str(w.message)]
    backbone = model.backbone
    raw: dict[int, torch.Tensor] = {}
    seen: dict[int, torch.Tensor] = {}
    for index, tap in enumerate(backbone.taps, start=1):  # ahead of the MIIM hook: the stage's own output
        tap.register_forward_hook(lambda m, a, out, index=index: raw.__setitem__(index, out), prepend=True)
        model.miims[f"stage{index}"].register_forward_hook(
            lambda m, args, out, index=index: seen.__setitem__(index, (args[0], out))
        )
    images = torch.randn(2, 3, *size)
    modalities = torch.tensor([0, 1])
    model.train()
    out = model(images, modalities)
    loss = sum(logits.logsumexp(1).mean() for logits in out.logits.values())
    loss = loss + out.p5_projection.square().mean() + out.p4_projection.square().mean()
    loss.backward()
    info_names = backbone.model.feature_info.module_name()
    for index, (tap_name, info_name) in enumerate(zip(backbone.tap_names, info_names, strict=True), start=1):
        assert backbone.model.get_submodule(tap_name) is backbone.taps[index - 1]
        assert tap_name.replace("_", ".").endswith(info_name.replace("_", ".")), (tap_name, info_name)
        miim_in, miim_out = seen[index]
        assert torch.equal(miim_in, backbone.layouts[index - 1].to_map(raw[index])), f"stage {index} input"
    missing = [
        n for n, p in model.named_parameters() if p.requires_grad and p.grad is None and not n.endswith("bnneck.bias")
    ]
    assert not missing, f"parameters without gradient: {missing[:5]}"
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None), "non-finite grad"
    model.eval()
    with torch.no_grad():
        embedding = model(images, modalities)
    assert torch.isfinite(embedding).all()
    torch.testing.assert_close(embedding.norm(dim=1), torch.ones(2))
    return {
        "size": size,
        "reductions": backbone.reductions,
        "strides": model.miim_strides,
        "layout": backbone.layouts[0].kind,
        "notes": notes,
    }


@pytest.mark.parametrize(
    "name", [name if name in FAST else pytest.param(name, marks=pytest.mark.slow) for name in NAMES]
)
def test_backbone_with_default_arguments(name: str) -> None:
    if name in UNSUPPORTED:
        with pytest.raises(ValueError, match=UNSUPPORTED[name]):
            WRIMNet(name, num_classes=10, img_size=size_of(name))
        return
    check_backbone(name)


if __name__ == "__main__":
    names = sys.argv[1:] or NAMES
    print("| backbone | result | size | stage reductions | MIIM strides | layout | time (s) |")
    print("|---|---|---|---|---|---|---|")
    for name in names:
        start = time.perf_counter()
        try:
            row = check_backbone(name)
            result = "works" + (" (own last stride, warned)" if row["notes"] else "")
            cells = [str(row["size"]), str(row["reductions"]), str(row["strides"]), row["layout"]]
        except Exception as err:  # noqa: BLE001 - the table records every failure
            result = f"{type(err).__name__}: {str(err).splitlines()[0][:200]}" if str(err) else type(err).__name__
            cells = [str(size_of(name)), "", "", ""]
        print(f"| `{name}` | {result} | {' | '.join(cells)} | {time.perf_counter() - start:.1f} |", flush=True)
