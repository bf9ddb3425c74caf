"""WRIMNet export and acceleration paths: ONNX (onnxruntime vs torch), torch.compile without graph breaks, CUDA."""

from __future__ import annotations

import inspect
import warnings

import pytest
import torch

from wrim.engine.export import ONNX_TOLERANCE, export_onnx
from wrim.models import WRIMNet, create_model

SIZE = (64, 32)
MODALITIES = torch.tensor([0, 1, 1, 0])


def _model() -> WRIMNet:
    return create_model("wrimnet_resnet18", num_classes=5, img_size=SIZE)


@pytest.mark.slow
def test_onnx_export_matches_torch(tmp_path) -> None:
    pytest.importorskip("onnxscript", reason="pip install wrim[onnx]")
    ort = pytest.importorskip("onnxruntime", reason="pip install wrim[onnx]")
    model = _model().eval()
    batch = torch.export.Dim("batch", min=1)
    program = torch.onnx.export(
        model,
        (torch.randn(2, 3, *SIZE), torch.tensor([0, 1])),
        dynamo=True,
        input_names=["images", "modalities"],
        output_names=["embedding"],
        dynamic_shapes=({0: batch}, {0: batch}),
    )
    path = tmp_path / "wrimnet.onnx"
    program.save(str(path))
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    images = torch.randn(4, 3, *SIZE)  # another batch size than at export
    (onnx_out,) = session.run(None, {"images": images.numpy(), "modalities": MODALITIES.numpy()})
    with torch.no_grad():
        expected = model(images, MODALITIES)
    torch.testing.assert_close(torch.from_numpy(onnx_out), expected, atol=1e-4, rtol=1e-4)


def _onnxruntime_embedding(path, images: torch.Tensor, modalities: torch.Tensor) -> torch.Tensor:
    ort = pytest.importorskip("onnxruntime", reason="pip install wrim[onnx]")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [node.name for node in session.get_inputs()]
    assert len(names) == 2, names  # images, modalities (num_visible=None is no graph input)
    (out,) = session.run(None, dict(zip(names, (images.numpy(), modalities.numpy()))))
    return torch.from_numpy(out)


def _torchscript_export(model: WRIMNet, args: tuple, path) -> None:
    """``torch.onnx.export(model, args, path)`` with the TorchScript exporter, the default of torch < 2.9 (torch
    < 2.5 has no ``dynamo`` argument)."""
    pytest.importorskip("onnx", reason="pip install wrim[onnx]")
    dynamo = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TracerWarnings of the Python-side shape checks, the deprecation notice
        torch.onnx.export(model, args, str(path), **dynamo)


def test_onnx_torchscript_exporter_matches_torch(tmp_path) -> None:
    """issue 26: the user's call failed with "forward() takes from 2 to 3 positional arguments but 4 were given"
    (the exporter passes every defaulted parameter of forward positionally, and num_visible was keyword-only).
    Bound: ONNX_TOLERANCE on each unit-norm row's L2 difference (float32 summation order, wrim.engine.export)."""
    model = _model().eval()
    images = torch.randn(4, 3, *SIZE)
    _torchscript_export(model, (images, MODALITIES), tmp_path / "m.onnx")
    with torch.no_grad():
        expected = model(images, MODALITIES)
    assert (_onnxruntime_embedding(tmp_path / "m.onnx", images, MODALITIES) - expected).norm(dim=1).max() <= (
        ONNX_TOLERANCE
    )


@pytest.mark.slow
@pytest.mark.parametrize("dynamo", [False, True], ids=["torchscript", "dynamo"])
def test_onnx_backbone_swapped_matches_torch(tmp_path, dynamo: bool) -> None:
    """Both exporters on a ConvNeXt WRIMNet; the ONNX model runs another batch size than at export (dynamic)."""
    model = create_model("wrimnet_resnet18", backbone="convnext_atto", num_classes=5, img_size=SIZE).eval()
    path, example = tmp_path / "m.onnx", (torch.randn(2, 3, *SIZE), torch.tensor([0, 1]))
    if dynamo:
        pytest.importorskip("onnxscript", reason="pip install wrim[onnx]")
        batch = torch.export.Dim("batch", min=1)
        program = torch.onnx.export(model, example, dynamo=True, dynamic_shapes=({0: batch}, {0: batch}))
        program.save(str(path))
    else:
        export_onnx(model, path)  # wrim export --onnx's call: TorchScript, dynamic batch axis
    images = torch.randn(4, 3, *SIZE)
    with torch.no_grad():
        expected = model(images, MODALITIES)
    assert (_onnxruntime_embedding(path, images, MODALITIES) - expected).norm(dim=1).max() <= ONNX_TOLERANCE


