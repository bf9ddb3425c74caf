"""WRIMNet: outputs, gradients, MIIM placement (hooks), modality routing, timm interface and input validation."""

from __future__ import annotations

import pytest
import timm
import torch

from wrim.layers import MIIM, ModalityMIIM
from wrim.models import WRIMNet, WRIMNetOutput, create_model, list_models

SIZE = (64, 32)
NUM_CLASSES = 5
MODALITIES = torch.tensor([0, 1])


def _images(batch: int = 2, size: tuple[int, int] = SIZE) -> torch.Tensor:
    return torch.randn(batch, 3, *size)


@pytest.fixture(scope="module")
def resnet18() -> WRIMNet:
    return create_model("wrimnet_resnet18", num_classes=NUM_CLASSES, img_size=SIZE)


# Every registered model, at 64x32: building, one train step and one eval pass cost 0.3-1.0 s of CPU each
# (ResNet-101 the most; measured with one thread on a loaded machine), so all run by default.
@pytest.mark.parametrize("name", list_models())
def test_registered_model_train_eval(name: str) -> None:
    model = create_model(name, num_classes=NUM_CLASSES, img_size=SIZE).train()
    images = _images()
    out = model(images, MODALITIES)
    assert isinstance(out, WRIMNetOutput)
    channels = model.backbone.channels
    heads = ("p5_global", "p5_part0", "p5_part1", "p4_global")
    assert tuple(out.logits) == heads == model.head_names
    for head in heads:
        width = channels[2] if head == "p4_global" else channels[3]
        assert out.logits[head].shape == (2, NUM_CLASSES)
        assert out.features[head].shape == (2, width)
        assert out.pooled[head].shape == (2, width)
    assert tuple(out.projections) == ("p5_global", "p4_global")
    assert out.p5_projection.shape == out.p4_projection.shape == (2, 128)
    assert out.p5_projection is out.projections["p5_global"]
    assert out.p4_projection is out.projections["p4_global"]

    loss = sum(logits.logsumexp(1).mean() for logits in out.logits.values())
    loss = loss + out.p5_projection.square().mean() + out.p4_projection.square().mean()
    loss.backward()
    for param_name, param in model.named_parameters():
        if not param.requires_grad:
            assert param_name.endswith("bnneck.bias")  # BNNeck bias frozen (AGW)
            continue
        assert param.grad is not None, param_name
        assert torch.isfinite(param.grad).all(), param_name

    model.eval()
    with torch.no_grad():
        embedding = model(images, MODALITIES)
    assert embedding.shape == (2, model.num_features)
    assert model.num_features == 3 * channels[3] + channels[2]
    torch.testing.assert_close(embedding.norm(dim=1), torch.ones(2))

    expected_separate = () if name.startswith("baseline") else (1, 2)
    expected_shared = () if name.startswith("baseline") else (3, 4)
    assert model.separate_stages == expected_separate
    assert model.shared_stages == expected_shared
    for index in expected_separate:
        assert type(model.miims[f"stage{index}"]) is ModalityMIIM
    for index in expected_shared:
        assert type(model.miims[f"stage{index}"]) is MIIM
    assert len(model.miims) == len(expected_separate) + len(expected_shared)


def test_paper_feature_map_sizes() -> None:
    """paper.md §1: ResNet-50 at 384x128 gives 96x32, 48x16, 24x8, 24x8 (last stride 1)."""
    model = create_model("baseline_resnet50", num_classes=0, img_size=(384, 128)).eval()
    with torch.no_grad():
        maps = model.backbone(torch.randn(1, 3, 384, 128))
    assert [tuple(m.shape[1:]) for m in maps] == [(256, 96, 32), (512, 48, 16), (1024, 24, 8), (2048, 24, 8)]
    assert model.backbone.reductions == (4, 8, 16, 16)


