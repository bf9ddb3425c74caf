"""Weights on disk: whole-model safetensors files and safe loading of backbone files.

- [`save_weights()`][wrim.models.save_weights] / [`load_weights()`][wrim.models.load_weights]: a model's ``state_dict``
  (parameters and buffers) in one ``.safetensors`` file. Tensors that share storage (tied weights) are stored once and
  restored to every name.
- [`load_state_dict_file()`][wrim.models.load_state_dict_file]: reads ``.safetensors`` with safetensors and anything
  else with ``torch.load(weights_only=True)`` (no arbitrary pickles), unwrapping ``{"state_dict": ...}`` / ``{"model":
  ...}`` checkpoints and a DDP ``module.`` prefix.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_model
from torch import nn

__all__ = ["load_state_dict_file", "load_weights", "save_weights"]


def save_weights(model: nn.Module, path: str | Path, metadata: dict[str, str] | None = None) -> None:
    """Save ``model.state_dict()`` to a ``.safetensors`` file (shared tensors stored once, any memory format).

    Args:
        model: the model.
        path: the file to write.
        metadata: optional string metadata stored in the file header.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_model(model, str(path), metadata=metadata, force_contiguous=True)  # channels_last weights included


def load_weights(model: nn.Module, path: str | Path, strict: bool = True) -> tuple[list[str], list[str]]:
    """Load a file written by [`save_weights()`][wrim.models.save_weights] into ``model``.

    Args:
        model: the model, built with the same architecture arguments as the saved one.
        path: the ``.safetensors`` file.
        strict: raise when keys are missing or unexpected (nothing is loaded then); with False the matching
            keys are loaded and the others reported.

    Returns:
        (missing keys, unexpected keys).

    Raises:
        ValueError: missing/unexpected keys (with ``strict``), shape mismatches, or a tensor whose kind differs from
            the model's (integer or boolean values for a floating-point tensor, or the reverse; float16 / bfloat16
            for float32 is converted), each listed.
    """
    state = _read_safetensors(Path(path))
    expected = model.state_dict()
    aliases = _aliases(expected)
    missing = sorted(key for key in expected if key not in state and not (aliases.get(key, set()) & state.keys()))
    unexpected = sorted(key for key in state if key not in expected)
    mismatched = [
        f"{key}: file {tuple(state[key].shape)} vs model {tuple(expected[key].shape)}"
        for key in state
        if key in expected and state[key].shape != expected[key].shape
    ]
    if mismatched:
        raise ValueError(
            f"{path}: {len(mismatched)} tensor shapes differ from the model (was it built with other arguments, "
            f"e.g. num_classes or backbone?): {'; '.join(mismatched[:20])}"
        )
    kinds = [
        f"{key}: file {state[key].dtype} vs model {expected[key].dtype}"
        for key in state
        if key in expected and _kind(state[key].dtype) != _kind(expected[key].dtype)
    ]
    if kinds:
        raise ValueError(f"{path}: {len(kinds)} tensor dtypes differ in kind from the model: {'; '.join(kinds[:20])}")
    if strict and (missing or unexpected):
        raise ValueError(
            f"{path} does not match the model: missing keys ({len(missing)}): {missing[:30]}; unexpected keys "
            f"({len(unexpected)}): {unexpected[:30]}. Build the model with the arguments it was saved with, "
            "or pass strict=False to load the matching keys"
        )
    model.load_state_dict({key: value for key, value in state.items() if key in expected}, strict=False)
    return missing, unexpected


def load_state_dict_file(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict safely from ``.safetensors`` or a torch file (``torch.load(weights_only=True)``).

    Args:
        path: the weights file.

    Returns:
        name -> tensor, on CPU.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    if path.suffix == ".safetensors":
        state = _read_safetensors(path)
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            raise ValueError(
                f"{path} cannot be loaded with torch.load(weights_only=True) ({' '.join(str(err).split())}); re-save "
                "it as a plain state dict, ideally with safetensors.torch.save_file"
            ) from err
    for wrapper in ("state_dict", "model", "state_dict_ema"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
            break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path} does not hold a state dict (a mapping of names to tensors)")
    return {key.removeprefix("module."): value for key, value in state.items()}


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """``safetensors.torch.load_file`` with errors that name the file and say what is wrong with it."""
    if path.is_dir():
        raise ValueError(f"{path} is a folder; give a .safetensors file (for a run folder: wrim eval --checkpoint)")
    if not path.is_file():
        raise ValueError(f"weights file not found: {path}")
    try:
        return load_file(str(path))
    except Exception as err:  # SafetensorError (a damaged or truncated file, or another format)
        raise ValueError(
            f"{path} is not a readable .safetensors file ({err}): it is damaged, truncated or in another format"
        ) from None


def _kind(dtype: torch.dtype) -> str:
    """``"float"``, ``"complex"``, ``"bool"`` or ``"int"``: a tensor loads into one of its kind (float16 into
    float32), not into another kind (3.7 into an integer buffer)."""
    if dtype.is_floating_point:
        return "float"
    return "complex" if dtype.is_complex else "bool" if dtype == torch.bool else "int"


def _aliases(state: dict[str, torch.Tensor]) -> dict[str, set[str]]:
    """For each key whose tensor shares storage with other keys, the set of those other keys."""
    by_storage: dict[tuple[int, int, tuple[int, ...]], set[str]] = {}
    for key, tensor in state.items():
        if tensor.device.type == "meta" or tensor.numel() == 0:
            continue
        ident = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape))
        by_storage.setdefault(ident, set()).add(key)
    return {key: names - {key} for names in by_storage.values() if len(names) > 1 for key in names}
