"""Share a trained model as a folder (or a Hugging Face Hub repository) in the Hub's layout, timm style.

A folder written by [`save_pretrained()`][wrim.models.save_pretrained] holds::

    config.json        architecture (a registered model name), model_args (every constructor argument), num_classes,
                       num_features, pretrained_cfg (input size, mean / std, ...), modality ids, wrim_version,
                       recipe (the training config) and metrics
    model.safetensors  the state dict (wrim.models.save_weights)
    README.md          the model card (wrim.models.model_card.model_card)

[`from_pretrained()`][wrim.models.from_pretrained] (and ``create_model("hf-hub:org/name")`` /
``create_model(name, pretrained_path=...)``) rebuild the model from ``config.json`` and load the weights strictly.
Loading runs no code from the folder: the architecture must be a registered name, weights come only from
safetensors, unknown keys are refused, numbers are bounded and every weight name and shape is checked against a
model built on the meta device before anything is allocated (or, for a backbone that cannot be built there, on the
model once built, within the bounds) ([D] docs: Models, section Sharing a trained model).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from wrim._files import umask_mode
from wrim._versions import release
from wrim.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from wrim.modality import INFRARED, VISIBLE
from wrim.models import weights as weight_files
from wrim.models._registry import MODELS, is_model, model_entrypoint
from wrim.models.model_card import check_metrics, model_card, plain_recipe
from wrim.models.weights import WEIGHTS_FILE, WeightsFile, load_from, open_weights, state_differences
from wrim.version import __version__

__all__ = ["load_pretrained", "push_to_hub", "save_pretrained"]

CONFIG_NAME = "config.json"
CARD_NAME = "README.md"
FORMAT = 1
MAX_CONFIG_BYTES = 1 << 20  # a config.json is a few kB; larger is refused before it is read
MAX_INT = 1 << 20  # no constructor argument of a shareable model is a larger number [D]
MAX_SIDE = 8192  # input height / width
KNOWN_KEYS = frozenset(
    {"format", "wrim_version", "architecture", "model_args", "num_classes", "num_features", "pretrained_cfg",
     "modalities", "recipe", "metrics"}
)  # fmt: skip
#: constructor arguments that would load weights from elsewhere than model.safetensors
_REFUSED_ARGS = frozenset({"pretrained", "pretrained_file"})
_REFUSED_BACKBONE_ARGS = frozenset({"pretrained", "pretrained_cfg", "pretrained_cfg_overlay", "checkpoint_path"})
_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


# --------------------------------------------------------------------------------------------------------- save


def save_pretrained(
    model: nn.Module, path: str | Path, *, metrics: Mapping[str, Any] | None = None, config: Any = None
) -> Path:
    """Write ``model`` as a folder another person can load in one line: config.json, model.safetensors, README.md.

    The files are written into a temporary folder beside ``path`` and renamed into place, so a failure leaves
    nothing half-written; an existing folder written by ``save_pretrained`` is replaced, any other non-empty
    folder is refused.

    Args:
        model: a model built by [`create_model()`][wrim.models.create_model], ``WRIMNet(...)`` or
            ``from_pretrained`` (wrapped by DDP or ``torch.compile`` is fine).
        path: the folder to write.
        metrics: results per protocol, ``{"sysu all-search": {"R1": 74.1, "mAP": 71.0, "trials": 10}, ...}`` (in
            percent; ``trials`` is the number of gallery trials averaged); a flat ``{"R1": ..., "mAP": ...}`` is
            one protocol called ``"test"``.
        config: the training config (recipe) the weights came from: a mapping or a dataclass
            (``wrim.engine.Config``); it goes into config.json and the model card.

    Returns:
        the folder.
    """
    info = pretrained_config(model, metrics=metrics, config=config)
    with staged_folder(path) as folder:
        write_pretrained(_unwrap(model), folder, info, load_id=str(path))
    return Path(path)


def pretrained_config(model: nn.Module, *, metrics: Mapping[str, Any] | None = None, config: Any = None) -> dict:
    """The content of ``config.json`` for ``model`` (see [`save_pretrained()`][wrim.models.save_pretrained])."""
    model = _unwrap(model)
    init_args = getattr(model, "init_args", None)
    if not isinstance(init_args, dict):
        raise TypeError(
            f"save_pretrained needs a wrim model that knows its constructor arguments (WRIMNet, or one built by "
            f"wrim.create_model); got {type(model).__name__}"
        )
    model_args = {key: value for key, value in init_args.items() if key not in _REFUSED_ARGS}
    model_args["num_classes"] = model.num_classes  # reset_classifier may have changed it
    architecture = getattr(model, "architecture", None)  # a WRIMNet(...) knows the entrypoint of its backbone
    if not isinstance(architecture, str):
        raise ValueError(
            f"save_pretrained: this {type(model).__name__} has no registered name, which config.json needs to "
            f"rebuild it (backbone {init_args.get('backbone')!r}; registered: {', '.join(MODELS.names())}). "
            "Register an entrypoint that builds it with @wrim.register_model and create the model with "
            "wrim.create_model('<its name>', ...)"
        )
    height, width = model.img_size
    info = {
        "format": FORMAT,
        "wrim_version": __version__,
        "architecture": architecture,
        "model_args": model_args,
        "num_classes": model.num_classes,
        "num_features": model.num_features,
        "pretrained_cfg": {
            "architecture": architecture,
            "input_size": [3, height, width],
            "fixed_input_size": bool(model.backbone.fixed_size),
            "interpolation": "bilinear",
            "crop_pct": 1.0,
            "crop_mode": "center",
            "mean": list(IMAGENET_MEAN),  # wrim.data.TestTransform's defaults
            "std": list(IMAGENET_STD),
            "num_classes": model.num_classes,
        },
        "modalities": {"visible": VISIBLE, "infrared": INFRARED},
        "recipe": plain_recipe(config),
        "metrics": check_metrics(metrics),
    }
    try:
        return json.loads(json.dumps(info, allow_nan=False))  # tuples -> lists, as the file will hold them
    except (TypeError, ValueError) as err:
        bad = [key for key, value in model_args.items() if not _json_ok(value)]
        where = f"constructor argument(s) {bad}" if bad else "the recipe"
        raise TypeError(f"save_pretrained: {where} cannot be written to config.json as JSON ({err})") from None


def write_pretrained(model: nn.Module, folder: Path, info: dict, load_id: str, notes: Sequence[str] = ()) -> None:
    """Write config.json, model.safetensors and README.md into the existing ``folder`` (no staging)."""
    (folder / CONFIG_NAME).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    weight_files.save_weights(model, folder / WEIGHTS_FILE, metadata={"format": "pt"})
    (folder / CARD_NAME).write_text(model_card(info, load_id, notes), encoding="utf-8")
    for name in (CONFIG_NAME, WEIGHTS_FILE, CARD_NAME):
        os.chmod(folder / name, umask_mode(0o666))  # safetensors writes 0600; the folder is meant to be shared


@contextmanager
def staged_folder(path: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; when the block succeeds it is renamed to ``path``, else removed."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{str(path)!r} is a file; give a folder to write the model into")
    if path.is_dir() and any(path.iterdir()) and not (path / CONFIG_NAME).is_file():
        raise ValueError(
            f"{str(path)!r} holds other files and no {CONFIG_NAME}; give a new or empty folder (a folder written by "
            "save_pretrained is replaced)"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        os.chmod(tmp, umask_mode(0o777))
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old-{time.time_ns():x}")
            os.rename(path, old)
            os.rename(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def push_to_hub(
    model: nn.Module,
    repo_id: str,
    *,
    metrics: Mapping[str, Any] | None = None,
    config: Any = None,
    private: bool = False,
    token: str | None = None,
    commit_message: str = "Upload wrim model",
) -> str:
    """Save ``model`` as [`save_pretrained()`][wrim.models.save_pretrained] does and upload the folder to the Hub.

    Needs ``huggingface_hub`` (``pip install 'wrim[hub]'``) and a write token (``hf auth login`` or ``token=``).
    The repository is created when missing. Returns the URL of the commit.
    """
    try:
        from huggingface_hub import HfApi
    except ImportError:
        raise ValueError("push_to_hub needs huggingface_hub: pip install 'wrim[hub]'") from None
    info = pretrained_config(model, metrics=metrics, config=config)
    with tempfile.TemporaryDirectory() as tmp:
        write_pretrained(_unwrap(model), Path(tmp), info, load_id=repo_id)
        api = HfApi(token=token)
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        commit = api.upload_folder(repo_id=repo_id, folder_path=tmp, commit_message=commit_message)
    return str(getattr(commit, "commit_url", commit))


# --------------------------------------------------------------------------------------------------------- load


def load_pretrained(
    source: str | Path,
    from_hub: bool = False,
    *,
    architecture: str | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> nn.Module:
    """[`from_pretrained()`][wrim.models.from_pretrained] with ``create_model``'s checks: the saved
    ``architecture`` must be the given one, and ``overrides`` (constructor arguments) must equal the saved ones
    except ``num_classes``, whose classifiers are replaced after loading.

    Args:
        source: a folder, or a Hub id ``"org/name"`` (without ``hf-hub:``, which the factory reads).
        from_hub: ``source`` is a Hub id, never a local folder.
    """
    folder = _resolve_folder(source, from_hub)
    info = read_config(folder)
    weights = _weights_file(folder)
    if architecture is not None and architecture != info["architecture"]:
        raise ValueError(
            f"{str(folder)!r} holds a {info['architecture']!r}, not a {architecture!r}; call "
            f"create_model({info['architecture']!r}, pretrained_path=...) or wrim.from_pretrained(...)"
        )
    kwargs = dict(info["model_args"])
    num_classes = _check_overrides(kwargs, dict(overrides or {}))
    config = folder / CONFIG_NAME
    with open_weights(weights) as file:  # the header is read once, here
        try:
            with torch.device("meta"):  # names and shapes only: nothing is allocated before they match
                given = _given_arguments(info["architecture"], kwargs, config)
                skeleton = _build(info["architecture"], kwargs, given, config)
                _check_weights(skeleton, file)
        except (NotImplementedError, RuntimeError):  # a backbone whose __init__ reads tensor values (older timm)
            given = None
        if given is None:  # within the bounded sizes of _check_model_args
            given = _given_arguments(info["architecture"], kwargs, config)
            model = _build(info["architecture"], kwargs, given, config)
            _check_weights(model, file)
        else:
            model = _build(info["architecture"], kwargs, given, config)
        load_from(model, file)
    if num_classes is not None and num_classes != model.num_classes:
        model.reset_classifier(num_classes)
    return model


def read_config(folder: Path) -> dict:
    """``folder``'s config.json, checked: size, JSON, wrim version, known keys, registered architecture, numbers."""
    path = folder / CONFIG_NAME
    if not path.is_file():
        raise ValueError(f"{str(folder)!r} has no {CONFIG_NAME}: it is not a folder written by wrim.save_pretrained")
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise ValueError(f"{str(path)!r} is {path.stat().st_size} bytes; a wrim config.json holds < {MAX_CONFIG_BYTES}")
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as err:  # UnicodeDecodeError is a ValueError
        raise ValueError(f"{str(path)!r} is not valid JSON ({' '.join(str(err).split())})") from None
    if not isinstance(info, dict):
        raise ValueError(f"{str(path)!r} must hold a JSON object; got {type(info).__name__}")
    saved = info.get("wrim_version")
    if not isinstance(saved, str) or len(saved) > 64 or not re.match(r"\d+\.\d+", saved):
        raise ValueError(f"{str(path)!r} has no wrim_version: it is not a config.json written by wrim.save_pretrained")
    if release(saved) > release(__version__):
        raise ValueError(
            f"{str(path)!r} was written by wrim {saved}, newer than this wrim {__version__}; upgrade: "
            "pip install -U wrim"
        )
    unknown = sorted(set(info) - KNOWN_KEYS)
    if unknown:
        raise ValueError(
            f"{str(path)!r} has unknown keys {unknown} (refused); wrim {__version__} knows {sorted(KNOWN_KEYS)}"
        )
    architecture, model_args = info.get("architecture"), info.get("model_args")
    if not isinstance(architecture, str) or not isinstance(model_args, dict):
        raise ValueError(f"{str(path)!r} needs 'architecture' (a model name) and 'model_args' (an object)")
    if not is_model(architecture):
        hint = " (wrim never imports code a config names)" if any(c in architecture for c in ".:/") else ""
        raise ValueError(
            f"{str(path)!r} names architecture {architecture!r}, which wrim {__version__} does not have{hint}: "
            f"{MODELS.unknown(architecture)}"
        )
    modalities = info.get("modalities", {"visible": VISIBLE, "infrared": INFRARED})
    if modalities != {"visible": VISIBLE, "infrared": INFRARED}:
        raise ValueError(
            f"{str(path)!r}: modalities {modalities!r} differ from wrim's: visible {VISIBLE}, infrared {INFRARED}"
        )
    _check_model_args(model_args, path)
    return info


