"""``create_model``: build a registered model by name (timm style)."""

from __future__ import annotations

import difflib

from torch import nn

from wrim.models._registry import is_model, list_models, model_entrypoint

__all__ = ["create_model"]


def create_model(name: str, pretrained: bool = False, **kwargs) -> nn.Module:
    """Build the registered model ``name``.

    Args:
        name: a name from [`list_models()`][wrim.models.list_models] (e.g. ``"wrimnet_resnet50"``,
            ``"baseline_resnet50"``).
        pretrained: load ImageNet weights into the backbone (through timm; needs internet, or pass
            ``pretrained_file=``).
        **kwargs: the model's constructor arguments (for WRIMNet: ``num_classes``, ``img_size``, ...); they
            override the entrypoint's defaults.

    Returns:
        the model.

    Raises:
        ValueError: ``name`` is not registered (close names are listed).
    """
    if not is_model(name):
        close = difflib.get_close_matches(name, list_models(), n=5, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise ValueError(
            f"unknown model {name!r}.{hint} Registered: {', '.join(list_models())}. "
            "For any other timm backbone use wrim.models.WRIMNet(backbone='<timm name>', ...)"
        )
    return model_entrypoint(name)(pretrained=pretrained, **kwargs)
