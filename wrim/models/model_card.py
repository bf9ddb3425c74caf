"""The model card (README.md) of a folder written by [`save_pretrained()`][wrim.models.save_pretrained].

What the model is, how to load it in three lines, its constructor arguments, a metrics table per protocol with the
number of gallery trials, the training recipe, the dataset's terms and the BibTeX of the paper and of wrim
([D] docs: Models, section Sharing a trained model).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from wrim.version import RELEASE_DATE, __version__

__all__ = ["PAPER_BIBTEX", "SOFTWARE_BIBTEX", "check_metrics", "model_card", "plain_recipe"]


def model_card(info: dict, load_id: str, notes: Sequence[str] = ()) -> str:
    """The README.md of a saved model: what it is, how to load it, the recipe, the metrics, data terms, BibTeX.

    Args:
        info: the content of config.json (``pretrained_config()``).
        load_id: what the reader passes to ``wrim.from_pretrained`` (the folder or the Hub id).
        notes: further Markdown sections (e.g. the ONNX check of ``wrim export --onnx``).
    """
    args, cfg = info["model_args"], info["pretrained_cfg"]
    backbone = args.get("backbone", "resnet50")
    dataset = ((info.get("recipe") or {}).get("data") or {}).get("dataset")
    _, height, width = cfg["input_size"]
    recipe = info.get("recipe")
    recipe_text = (
        "```yaml\n" + _yaml(recipe) + "```" if recipe else "Not recorded (save_pretrained was given no config)."
    )
    sections = [
        "---\nlibrary_name: wrim\n"
        f"license: {'mit' if dataset == 'synthetic' else 'other'}\n"
        "pipeline_tag: image-feature-extraction\ntags:\n- wrim\n- person-reidentification\n- visible-infrared\n---",
        f"# {info['architecture']} ({backbone})",
        f"WRIM-Net (Wu et al., ECCV 2024, arXiv:2408.10624) for visible-infrared person re-identification, built with "
        f"wrim {info['wrim_version']} on the timm backbone `{backbone}`. In eval "
        f"mode it maps person crops to {info['num_features']}-d L2-normalised embeddings; compare them by cosine "
        f"distance. Trained with {info['num_classes']} identities{f' on {dataset}' if dataset else ''}.",
        "## Load it\n\n```python\nimport wrim\n"
        f'model = wrim.from_pretrained("{load_id}").eval()\n'
        f"embeddings = model(images, modalities)  # (B, 3, {height}, {width}) -> (B, {info['num_features']})\n```\n\n"
        f"`images`: RGB crops resized to {height}x{width} ({cfg['interpolation']}), scaled to [0, 1] and normalised "
        f"with mean {cfg['mean']} and std {cfg['std']} (`wrim.data.TestTransform`); `modalities`: one id per image, "
        f"{info['modalities']['visible']} = visible, {info['modalities']['infrared']} = infrared "
        "(infrared images as 3 equal channels).",
        "## Model\n\n" + _model_table(info),
        "## Results\n\n" + _metrics_table(info.get("metrics") or {}),
        "## Training recipe\n\n" + recipe_text,
        "## Data and terms\n\n" + _DATA_TERMS.get(dataset, _DATA_TERMS[None]),
        *notes,
        "## Citation\n\nPlease cite the paper and wrim:\n\n```bibtex\n" + PAPER_BIBTEX + "\n```\n\n```bibtex\n"
        + SOFTWARE_BIBTEX + "\n```",
    ]  # fmt: skip
    return "\n\n".join(sections) + "\n"


def _model_table(info: dict) -> str:
    cfg = info["pretrained_cfg"]
    rows = [
        ("architecture", f"`{info['architecture']}`"),
        ("constructor arguments", f"`{json.dumps(info['model_args'])}`"),
        ("input size", f"{cfg['input_size']} (fixed: {cfg['fixed_input_size']})"),
        ("embedding dimension", str(info["num_features"])),
        ("ID classes", str(info["num_classes"])),
        ("modality ids", ", ".join(f"{v} = {k}" for k, v in info["modalities"].items())),
        ("wrim version", info["wrim_version"]),
    ]
    return "| | |\n|---|---|\n" + "\n".join(f"| {name} | {value} |" for name, value in rows)


def _metrics_table(metrics: dict) -> str:
    from wrim.evaluation.metrics import METRIC_NAMES  # the metrics' order, where they are computed

    if not metrics:
        return "No metrics were recorded with these weights."
    columns = [k for k in METRIC_NAMES if any(k in m for m in metrics.values())]
    columns += sorted({k for m in metrics.values() for k in m} - {*columns, "trials"})
    lines = ["| protocol | trials | " + " | ".join(columns) + " |", "|---" * (len(columns) + 2) + "|"]
    for protocol, values in metrics.items():
        cells = [f"{values[k]:.2f}" if k in values else "-" for k in columns]
        lines.append(f"| {protocol} | {values.get('trials', 'not given')} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n\nIn percent; each number is the mean over the protocol's gallery trials."


def check_metrics(metrics: Mapping[str, Any] | None) -> dict[str, dict[str, float]]:
    """``{protocol: {metric: number, "trials": int}}``; a flat mapping of numbers is the protocol ``"test"``."""
    if metrics is None:
        return {}
    if not isinstance(metrics, Mapping):
        raise TypeError(f"metrics must be a mapping (protocol -> {{metric: value}}); got {type(metrics).__name__}")
    if metrics and all(not isinstance(v, Mapping) for v in metrics.values()):
        metrics = {"test": metrics}
    checked = {}
    for protocol, values in metrics.items():
        if not isinstance(values, Mapping):
            raise TypeError(f"metrics[{protocol!r}] must be a mapping of metric name -> number")
        bad = [
            k
            for k, v in values.items()
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)
        ]
        if bad:
            raise ValueError(f"metrics[{protocol!r}][{bad[0]!r}] = {values[bad[0]]!r} is not a finite number")
        trials = values.get("trials")
        if trials is not None and (not float(trials).is_integer() or trials < 1):
            raise ValueError(f"metrics[{protocol!r}]['trials'] must be a whole number >= 1; got {trials!r}")
        checked[str(protocol)] = {k: (int(v) if k == "trials" else float(v)) for k, v in values.items()}
    return checked


def plain_recipe(config: Any) -> dict | None:
    """The training recipe as plain JSON data (a dataclass or mapping; tuples and sets become lists)."""
    if config is None:
        return None
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        config = dataclasses.asdict(config)
    if not isinstance(config, Mapping):
        raise TypeError(f"config (the training recipe) must be a mapping or a dataclass; got {type(config).__name__}")
    return json.loads(json.dumps(config, default=list))  # tuples / sets -> lists


def _yaml(value: Any) -> str:
    import yaml

    return yaml.safe_dump(value, sort_keys=False)


_DATA_TERMS: dict[str | None, str] = {
    "synthetic": "Trained on wrim's synthetic VI-ReID set (rendered by wrim, no real people, MIT). Its numbers "
    "show that training works; they say nothing about accuracy on real cameras.",
    "sysu": "Trained on SYSU-MM01 (Sun Yat-sen University), released on a signed dataset release agreement for "
    "scientific research. The weights derive from its images: read the agreement before any use beyond research, "
    "and cite Wu et al., ICCV 2017 and IJCV 2020.",
    "regdb": "Trained on RegDB (Dongguk University, DBPerson-Recog-DB1), released on the university's copyright "
    "form. The weights derive from its images: read the form's terms before any use beyond research, and cite "
    "Nguyen et al., Sensors 17(3), 2017.",
    "llcm": "Trained on LLCM (Xiamen University), released on the LLCM dataset release agreement. The weights derive "
    "from its images: read the agreement before any use beyond research, and cite Zhang and Wang, CVPR 2023.",
    None: "The training data is not recorded here; its own terms apply to these weights.",
}

#: the entries of docs: Citing (tested equal; they follow CITATION.cff)
PAPER_BIBTEX = """@inproceedings{wu2024wrimnet,
  title         = {WRIM-Net: Wide-Ranging Information Mining Network for Visible-Infrared Person Re-Identification},
  author        = {Wu, Yonggan and Meng, Ling-Chao and Yuan, Zichao and Chan, Sixian and Wang, Hong-Qiang},
  booktitle     = {Computer Vision -- ECCV 2024},
  year          = {2024},
  eprint        = {2408.10624},
  archivePrefix = {arXiv},
  url           = {https://arxiv.org/abs/2408.10624}
}"""
SOFTWARE_BIBTEX = f"""@software{{wrim,
  title   = {{wrim: WRIM-Net layers, losses and training for visible-infrared person re-identification}},
  author  = {{{{wrim contributors}}}},
  version = {{{__version__}}},
  year    = {{{RELEASE_DATE[:4]}}},
  date    = {{{RELEASE_DATE}}},
  license = {{MIT}}
}}"""