def _check_model_args(model_args: dict, path: Path) -> None:
    """Refuse arguments that load weights from elsewhere, a backbone that is no timm name, and absurd numbers."""
    refused = sorted(_REFUSED_ARGS & set(model_args))
    backbone_kwargs = model_args.get("backbone_kwargs") or {}
    if not isinstance(backbone_kwargs, dict):
        raise ValueError(f"{str(path)!r}: model_args.backbone_kwargs must be an object")
    refused += [f"backbone_kwargs.{key}" for key in sorted(_REFUSED_BACKBONE_ARGS & set(backbone_kwargs))]
    if refused:
        raise ValueError(f"{str(path)!r}: model_args {refused} would load weights from elsewhere than {WEIGHTS_FILE}")
    backbone = model_args.get("backbone", "resnet50")
    import timm

    if not isinstance(backbone, str) or not timm.is_model(backbone):
        raise ValueError(f"{str(path)!r}: model_args.backbone {backbone!r} is not a timm model name")
    for where, value in _numbers(model_args, "model_args"):
        if abs(value) > MAX_INT:
            raise ValueError(f"{str(path)!r}: {where} = {value} is absurdly large (more than {MAX_INT}); refused")
    size = model_args.get("img_size", ())
    sides = [size] if isinstance(size, int) else size if isinstance(size, list) else []
    if any(isinstance(side, int) and side > MAX_SIDE for side in sides):
        raise ValueError(f"{str(path)!r}: model_args.img_size {size} exceeds {MAX_SIDE} pixels a side; refused")


