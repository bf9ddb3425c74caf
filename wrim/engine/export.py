"""``wrim export``: a finished run as a [`save_pretrained()`][wrim.models.save_pretrained] folder, optionally with ONNX.

```text
wrim export runs/synthetic-... --out ./wrimnet-synthetic                      # best checkpoint, card, config
wrim export runs/synthetic-... --out ./wrimnet-synthetic --checkpoint last --onnx
```

The run's checkpoint set (``best.json`` / ``last.json``), its ``config.yaml`` (the recipe, in the card and in
config.json) and ``final_metrics.json`` (in the card, when they score the exported weights) go into one folder,
written beside ``--out`` and renamed into place. ``--onnx`` adds ``model.onnx`` from torch's TorchScript exporter
(``dynamo=False``: no onnxscript needed, the default exporter of torch < 2.9) with a dynamic batch axis, and checks
it with onnxruntime against torch; the largest difference goes into the model card ([D] docs: Models, section
Sharing a trained model).

**Bound of the ONNX check** ([D]). The embedding ``e`` has unit L2 norm. onnxruntime and torch compute the same
float32 operations, but sum in other orders (other GEMM / convolution blocking, BatchNorm folded into the
convolutions). One length-``K`` float32 dot product then differs by about ``sqrt(K) u`` relative to the magnitude
of its terms (the probabilistic rounding bound, Higham and Mary 2019), ``u = 2^-24``. The longest sums of a
ResNet-18 WRIMNet have ``K = 512 * 3 * 3 = 4608``: ``sqrt(K) u = 4.1e-6``. About ``L = 30`` such layers in sequence
(backbone convolutions, the MIIMs' projections and attention, the heads), each of gain about 1 after its
normalisation, add their relative errors: ``30 * 4.1e-6 = 1.2e-4`` relative to the pre-normalisation embedding,
at most twice that, ``2.5e-4``, between the two unit vectors. ``ONNX_TOLERANCE = 3e-4`` bounds the L2 difference of
every embedding row (and so its largest element difference).
"""

from __future__ import annotations

import argparse
import inspect
import warnings
from pathlib import Path
from typing import Any

from wrim.engine.checkpoint import WEIGHTS
from wrim.engine.rundir import TAGS

__all__ = ["ONNX_TOLERANCE", "add_export_parser", "check_onnx", "export_onnx", "export_run", "run_export"]

ONNX_TOLERANCE = 3e-4  # L2 difference per unit-norm embedding row, onnxruntime vs torch (derivation above)


def add_export_parser(sub: Any) -> None:
    """The ``wrim export`` sub-command on the ``wrim`` parser's sub-parsers."""
    export = sub.add_parser("export", help="a finished run as a shareable folder (config.json, weights, model card)")
    export.add_argument("run_dir", metavar="RUN_DIR", help="a finished wrim train run folder")
    export.add_argument("--out", required=True, help="the folder to write (replaced if written by wrim before)")
    export.add_argument(
        "--checkpoint",
        choices=list(TAGS),
        default="best",
        help="which checkpoint (default: best)",
    )
    export.add_argument("--onnx", action="store_true", help="also write model.onnx, checked with onnxruntime")
    export.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="import a module (name or .py path) that registers the run's model; repeatable",
    )


def run_export(args: argparse.Namespace) -> int:
    """The ``wrim export`` handler."""
    out = export_run(args.run_dir, args.out, checkpoint=args.checkpoint, onnx=args.onnx)
    print(f"exported {args.checkpoint} checkpoint of {args.run_dir} to {out}", flush=True)
    return 0


def export_run(run_dir: str | Path, out: str | Path, *, checkpoint: str = "best", onnx: bool = False) -> Path:
    """Write a finished run's ``checkpoint`` weights, recipe and final metrics as a ``save_pretrained`` folder.

    Args:
        run_dir: a run folder of ``wrim train`` that finished (holds ``final_metrics.json``).
        out: the folder to write.
        checkpoint: ``"best"`` or ``"last"``.
        onnx: also write ``model.onnx`` and check it with onnxruntime (``pip install 'wrim[onnx]'``).

    Returns:
        ``out``.

    Raises:
        ValueError: not a finished run folder, a model given to ``Trainer(model=...)`` (not rebuildable by name), no
            such checkpoint, the ONNX check failed (nothing is written).
    """
    from wrim.engine.config import config_to_dict
    from wrim.engine.rundir import RunFolder
    from wrim.models import create_model
    from wrim.models.pretrained import pretrained_config, staged_folder, write_pretrained

    folder = RunFolder(run_dir)
    info = folder.read_model_info()
    recipe = config_to_dict(folder.read_config())
    final = folder.read_final_metrics()
    if final is None:
        raise ValueError(
            f"{str(folder.path)!r} has not finished (no final_metrics.json): finish it with wrim train --resume "
            f"{folder.path}"
        )
    model = create_model(
        folder.model_name(), num_classes=info["num_classes"], img_size=tuple(info["img_size"]),
        **(recipe.get("model", {}).get("kwargs") or {}),
    )  # fmt: skip
    state = folder.load_checkpoint(checkpoint, model)
    weights = (Path(state["checkpoint_set"]).relative_to(folder.path) / WEIGHTS).as_posix()
    metrics = _run_metrics(recipe, final) if weights == final.get("weights") else None
    if metrics is None:
        print(f"note: final_metrics.json scores {final.get('weights')}, not {weights}: the card holds no metrics")
    config = pretrained_config(model, metrics=metrics, config=_shareable(recipe))
    model.eval()
    with staged_folder(out) as staged:
        notes = [check_onnx(model, export_onnx(model, staged / "model.onnx"))] if onnx else []
        write_pretrained(model, staged, config, load_id=str(out), notes=notes)
    return Path(out)