@pytest.mark.needs_compile
@pytest.mark.slow
def test_compile_fullgraph_train_and_eval() -> None:
    """No graph break anywhere (MIIM and ModalityMIIM included), in training and eval."""
    model = _model()
    compiled = torch.compile(model, fullgraph=True, backend="eager")
    images = torch.randn(4, 3, *SIZE)
    out = compiled(images, MODALITIES)
    out.logits["p5_global"].logsumexp(1).mean().backward()
    assert model.miims["stage1"].visible.compress.weight.grad is not None
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(compiled(images, MODALITIES), model(images, MODALITIES))


@pytest.mark.needs_compile
@pytest.mark.slow
def test_compile_inductor_eval() -> None:
    model = _model().eval()
    compiled = torch.compile(model, fullgraph=True)
    images = torch.randn(4, 3, *SIZE)
    with torch.no_grad():
        torch.testing.assert_close(compiled(images, MODALITIES), model(images, MODALITIES), atol=1e-4, rtol=1e-4)


def test_fx_symbolic_trace_eval_matches() -> None:
    """issue 11: the MIIM hooks are traced into the graph (torchvision / timm fx feature extraction work)."""
    model = _model().eval()
    images = torch.randn(4, 3, *SIZE)
    graph = torch.fx.symbolic_trace(model)
    assert any("miims" in str(node.target) for node in graph.graph.nodes)
    with torch.no_grad():
        torch.testing.assert_close(graph(images, MODALITIES), model(images, MODALITIES))


@pytest.mark.slow
@pytest.mark.parametrize("backbone", ["resnet18", "vit_tiny_patch16_224"])
def test_torch_export_eval_matches(backbone: str) -> None:
    model = WRIMNet(backbone, num_classes=5, img_size=SIZE).eval()
    images = torch.randn(4, 3, *SIZE)
    program = torch.export.export(model, (images, MODALITIES))
    with torch.no_grad():
        torch.testing.assert_close(program.module()(images, MODALITIES), model(images, MODALITIES))


@pytest.mark.cuda
def test_cuda_bf16_channels_last_matches_cpu() -> None:
    model = _model().eval()
    images = torch.randn(4, 3, *SIZE)
    with torch.no_grad():
        expected = model(images, MODALITIES)
        gpu = model.cuda().to(memory_format=torch.channels_last)
        fp32 = gpu(images.cuda().to(memory_format=torch.channels_last), MODALITIES.cuda())
        with torch.autocast("cuda", dtype=torch.bfloat16):
            bf16 = gpu(images.cuda(), MODALITIES.cuda())
    torch.testing.assert_close(fp32.cpu(), expected, atol=1e-3, rtol=1e-3)
    assert torch.nn.functional.cosine_similarity(bf16.float().cpu(), expected).min() > 0.98
    gpu.train()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = gpu(images.cuda(), MODALITIES.cuda())
        loss = sum(logits.float().logsumexp(1).mean() for logits in out.logits.values())
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in gpu.parameters() if p.grad is not None)


@pytest.mark.slow
def test_compiled_evaluation_is_one_graph_per_batch_layout_and_equals_eager() -> None:
    """``model.compile()`` for evaluation (``wrim eval --compile``): ``embed`` calls the compiled forward with the
    host-counted ``num_visible``, so each copy still computes only its own samples; no graph break, one graph per
    (batch size, visible count) and no recompile when a layout comes back; the embeddings equal eager ones."""
    from torch._dynamo.testing import CompileCounterWithBackend

    torch._dynamo.reset()
    model = _model().eval()
    eager = {}
    batches = [(torch.randn(4, 3, *SIZE), torch.full((4,), ids)) for ids in (1, 0, 1, 0)]
    with torch.no_grad():
        for index, (images, modalities) in enumerate(batches):
            eager[index] = model.embed(images, modalities, flip=True)
        counter = CompileCounterWithBackend("eager")  # the graphs, not Inductor's kernels: bench_step times those
        model.compile(backend=counter, fullgraph=True)
        for index, (images, modalities) in enumerate(batches):
            torch.testing.assert_close(model.embed(images, modalities, flip=True), eager[index], atol=1e-4, rtol=1e-4)
    assert counter.frame_count == 2  # one graph for the infrared batches, one for the visible ones