def _numbers(value: Any, where: str) -> Iterator[tuple[str, float]]:
    """Every number inside nested lists / dicts, with its path."""
    if isinstance(value, bool):
        return
    if isinstance(value, (int, float)):
        yield where, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _numbers(item, f"{where}.{key}" if key.isidentifier() else f"{where}[{key!r}]")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _numbers(item, f"{where}[{index}]")


def _check_overrides(saved: dict, overrides: dict) -> int | None:
    """The ``num_classes`` override (or None); any other override must equal the saved argument."""
    num_classes = overrides.pop("num_classes", None)
    differ = [key for key, value in overrides.items() if json.loads(json.dumps(value, default=str)) != saved.get(key)]
    if differ:
        key = differ[0]
        raise ValueError(
            f"pretrained_path rebuilds the saved model: {key}={overrides[key]!r} differs from the saved "
            f"{saved.get(key)!r}; only num_classes may change (its classifiers are then replaced)"
        )
    return num_classes


def _given_arguments(architecture: str, kwargs: dict, config: Path) -> dict:
    """The saved arguments (``kwargs``, from ``config``) to pass to ``architecture``'s entrypoint: ``num_classes``
    and those that differ from what the entrypoint builds given ``num_classes`` alone.

    An argument the entrypoint fixes itself (``WRIMNet(backbone="x", **kwargs)``) is so never given twice; `_build`
    then checks that the model it builds has every saved argument.
    """
    reference = _call(architecture, {key: kwargs[key] for key in ("num_classes",) if key in kwargs}, config)
    built = _plain(getattr(reference, "init_args", {}))
    return {key: value for key, value in kwargs.items() if key == "num_classes" or built.get(key, ...) != value}


