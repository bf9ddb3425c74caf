"""Weights on disk: whole-model safetensors files and safe loading of backbone files.

- [`save_weights()`][wrim.models.save_weights] / [`load_weights()`][wrim.models.load_weights]: a model's ``state_dict``
  (parameters and buffers) in one ``.safetensors`` file. Tensors that share storage (tied weights) are stored once and
  restored to every name.
- [`load_state_dict_file()`][wrim.models.load_state_dict_file]: reads ``.safetensors`` with safetensors and anything
  else with ``torch.load(weights_only=True)`` (no arbitrary pickles), unwrapping ``{"state_dict": ...}`` / ``{"model":
  ...}`` checkpoints and a DDP ``module.`` prefix.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_model
from torch import nn

__all__ = [
    "WEIGHTS_FILE",
    "StateDifferences",
    "WeightsFile",
    "load_state_dict_file",
    "load_weights",
    "open_weights",
    "save_weights",
    "state_differences",
]

#: the file name of a model's weights in a checkpoint set and in a ``save_pretrained`` folder
WEIGHTS_FILE = "model.safetensors"


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
    with open_weights(path) as file:
        return load_from(model, file, strict=strict)


class WeightsFile:
    """An open ``.safetensors`` file: its header (``shapes``, read once on opening) and its tensors on demand."""

    def __init__(self, path: Path, handle) -> None:
        self.path = path
        self._handle = handle
        self.shapes: dict[str, tuple[int, ...]] = {
            key: tuple(handle.get_slice(key).get_shape())
            for key in handle.keys()  # noqa: SIM118 - a safetensors handle, not a dict
        }

    def tensors(self) -> dict[str, torch.Tensor]:
        """Every tensor of the file, on CPU."""
        try:
            return {key: self._handle.get_tensor(key) for key in self.shapes}
        except Exception as err:  # SafetensorError: data shorter than the header says
            raise ValueError(f"{self.path} is not a readable .safetensors file ({err})") from None


@contextmanager
def open_weights(path: str | Path) -> Iterator[WeightsFile]:
    """Open a ``.safetensors`` file and read its header once, with errors that name the file and what is wrong."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder; give a .safetensors file (for a run folder: wrim eval --checkpoint)")
    if not path.is_file():
        raise ValueError(f"weights file not found: {path}")
    unreadable = f"{path} is not a readable .safetensors file ({{}}): it is damaged, truncated or in another format"
    try:
        handle = safe_open(str(path), framework="pt")
    except Exception as err:  # SafetensorError (a damaged or truncated file, or another format)
        raise ValueError(unreadable.format(err)) from None
    with handle:
        try:
            file = WeightsFile(path, handle)
        except Exception as err:  # noqa: BLE001 - a header safetensors opened but cannot describe
            raise ValueError(unreadable.format(err)) from None
        yield file


@dataclass(frozen=True)
class StateDifferences:
    """How a model's state dict differs from a weights file's header, in the model's order then the file's.

    A key is not missing when a tensor tied to it (one tensor under several names: safetensors stores it once) is
    in the file.
    """

    missing: list[str]  # in the model, not in the file
    unexpected: list[str]  # in the file, not in the model
    shapes: list[tuple[str, tuple[int, ...], tuple[int, ...]]]  # (key, file shape, model shape)

    def __bool__(self) -> bool:
        return bool(self.missing or self.unexpected or self.shapes)


def state_differences(model: nn.Module, shapes: Mapping[str, tuple[int, ...]]) -> StateDifferences:
    """The one comparison of ``model``'s state dict (names, shapes; meta tensors too) with a file's ``shapes``."""
    state = model.state_dict(keep_vars=True)
    tied = _tied(state)
    missing = [key for key in state if key not in shapes and not tied.get(key, set()) & shapes.keys()]
    unexpected = [key for key in shapes if key not in state]
    mismatched = [
        (key, tuple(shapes[key]), tuple(tensor.shape))
        for key, tensor in state.items()
        if key in shapes and tuple(shapes[key]) != tuple(tensor.shape)
    ]
    return StateDifferences(missing, unexpected, mismatched)


def load_from(model: nn.Module, file: WeightsFile, strict: bool = True) -> tuple[list[str], list[str]]:
    """`load_weights` from an open file (its header already read): check the names, shapes and kinds, then load."""
    differences = state_differences(model, file.shapes)
    if differences.shapes:
        listed = [f"{key}: file {found} vs model {shape}" for key, found, shape in differences.shapes]
        raise ValueError(
            f"{file.path}: {len(listed)} tensor shapes differ from the model (was it built with other arguments, "
            f"e.g. num_classes or backbone?): {'; '.join(listed[:20])}"
        )
    missing, unexpected = sorted(differences.missing), sorted(differences.unexpected)
    if strict and (missing or unexpected):
        raise ValueError(
            f"{file.path} does not match the model: missing keys ({len(missing)}): {missing[:30]}; unexpected keys "
            f"({len(unexpected)}): {unexpected[:30]}. Build the model with the arguments it was saved with, "
            "or pass strict=False to load the matching keys"
        )
    state, expected = file.tensors(), model.state_dict()
    kinds = [
        f"{key}: file {state[key].dtype} vs model {expected[key].dtype}"
        for key in state
        if key in expected and _kind(state[key].dtype) != _kind(expected[key].dtype)
    ]
    if kinds:
        raise ValueError(
            f"{file.path}: {len(kinds)} tensor dtypes differ in kind from the model: {'; '.join(kinds[:20])}"
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
    """Every tensor of a ``.safetensors`` file, with errors that name the file and say what is wrong with it."""
    with open_weights(path) as file:
        return file.tensors()


def _kind(dtype: torch.dtype) -> str:
    """``"float"``, ``"complex"``, ``"bool"`` or ``"int"``: a tensor loads into one of its kind (float16 into
    float32), not into another kind (3.7 into an integer buffer)."""
    if dtype.is_floating_point:
        return "float"
    return "complex" if dtype.is_complex else "bool" if dtype == torch.bool else "int"


def _tied(state: Mapping[str, torch.Tensor]) -> dict[str, set[str]]:
    """For each key whose tensor is tied to other keys (one object, or one storage), the set of those other keys."""
    groups: dict[object, set[str]] = {}
    for key, tensor in state.items():
        if tensor.device.type == "meta" or tensor.numel() == 0:
            ident: object = id(tensor)  # no storage to compare: the same object is the same tensor
        else:
            ident = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape))
        groups.setdefault(ident, set()).add(key)
    return {key: names - {key} for names in groups.values() if len(names) > 1 for key in names}
