"""The model registry and create_model."""

from __future__ import annotations

import pytest

from wrim.models import WRIMNet, _registry, create_model, is_model, list_models, model_entrypoint, register_model

REQUIRED = {
    "wrimnet_resnet50",
    "wrimnet_resnet18",
    "wrimnet_resnet101",
    "wrimnet_convnext_tiny",
    "wrimnet_vit_small",
    "baseline_resnet50",
    "baseline_resnet18",
}


def test_registered_names() -> None:
    assert set(list_models()) >= REQUIRED
    assert list_models() == sorted(list_models())
    assert set(list_models("baseline_*")) == {"baseline_resnet50", "baseline_resnet18"}
    assert list_models("nothing*") == []
    assert is_model("wrimnet_resnet50") and not is_model("resnet50")


def test_create_model_passes_kwargs() -> None:
    model = create_model("baseline_resnet18", num_classes=3, img_size=(64, 32), local_parts=0, proj_dim=8)
    assert isinstance(model, WRIMNet)
    assert model.backbone.name == "resnet18"
    assert model.head_names == ("p5_global", "p4_global")
    assert model.heads["p5_global"].projection[-1].out_features == 8
    assert model.num_classes == 3
    # kwargs override the entrypoint's defaults
    model = create_model("baseline_resnet18", num_classes=3, img_size=(64, 32), shared_stages=(4,))
    assert list(model.miims) == ["stage4"]
    # backbone= too (issue 11: it used to raise "got multiple values for argument 'backbone'")
    model = create_model("wrimnet_resnet18", num_classes=3, img_size=(64, 32), backbone="resnet34")
    assert model.backbone.name == "resnet34"


def test_positional_num_classes_says_keyword() -> None:
    with pytest.raises(TypeError, match=r"num_classes=395"):
        create_model("wrimnet_resnet18", 395)


def test_vit_variant_defaults_to_stride_one() -> None:
    model = create_model("wrimnet_vit_small", num_classes=3, img_size=(64, 32))
    assert model.miim_strides == (1, 1, 1, 1)
    assert model.backbone.fixed_size and {layout.grid for layout in model.backbone.layouts} == {(4, 2)}


def test_unknown_model_lists_close_names() -> None:
    with pytest.raises(ValueError, match="wrimnet_resnet50"):
        create_model("wrimnet_resnet5", num_classes=3)


def test_register_model(monkeypatch) -> None:
    monkeypatch.setattr(_registry.MODELS, "entries", dict(_registry.MODELS.entries))

    @register_model
    def tiny_test_net(pretrained: bool = False, **kwargs) -> WRIMNet:
        return WRIMNet("resnet18", pretrained=pretrained, **kwargs)

    assert "tiny_test_net" in list_models("tiny_*")
    assert model_entrypoint("tiny_test_net") is tiny_test_net
    assert create_model("tiny_test_net", num_classes=2, img_size=(64, 32)).num_classes == 2

    def other(pretrained: bool = False, **kwargs) -> WRIMNet:
        raise AssertionError("never built")

    other.__name__ = "tiny_test_net"
    with pytest.raises(ValueError, match="already registered"):
        register_model(other)


def test_one_registry_class_serves_models_and_datasets(monkeypatch) -> None:
    """Models and datasets are held by the same ``Registry`` class; each keeps its decorator's shape
    (``@register_model`` by function name, ``@register_dataset("name")``) and says "unknown <kind>" the same way."""
    from wrim._registry import Registry
    from wrim.data import _registry as data_registry
    from wrim.data import dataset_entrypoint, register_dataset

    assert type(_registry.MODELS) is Registry and type(data_registry.DATASETS) is Registry
    monkeypatch.setattr(data_registry.DATASETS, "entries", dict(data_registry.DATASETS.entries))

    @register_dataset("tiny_test_data")
    def tiny_test_data(root=None):
        raise AssertionError("never built")

    assert dataset_entrypoint("tiny_test_data") is tiny_test_data
    for lookup, kind in ((model_entrypoint, "model"), (dataset_entrypoint, "dataset")):
        with pytest.raises(ValueError, match=rf"^unknown {kind} 'no_such_name'; registered: .*--import MODULE"):
            lookup("no_such_name")
    with pytest.raises(ValueError, match="non-empty name"):
        register_dataset("")