def _record_order(model: WRIMNet) -> tuple[list[str], dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Hooks on each stage's tap module (ahead of the MIIM hook), on each MIIM and on each stage's first module:
    call order, outputs and inputs."""
    order: list[str] = []
    outputs: dict[str, torch.Tensor] = {}
    inputs: dict[str, torch.Tensor] = {}

    def hook(name):
        def fn(module, args, output):
            order.append(name)
            outputs[name] = output
            inputs[name] = args[0]

        return fn

    for index in range(1, 5):
        model.backbone.taps[index - 1].register_forward_hook(hook(f"stage{index}"), prepend=True)
        model.backbone.stage_modules(index)[0].register_forward_pre_hook(
            lambda module, args, index=index: inputs.__setitem__(f"stage{index}_in", args[0])
        )
    for key, miim in model.miims.items():
        miim.register_forward_hook(hook(key.replace("stage", "miim")))
    return order, outputs, inputs


@pytest.mark.parametrize(
    ("backbone", "separate", "shared", "size"),
    [
        ("resnet18", (2,), (4,), SIZE),
        ("resnet18", (1, 3), (), SIZE),
        ("resnet18", (), (1, 2, 3), SIZE),
        ("vit_tiny_patch16_224", (1,), (3,), (64, 32)),
    ],
)
def test_miims_sit_after_the_chosen_stages(backbone, separate, shared, size) -> None:
    model = WRIMNet(backbone, num_classes=NUM_CLASSES, img_size=size, separate_stages=separate, shared_stages=shared)
    model.eval()
    order, outputs, inputs = _record_order(model)
    with torch.no_grad():
        model.forward_features(_images(size=size), MODALITIES)
    expected = []
    for index in range(1, 5):
        expected.append(f"stage{index}")
        if index in separate or index in shared:
            expected.append(f"miim{index}")
    assert order == expected
    for index in sorted(separate + shared):
        miim_in = inputs[f"miim{index}"]
        layout = model.backbone.layouts[index - 1]
        assert torch.equal(miim_in, layout.to_map(outputs[f"stage{index}"]))
        assert miim_in.shape[1] == model.backbone.channels[index - 1]
        kind = ModalityMIIM if index in separate else MIIM
        assert type(model.miims[f"stage{index}"]) is kind
        if index < 4:  # the next stage consumes the MIIM's output
            next_in = inputs[f"stage{index + 1}_in"]
            assert torch.equal(layout.to_map(next_in), outputs[f"miim{index}"])


def test_p4_p5_are_taken_after_their_miims(resnet18) -> None:
    resnet18.eval()
    order, outputs, _ = _record_order(resnet18)
    with torch.no_grad():
        maps = resnet18.forward_features(_images(), MODALITIES)
    assert maps["p4"] is outputs["miim3"]
    assert maps["p5"] is outputs["miim4"]


def test_modality_miims_see_only_their_modality() -> None:
    """Training: an all-visible batch gives no gradient to the infrared copies, and the other way round."""
    model = WRIMNet("resnet18", num_classes=NUM_CLASSES, img_size=SIZE).train()
    for modality, trained, untouched in ((0, "visible", "infrared"), (1, "infrared", "visible")):
        model.zero_grad(set_to_none=True)
        out = model(_images(), torch.full((2,), modality))
        sum(logits.logsumexp(1).mean() for logits in out.logits.values()).backward()
        for index in (1, 2):
            miim = model.miims[f"stage{index}"]
            for param in getattr(miim, trained).parameters():
                assert param.grad is not None and param.grad.abs().sum() > 0
            for param in getattr(miim, untouched).parameters():
                assert param.grad is None or param.grad.abs().sum() == 0


def test_modality_routing_in_eval() -> None:
    """Eval: changing the infrared copies changes only the infrared samples' embeddings."""
    model = WRIMNet("resnet18", num_classes=NUM_CLASSES, img_size=SIZE).eval()
    images = _images()
    with torch.no_grad():
        before = model(images, MODALITIES)
        for index in (1, 2):
            for param in model.miims[f"stage{index}"].infrared.parameters():
                param.add_(torch.randn_like(param))
        after = model(images, MODALITIES)
    visible, infrared = MODALITIES == 0, MODALITIES == 1
    torch.testing.assert_close(after[visible], before[visible])
    assert (after[infrared] - before[infrared]).abs().max() > 1e-3


def test_embed_flip_average(resnet18) -> None:
    resnet18.eval()
    images = _images()
    with torch.no_grad():
        plain = resnet18.embed(images, MODALITIES, flip=False)
        flipped = resnet18(images.flip(-1), MODALITIES)
        both = resnet18.embed(images, MODALITIES, flip=True)
    torch.testing.assert_close(plain, resnet18(images, MODALITIES).detach())
    expected = torch.nn.functional.normalize((plain + flipped) / 2, dim=1)
    torch.testing.assert_close(both, expected, atol=1e-5, rtol=1e-4)


def test_embed_heads_and_parts() -> None:
    model = WRIMNet(
        "resnet18", num_classes=0, img_size=SIZE, local_parts=3, embed_heads=("p5_global", "p4_global")
    ).train()
    out = model(_images(), MODALITIES)
    assert out.logits == {}
    assert tuple(out.features) == ("p5_global", "p5_part0", "p5_part1", "p5_part2", "p4_global")
    maps = model.forward_features(_images(), MODALITIES)
    pooled = model.pool(maps)
    p5 = maps["p5"]
    assert p5.shape[2] == 4  # 3 strips over 4 rows, adaptive-pooling bounds: rows 0-1, 1-2, 2-3
    for part, (start, stop) in enumerate(((0, 2), (1, 3), (2, 4))):
        torch.testing.assert_close(pooled[f"p5_part{part}"], p5[:, :, start:stop].mean((2, 3)))
    model.eval()
    assert model(_images(), MODALITIES).shape == (2, 512 + 256)


def test_timm_interface(resnet18) -> None:
    resnet18.train()
    resnet18.reset_classifier(7)
    assert resnet18.num_classes == 7
    assert all(c.out_features == 7 and c.bias is None for c in resnet18.get_classifier().values())
    out = resnet18(_images(), MODALITIES)
    assert out.logits["p5_global"].shape == (2, 7)
    maps = resnet18.forward_features(_images(), MODALITIES)
    assert set(maps) == {"p4", "p5"}
    resnet18.eval()
    assert resnet18.forward_head(maps, pre_logits=True).shape == (2, resnet18.num_features)
    resnet18.reset_classifier(NUM_CLASSES)


@pytest.mark.needs(timm="1.0.31")
def test_grad_checkpointing_matches() -> None:
    model = WRIMNet("resnet18", num_classes=NUM_CLASSES, img_size=SIZE).train()
    images = _images()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    grads = []
    for enable in (False, True):
        model.load_state_dict(state)
        model.zero_grad()
        model.set_grad_checkpointing(enable)
        out = model(images, MODALITIES)
        out.logits["p5_global"].logsumexp(1).mean().backward()
        grads.append(model.backbone.model.conv1.weight.grad.clone())
    torch.testing.assert_close(grads[0], grads[1], atol=1e-5, rtol=1e-4)


def test_grad_checkpointing_before_timm_1_0_31_is_a_clear_error(resnet18, monkeypatch) -> None:
    monkeypatch.setattr(timm, "__version__", "1.0.30")
    with pytest.raises(ValueError, match=r"gradient checkpointing needs timm>=1.0.31 \(installed 1.0.30\)"):
        resnet18.set_grad_checkpointing(True)
    resnet18.set_grad_checkpointing(False)  # switching it off needs nothing


def test_channels_last_and_bf16_autocast(resnet18) -> None:
    resnet18.eval()
    images = _images()
    with torch.no_grad():
        reference = resnet18(images, MODALITIES)
        resnet18.to(memory_format=torch.channels_last)
        fast = resnet18(images.to(memory_format=torch.channels_last), MODALITIES)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            half = resnet18(images, MODALITIES)
    resnet18.to(memory_format=torch.contiguous_format)
    torch.testing.assert_close(fast, reference, atol=1e-4, rtol=1e-4)
    assert torch.isfinite(half).all()
    assert torch.nn.functional.cosine_similarity(half.float(), reference).min() > 0.98


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"backbone": "resnet5O"}, "resnet50"),
        ({"separate_stages": (0, 1)}, "1-based stage indices"),
        ({"shared_stages": (5,)}, "1-based stage indices"),
        ({"separate_stages": (1, 2), "shared_stages": (2, 3)}, "both separate_stages and shared_stages"),
        ({"stride": (4, 2, 1)}, "stride must be"),
        ({"img_size": (16, 8)}, "too small"),
        ({"local_parts": -1}, "local_parts"),
        ({"embed_heads": ("p6_global",)}, "embed_heads"),
        ({"num_heads": 7}, "after stage 1.*Valid head counts: 1, 2, 4, 8, 16, 32"),
        ({"last_stride": 3}, "last_stride"),
        ({"token_stride": 0}, "token_stride"),
    ],
)
def test_bad_arguments(kwargs, message) -> None:
    kwargs = {"backbone": "resnet18", "num_classes": NUM_CLASSES, "img_size": SIZE, **kwargs}
    with pytest.raises(ValueError, match=message):
        WRIMNet(**kwargs)