def _build(architecture: str, kwargs: dict, given: dict, config: Path) -> nn.Module:
    """``architecture``'s entrypoint called with the ``given`` arguments (`_given_arguments`); the built model's
    arguments must equal every saved one (``kwargs``, from ``config``)."""
    model = _call(architecture, given, config)
    built = _plain(getattr(model, "init_args", {}))
    differ = [key for key in kwargs if built.get(key) != kwargs[key]]
    if differ:
        key = differ[0]
        raise ValueError(
            f"{architecture!r} of wrim {__version__} builds {key}={built.get(key)!r}, but {str(config)!r} saved "
            f"{kwargs[key]!r}: this wrim cannot rebuild the saved model"
        )
    model.architecture = architecture
    return model


def _call(architecture: str, arguments: dict, config: Path) -> nn.Module:
    """``architecture``'s entrypoint called with ``arguments``; a wrong type or value is named by the model's own
    check."""
    try:
        return model_entrypoint(architecture)(pretrained=False, **arguments)
    except (TypeError, ValueError) as err:  # a wrong type or value: the model's own check names it
        raise ValueError(
            f"{str(config)!r}: model_args do not fit {architecture!r} of wrim {__version__}: "
            + " ".join(str(err).split())
        ) from None


def _plain(init_args: dict) -> dict:
    """Constructor arguments as config.json holds them (tuples as lists, other objects as strings)."""
    return json.loads(json.dumps(init_args, default=str))


