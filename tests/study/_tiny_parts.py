"""A plugin for the study tests: WRIM-Net on timm's test_resnet (0.5 M parameters; a run takes seconds)."""

from wrim.models import WRIMNet, register_model


@register_model
def study_test_tiny(pretrained: bool = False, **kwargs) -> WRIMNet:
    return WRIMNet(backbone="test_resnet", pretrained=pretrained, **kwargs)