def test_num_classes_is_required() -> None:
    with pytest.raises(TypeError, match="num_classes"):
        WRIMNet("resnet18", img_size=SIZE)


@pytest.mark.parametrize(
    ("images", "modalities", "error", "message"),
    [
        (torch.randn(3, *SIZE), MODALITIES, ValueError, "add a batch dimension"),
        (torch.randn(2, 1, *SIZE), MODALITIES, ValueError, r"\(B, 3, H, W\)"),
        (torch.randint(0, 255, (2, 3, *SIZE), dtype=torch.uint8), MODALITIES, TypeError, "float"),
        (torch.randn(2, 3, 16, 16), MODALITIES, ValueError, "too small"),
        (torch.randn(2, 3, *SIZE), torch.tensor([0, 1, 0]), ValueError, "shape"),
        (torch.randn(2, 3, *SIZE), torch.tensor([0, 2]), ValueError, "found"),
        (torch.randn(2, 3, *SIZE), None, ValueError, "modalities is required"),
    ],
)
def test_bad_inputs(resnet18, images, modalities, error, message) -> None:
    resnet18.eval()
    with pytest.raises(error, match=message):
        resnet18(images, modalities)


def test_baseline_runs_without_modalities() -> None:
    model = create_model("baseline_resnet18", num_classes=NUM_CLASSES, img_size=SIZE).eval()
    assert len(model.miims) == 0
    with torch.no_grad():
        assert model(_images()).shape == (2, model.num_features)
        assert model.embed(_images(), flip=True).shape == (2, model.num_features)