def _weights_file(folder: Path) -> Path:
    """model.safetensors; never a pickle (``.bin``, ``.pt``, ...), which can run code when loaded."""
    path = folder / WEIGHTS_FILE
    if path.is_file():
        return path
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".pkl", ".ckpt"))
    also = f"; it holds {pickles}, pickle files, which wrim never loads (unpickling can run code)" if pickles else ""
    raise ValueError(f"{str(folder)!r} has no {WEIGHTS_FILE}{also}")


def _check_weights(model: nn.Module, file: WeightsFile) -> None:
    """Every weight name and shape of ``model`` (built on the meta device) against the file's header."""
    differences = state_differences(model, file.shapes)
    shapes = [f"{key!r}: file {found} vs model {shape}" for key, found, shape in differences.shapes]
    problems = [
        f"{label} {items[0] if label == 'shape of' else repr(items[0])} (first of {len(items)})"
        for label, items in (
            ("missing", differences.missing),
            ("unexpected", differences.unexpected),
            ("shape of", shapes),
        )
        if items
    ]
    if problems:
        raise ValueError(f"{str(file.path)!r} does not match config.json's model: {'; '.join(problems)}")


def _resolve_folder(source: str | Path, from_hub: bool) -> Path:
    """A local folder, or the Hub repository's snapshot in huggingface_hub's cache (``from_hub``: ``source`` is a
    Hub id for certain)."""
    text = str(source)
    if from_hub:
        return _download(text)
    path = Path(source)
    if path.is_dir():
        return path
    if path.exists():
        raise ValueError(f"{text!r} is a file; give the folder save_pretrained wrote (or a Hub id 'org/name')")
    if isinstance(source, str) and _REPO_ID.fullmatch(text):
        return _download(text)
    raise ValueError(f"{text!r} is neither a folder nor a Hub id ('org/name')")


def _download(repo_id: str) -> Path:
    """``snapshot_download`` of the three files, once (huggingface_hub's cache; no retry loop here)."""
    try:
        from huggingface_hub import constants, snapshot_download
        from huggingface_hub.utils import LocalEntryNotFoundError
    except ImportError:
        raise ValueError(
            f"{repo_id!r} is no local folder, and loading a Hub id needs huggingface_hub: pip install 'wrim[hub]'"
        ) from None
    try:
        folder = snapshot_download(
            repo_id, allow_patterns=[CONFIG_NAME, WEIGHTS_FILE, CARD_NAME], library_name="wrim",
            library_version=__version__,
        )  # fmt: skip
    except LocalEntryNotFoundError:
        why = "HF_HUB_OFFLINE is set" if constants.HF_HUB_OFFLINE else "the Hub cannot be reached"
        raise ValueError(
            f"{repo_id!r} is no local folder and not in the Hub cache {constants.HF_HUB_CACHE!r}, and {why}; "
            "download it once with a connection, or pass the path of a copy"
        ) from None
    except Exception as err:  # RepositoryNotFoundError, GatedRepoError, HTTP errors
        raise ValueError(f"cannot download {repo_id!r} from the Hub ({type(err).__name__}: {err})") from None
    return Path(folder)


def _json_ok(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


def _unwrap(model: nn.Module) -> nn.Module:
    """The module inside ``torch.compile`` / DDP / DataParallel wrappers."""
    while True:
        inner = getattr(model, "_orig_mod", None) or (
            model.module if isinstance(model, (nn.DataParallel, nn.parallel.DistributedDataParallel)) else None
        )
        if inner is None:
            return model
        model = inner
