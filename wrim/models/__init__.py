"""Models: WRIMNet over any timm backbone, its heads, the registry / factory, summaries and weight files.

``create_model("wrimnet_resnet50", num_classes=395)`` builds the paper's network; ``list_models()`` lists the
registered names; ``WRIMNet(backbone="<any timm name>", ...)`` takes any other backbone. ``save_pretrained`` /
``from_pretrained`` / ``push_to_hub`` share a trained model as a folder or Hub repository (config, weights, card).
"""

from wrim.models._factory import create_model, from_pretrained
from wrim.models._registry import is_model, list_models, model_entrypoint, register_model
from wrim.models.backbone import StagedBackbone
from wrim.models.heads import EmbeddingHead, HeadOutput
from wrim.models.pretrained import push_to_hub, save_pretrained
from wrim.models.summary import ModelSummary, SummaryRow, summary
from wrim.models.weights import load_state_dict_file, load_weights, save_weights
from wrim.models.wrimnet import WRIMNet, WRIMNetOutput

__all__ = [
    "EmbeddingHead",
    "HeadOutput",
    "ModelSummary",
    "StagedBackbone",
    "SummaryRow",
    "WRIMNet",
    "WRIMNetOutput",
    "create_model",
    "from_pretrained",
    "is_model",
    "list_models",
    "load_state_dict_file",
    "load_weights",
    "model_entrypoint",
    "push_to_hub",
    "register_model",
    "save_pretrained",
    "save_weights",
    "summary",
]