def test_vit_runs_only_at_its_size() -> None:
    model = WRIMNet("vit_tiny_patch16_224", num_classes=NUM_CLASSES, img_size=(64, 32)).eval()
    assert model.miim_strides == (1, 1, 1, 1)  # token_stride=16 on a /16 backbone
    with pytest.raises(ValueError, match="runs only at the size it was built for"):
        model(_images(size=(96, 32)), MODALITIES)


def test_projection_heads_all() -> None:
    model = WRIMNet("resnet18", num_classes=NUM_CLASSES, img_size=SIZE, projection_heads=None, proj_dim=16).train()
    out = model(_images(), MODALITIES)
    assert {name: p.shape for name, p in out.projections.items()} == dict.fromkeys(model.head_names, (2, 16))


def _copy_rows(model: WRIMNet) -> dict[str, int]:
    """Rows each ModalityMIIM copy's gate computes, counted by hooks on their compression convs (filled in later)."""
    rows: dict[str, int] = {}
    for index in (1, 2):
        for name in ("visible", "infrared"):
            key = f"stage{index}.{name}"
            getattr(model.miims[f"stage{index}"], name).compress.register_forward_hook(
                lambda _m, args, _out, key=key: rows.__setitem__(key, rows.get(key, 0) + args[0].shape[0])
            )
    return rows


