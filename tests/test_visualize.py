"""MIIM gate maps: shapes per placement, values in (0, 1), the PNG, and no effect on the model's outputs."""

import pytest
import torch

from wrim.models import create_model
from wrim.visualize import capture_gates, gate_maps, plot_gate_maps

IMG = (64, 32)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return create_model("wrimnet_resnet18", num_classes=4, img_size=IMG).eval()


@pytest.fixture(scope="module")
def batch():
    torch.manual_seed(1)
    return torch.randn(4, 3, *IMG), torch.tensor([0, 1, 0, 1])


def test_shapes_per_placement_and_range(model, batch):
    images, modalities = batch
    maps = gate_maps(model, images, modalities)
    assert list(maps) == ["stage1", "stage2", "stage3", "stage4"]
    reductions = model.backbone.reductions
    for index, name in enumerate(maps, start=1):
        stride = model.miim_strides[index - 1]
        h = -(-IMG[0] // reductions[index - 1] // stride)
        w = -(-IMG[1] // reductions[index - 1] // stride)
        assert maps[name].shape == (4, h, w)
        assert bool(((maps[name] > 0) & (maps[name] < 1)).all())


def test_maps_are_the_gates_of_each_samples_modality(model, batch):
    images, modalities = batch
    inputs = {}
    hooks = [
        model.miims[name].register_forward_pre_hook(lambda m, args, name=name: inputs.__setitem__(name, args[0]))
        for name in ("stage1", "stage3")
    ]
    with torch.no_grad():
        model(images, modalities)
    for hook in hooks:
        hook.remove()
    maps = gate_maps(model, images, modalities, reduction="max")
    separate = model.miims["stage1"]
    with torch.no_grad():
        vis = separate.visible.gate(inputs["stage1"]).amax(1)  # (B, h, w)
        ir = separate.infrared.gate(inputs["stage1"]).amax(1)
        shared = model.miims["stage3"].gate(inputs["stage3"]).amax(1)
    torch.testing.assert_close(maps["stage1"][0::2], vis[0::2])  # visible samples: the visible copy
    torch.testing.assert_close(maps["stage1"][1::2], ir[1::2])  # infrared samples: the infrared copy
    torch.testing.assert_close(maps["stage3"], shared)


def test_outputs_unchanged_with_hooks_and_hooks_removed(model, batch):
    images, modalities = batch
    hooks_before = {name: dict(m._forward_hooks) for name, m in model.named_modules()}  # the model's own taps
    with torch.no_grad():
        before = model(images, modalities)
        with capture_gates(model) as gates:
            during = model(images, modalities)
        after = model(images, modalities)
    assert set(gates) == {"stage1", "stage2", "stage3", "stage4"} and set(gates["stage1"]) == {"visible", "infrared"}
    torch.testing.assert_close(during, before, rtol=0, atol=0)
    torch.testing.assert_close(after, before, rtol=0, atol=0)
    assert {name: dict(m._forward_hooks) for name, m in model.named_modules()} == hooks_before


def test_bad_arguments(model, batch):
    images, modalities = batch
    with pytest.raises(ValueError, match="reduction"):
        gate_maps(model, images, modalities, reduction="median")
    baseline = create_model("baseline_resnet18", num_classes=4, img_size=IMG)
    with pytest.raises(ValueError, match="no MIIM"):
        gate_maps(baseline, images, modalities)


def test_png_is_written(model, batch, tmp_path):
    pytest.importorskip("matplotlib")
    images, modalities = batch
    maps = gate_maps(model, images, modalities)
    path = tmp_path / "sub" / "gates.png"
    plot_gate_maps(images, maps, modalities, path, titles=["id 0", "id 1"])
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="both modalities"):
        plot_gate_maps(images[::2], {k: v[::2] for k, v in maps.items()}, modalities[::2])


def test_plot_curves_writes_a_png_without_touching_pyplot(tmp_path) -> None:
    import matplotlib

    from wrim.engine.logger import plot_curves

    backend = matplotlib.get_backend()
    records = [{"epoch": 1, "loss": 3.0}, {"epoch": 2, "loss": 2.0, "R1": 10.0, "mAP": 8.0}]
    assert plot_curves(records, tmp_path / "runs" / "curves.png")
    assert (tmp_path / "runs" / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert matplotlib.get_backend() == backend  # the object API: no pyplot backend switch
