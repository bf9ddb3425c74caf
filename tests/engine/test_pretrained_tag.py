"""The paper configs start from the field's ImageNet weights: ``model.pretrained_tag: tv_in1k`` (resnet50.tv_in1k)."""

import pytest

from wrim.engine.config import list_configs, load_config
from wrim.models import create_model

PAPER_CONFIGS = [name for name in list_configs() if name.split("_")[0] in ("sysu", "regdb", "llcm")]


@pytest.mark.parametrize("name", PAPER_CONFIGS)
def test_paper_configs_load_torchvision_weights(name):
    model = load_config(name).model
    assert model.pretrained and model.pretrained_tag == "tv_in1k"


def test_synthetic_config_has_no_tag_and_a_bad_tag_is_named():
    assert load_config("synthetic").model.pretrained_tag is None
    with pytest.raises(ValueError, match="model.pretrained_tag"):
        load_config("sysu", ["model.pretrained_tag=resnet50.tv_in1k"])  # the tag alone, not the model name


def test_the_tag_names_the_backbone_weights():
    model = create_model("wrimnet_resnet18", num_classes=4, img_size=(64, 32), pretrained_tag="tv_in1k")
    assert model.backbone.name == "resnet18.tv_in1k"
    with pytest.raises(ValueError, match="contradicts"):
        create_model("wrimnet_resnet18", num_classes=4, backbone="resnet18.a1_in1k", pretrained_tag="tv_in1k")