@pytest.mark.parametrize(
    "ids", [[1, 1, 1], [0, 0, 0], [1, 0, 0, 1]], ids=["infrared batch", "visible batch", "mixed batch"]
)
def test_eval_computes_each_sample_once(ids: list[int]) -> None:
    """Evaluation (``embed``, with and without flip): each ModalityMIIM copy's gate runs only on its own samples,
    once; ``forward`` without ``num_visible`` keeps the any-order formulation (both copies, every sample)."""
    model = WRIMNet("resnet18", num_classes=NUM_CLASSES, img_size=SIZE).eval()
    rows = _copy_rows(model)
    modalities = torch.tensor(ids)
    images = _images(len(ids))
    own = {"visible": ids.count(0), "infrared": ids.count(1)}
    with torch.no_grad():
        model.embed(images, modalities, flip=False)
        assert rows == {f"stage{i}.{name}": own[name] for i in (1, 2) for name in own if own[name]}
        rows.clear()
        model.embed(images, modalities, flip=True)  # one pass over the 2B batch of images and flips
        assert rows == {f"stage{i}.{name}": 2 * own[name] for i in (1, 2) for name in own if own[name]}
        rows.clear()
        model(images, modalities)
        assert rows == {f"stage{i}.{name}": len(ids) for i in (1, 2) for name in own}


@pytest.mark.parametrize("ids", [[1, 1, 1], [0, 0], [1, 0, 0, 1, 0], [0]], ids=["IR", "VIS", "mixed", "B=1"])
def test_eval_routing_equals_the_any_order_formulation_float64(ids: list[int]) -> None:
    """The routed evaluation (``embed``: sorted by modality, folded tails) equals the any-order formulation, in
    which both copies compute every sample: values, input and parameter gradients, float64."""
    torch.manual_seed(0)
    model = WRIMNet("resnet18", num_classes=NUM_CLASSES, img_size=SIZE).double()
    model(_images(4).double(), torch.tensor([0, 1, 0, 1]))  # running statistics away from 0 / 1
    model.eval()
    modalities = torch.tensor(ids)
    images = _images(len(ids)).double()
    ours_in, ref_in = images.clone().requires_grad_(), images.clone().requires_grad_()
    out = model.embed(ours_in, modalities, flip=False)
    expected = model(ref_in, modalities)  # any order
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-12)
    weights = torch.randn_like(out)
    params = [p for p in model.parameters() if p.requires_grad]
    ours = torch.autograd.grad((out * weights).sum(), [ours_in, *params], allow_unused=True, materialize_grads=True)
    theirs = torch.autograd.grad(
        (expected * weights).sum(), [ref_in, *params], allow_unused=True, materialize_grads=True
    )
    for got, want in zip(ours, theirs, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-8, atol=1e-10)


def test_modalities_are_validated_once_per_training_step(monkeypatch) -> None:
    """Check at the entrance, trust inside: a default training step (the trainer's ``num_visible``) validates
    ``modalities`` once and ``num_visible`` against it once, in WRIMNet.forward (``ModalityBatch.validated``); the
    ModalityMIIMs trust the checked ``ModalityBatch`` (before: 6 validations, WRIMNet 2 and each ModalityMIIM 2). A
    direct ModalityMIIM call still checks."""
    import wrim.layers.modality_miim as modality_miim_module

    calls: list[str] = []

    def counting(module, name):
        original = getattr(module, name)

        def wrapper(*args, **kwargs):
            calls.append(f"{module.__name__}.{name}")
            return original(*args, **kwargs)

        monkeypatch.setattr(module, name, wrapper)

    counting(modality_miim_module, "check_modalities")
    counting(modality_miim_module, "check_modality_split")
    model = WRIMNet("resnet18", num_classes=NUM_CLASSES, img_size=SIZE).train()
    model(_images(4), torch.tensor([1, 0, 0, 1]), num_visible=2)
    assert calls == ["wrim.layers.modality_miim.check_modalities", "wrim.layers.modality_miim.check_modality_split"]
    calls.clear()
    model.miims["stage1"](torch.randn(2, 64, 16, 8), torch.tensor([0, 1]))
    assert calls == ["wrim.layers.modality_miim.check_modalities"]
