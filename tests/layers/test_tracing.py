"""fx tracing, torch.export and TorchScript of MIIM, GRI and ModalityMIIM; a cheap ``import wrim.layers``."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from wrim import GRI, MIIM, ModalityMIIM

MODALITIES = torch.tensor([0, 1, 1])


def _modules() -> dict[str, torch.nn.Module]:
    return {
        "miim_stride2": MIIM(32, stride=2, kv_pool=2),
        "miim_layerscale": MIIM(24, stride=3, init_values=0.5),
        "gri": GRI(20, kv_pool=2, qkv_bias=True),
    }


def _inputs(name: str) -> torch.Tensor:
    return {"miim_stride2": torch.randn(3, 32, 11, 6), "miim_layerscale": torch.randn(3, 24, 9, 5)}.get(
        name, torch.randn(3, 20, 5, 4)
    )


@pytest.mark.parametrize("name", ["miim_stride2", "miim_layerscale", "gri"])
def test_fx_export_script(name: str) -> None:
    module = _modules()[name].eval()
    x = _inputs(name)
    with torch.no_grad():
        expected = module(x)
        traced = torch.fx.symbolic_trace(module)
        torch.testing.assert_close(traced(x), expected)
        exported = torch.export.export(module, (x,))
        torch.testing.assert_close(exported.module()(x), expected)
        if isinstance(module, MIIM):  # another size (the pad / crop path) through the same graph
            other = torch.randn(2, x.shape[1], 7, 7)
            torch.testing.assert_close(traced(other), module(other))


def test_torchscript_miim_and_gri() -> None:
    """torch.jit.script of MIIM (both sizes paths, LayerScale) and GRI matches eager, in a fresh interpreter.

    (Run apart: in one long pytest process after the whole models suite, TorchScript was once seen compiling
    ``GRI.__init__``; a fresh interpreter is what a user scripting the layers has.)
    """
    code = """
import warnings, torch
from wrim import GRI, MIIM
warnings.simplefilter("ignore", FutureWarning)
for module, shapes in ((MIIM(32, stride=2, kv_pool=2), [(3, 32, 11, 6), (2, 32, 7, 7)]),
                       (MIIM(24, stride=3, init_values=0.5), [(3, 24, 9, 5), (2, 24, 7, 7)]),
                       (GRI(20, kv_pool=2, qkv_bias=True), [(3, 20, 5, 4)])):
    module.eval()
    scripted = torch.jit.script(module)
    for shape in shapes:
        x = torch.randn(shape)
        torch.testing.assert_close(scripted(x), module(x))
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout.strip() == "ok", result.stderr[-2000:]


@pytest.mark.parametrize("train", [False, True])
def test_fx_and_export_modality_miim(train: bool) -> None:
    module = ModalityMIIM(16, stride=2)
    x = torch.randn(3, 16, 8, 4)
    traced = torch.fx.symbolic_trace(module.train(train))
    state = {k: v.clone() for k, v in module.state_dict().items()}
    expected = module(x, MODALITIES)
    module.load_state_dict(state)  # the traced graph shares the buffers: start both from the same statistics
    torch.testing.assert_close(traced(x, MODALITIES), expected)
    if not train:
        exported = torch.export.export(module, (x, MODALITIES))
        torch.testing.assert_close(exported.module()(x, MODALITIES), expected)


def test_checks_still_run_eagerly() -> None:
    with pytest.raises(ValueError, match="built for 32 channels"):
        MIIM(32)(torch.randn(1, 16, 4, 4))


def test_import_layers_needs_only_torch() -> None:
    """``import wrim.layers`` / ``from wrim import MIIM`` in a fresh interpreter import neither timm nor torchvision."""
    code = (
        "import sys, wrim.layers; from wrim import MIIM, GRI, ModalityMIIM; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'timm', 'torchvision', 'einops'}))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_torchvision_feature_extractor_on_a_model_with_miim() -> None:
    """torchvision's fx-based create_feature_extractor traces through a MIIM."""
    from torchvision.models.feature_extraction import create_feature_extractor

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1), MIIM(16, stride=2), torch.nn.ReLU()).eval()
    extractor = create_feature_extractor(model, return_nodes={"1": "miim"})
    x = torch.randn(2, 3, 9, 6)
    with torch.no_grad():
        torch.testing.assert_close(extractor(x)["miim"], model[1](model[0](x)))