def _shareable(recipe: dict) -> dict:
    """The run's config without this machine's paths (``output_dir``, ``run_name``, ``data.root``), which say
    nothing about the recipe; ``model.pretrained_file`` keeps its file name only."""
    recipe = {key: value for key, value in recipe.items() if key not in ("output_dir", "run_name")}
    if isinstance(recipe.get("data"), dict):
        recipe["data"] = {key: value for key, value in recipe["data"].items() if key != "root"}
    model = recipe.get("model")
    if isinstance(model, dict) and model.get("pretrained_file"):
        recipe["model"] = {**model, "pretrained_file": Path(str(model["pretrained_file"])).name}
    return recipe


def _run_metrics(recipe: dict, final: dict) -> dict[str, dict[str, float]]:
    """``final_metrics.json`` as one row of the model card, named by its protocol card (dataset and version,
    protocol, trials, galleries, re-ranking, flip, precision, checkpoint choice); a run written before protocol
    cards gets the dataset, protocol arguments and the number of trials its config gives."""
    from wrim.evaluation import METRIC_NAMES
    from wrim.evaluation.card import ProtocolCard

    row = {key: final[key] for key in METRIC_NAMES if key in final}
    if final.get("card"):
        card = ProtocolCard.from_dict(final["card"])
        return {card.header(): {**row, "trials": len(card.trials)}}
    data, evaluation = recipe.get("data") or {}, recipe.get("eval") or {}
    protocol = " ".join(f"{key}={value}" for key, value in (evaluation.get("protocol") or {}).items())
    trials = evaluation.get("final_trials")
    if trials is not None:
        row["trials"] = len(trials)
    return {f"{data.get('dataset', 'test')} {protocol}".strip(): row}


def export_onnx(model: Any, path: Path) -> Path:
    """``model`` (eval mode) to ONNX with torch's TorchScript exporter: inputs ``images`` (B, 3, H, W) and
    ``modalities`` (B,), output ``embedding`` (B, D), the batch axis dynamic."""
    import torch

    height, width = model.img_size
    example = (torch.randn(2, 3, height, width), torch.tensor([0, 1]))
    batch = {0: "batch"}
    torchscript = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}  # < 2.5
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the exporter's TracerWarnings on Python-side shape checks
        torch.onnx.export(
            model, example, str(path), **torchscript, input_names=["images", "modalities"],
            output_names=["embedding"], dynamic_axes={"images": batch, "modalities": batch, "embedding": batch},
        )  # fmt: skip
    return path


def check_onnx(model: Any, path: Path) -> str:
    """Run ``path`` with onnxruntime (CPU) and torch on 4 random images of both modalities; the model card's section.

    Raises:
        ValueError: onnxruntime is missing, or a row differs by more than ``ONNX_TOLERANCE`` (L2).
    """
    import torch

    try:
        import onnxruntime
    except ImportError:
        raise ValueError("--onnx needs onnx and onnxruntime: pip install 'wrim[onnx]'") from None
    height, width = model.img_size
    generator = torch.Generator().manual_seed(0)
    images, modalities = torch.randn(4, 3, height, width, generator=generator), torch.tensor([0, 1, 1, 0])
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (embedding,) = session.run(None, {"images": images.numpy(), "modalities": modalities.numpy()})
    with torch.no_grad():
        expected = model(images, modalities)  # (4, D)
    difference = torch.from_numpy(embedding) - expected
    row_l2, largest = float(difference.norm(dim=1).max()), float(difference.abs().max())
    if not row_l2 <= ONNX_TOLERANCE:
        raise ValueError(f"model.onnx differs from torch by {row_l2:.3g} (L2 per row) > {ONNX_TOLERANCE}; not exported")
    return (
        "## ONNX\n\n`model.onnx`: `torch.onnx.export(..., dynamo=False)` (inputs `images` (B, 3, "
        f"{height}, {width}) and `modalities` (B,), output `embedding`, dynamic batch), run with onnxruntime "
        f"{onnxruntime.__version__} (CPU) against torch {torch.__version__} on 4 random images of both modalities: "
        f"largest element difference {largest:.3g}, largest L2 difference of an embedding row {row_l2:.3g} "
        f"(bound {ONNX_TOLERANCE}: float32 summation-order differences, wrim.engine.export)."
    )
