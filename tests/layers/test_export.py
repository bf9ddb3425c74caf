"""MIIM and ModalityMIIM under torch.compile (one graph, no break) and ONNX export checked with onnxruntime."""

from __future__ import annotations

import pytest
import torch

from wrim import MIIM, ModalityMIIM


def _miim() -> MIIM:
    return MIIM(32, reduction=2, stride=2, num_heads=4, kv_pool=2).eval()


@pytest.mark.needs_compile
def test_compile_miim_fullgraph_matches_eager() -> None:
    module = MIIM(32, reduction=2, stride=2, num_heads=4)
    x = torch.randn(2, 32, 12, 6)
    compiled = torch.compile(module, fullgraph=True)  # fullgraph: any graph break is an error
    torch.testing.assert_close(compiled(x), module(x), rtol=1e-4, atol=1e-4)


@pytest.mark.needs_compile
def test_compile_modality_miim_mixed_orders_one_graph() -> None:
    module = ModalityMIIM(32, reduction=2, stride=2, num_heads=4)
    compiled = torch.compile(module, fullgraph=True, dynamic=False)
    x = torch.randn(4, 32, 12, 6)
    for order in ([0, 1, 0, 1], [1, 1, 1, 1], [0, 0, 1, 1]):
        modalities = torch.tensor(order)
        expected = module(x, modalities)
        torch.testing.assert_close(compiled(x, modalities), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript-exporter", "dynamo-exporter"])
def test_onnx_export_matches_torch(dynamo: bool, tmp_path) -> None:
    ort = pytest.importorskip("onnxruntime", reason="install the onnx extra: pip install 'wrim[onnx]'")
    pytest.importorskip("onnx")
    module = _miim()
    x = torch.randn(2, 32, 12, 6)
    path = tmp_path / "miim.onnx"
    if dynamo:
        pytest.importorskip("onnxscript")
        batch = torch.export.Dim("batch", min=1, max=64)
        torch.onnx.export(module, (x,), path, dynamo=True, dynamic_shapes={"x": {0: batch}})
    else:
        torch.onnx.export(
            module, (x,), path, dynamo=False, input_names=["x"], output_names=["y"], dynamic_axes={"x": {0: "b"}}
        )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name
    for batch_size in (2, 3):
        sample = torch.randn(batch_size, 32, 12, 6)
        (out,) = session.run(None, {input_name: sample.numpy()})
        with torch.no_grad():
            torch.testing.assert_close(torch.from_numpy(out), module(sample), rtol=1e-4, atol=1e-4)
