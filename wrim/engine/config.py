"""Typed training configuration: YAML files shipped in ``wrim/configs/``, dotted overrides and config differences.

The schema (the dataclasses and their rules) is ``wrim.engine.schema``; this module reads and writes it. A run is
described by one [`Config`][wrim.engine.Config] made of five sections (``model``, ``data``, ``loss``, ``optim``,
``eval``) plus a few top-level fields. The shipped YAML files (``synthetic``, ``sysu``, ``regdb``, ``llcm``)
fill it in; command-line overrides such as ``model.name=wrimnet_resnet18 optim.lr=0.01`` change single fields. An
unknown key is a ``ValueError`` that lists the valid keys of its section, and every value is converted to its
field's declared type (``"1e-3"`` becomes a float for a float field), so typos fail before training starts.

Examples:
    >>> cfg = load_config("synthetic", ["epochs=1", "data.img_size=[64,32]"])
    >>> cfg.data.img_size
    (64, 32)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from wrim.engine.schema import Config, DataConfig, EvalConfig, LossConfig, ModelConfig, OptimConfig, option

__all__ = [
    "DATASET_SETTINGS",
    "Config",
    "DataConfig",
    "EvalConfig",
    "LossConfig",
    "ModelConfig",
    "OptimConfig",
    "apply_overrides",
    "config_diff",
    "config_from_dict",
    "config_sha256",
    "config_to_dict",
    "list_configs",
    "load_config",
    "option",
    "read_yaml",
    "save_config",
    "structural_changes",
]

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
MAX_DEPTH = 32  # nesting of YAML collections; a config is 3 deep, a deeper file is refused before it is built [D]


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Converts ``value`` (from YAML or the command line) to the annotated type ``tp``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        is_none = value is None or (isinstance(value, str) and value.lower() in ("none", "null", "~"))
        if is_none and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except (TypeError, ValueError) as err:
                errors.append(str(err))
        raise ValueError(f"{key}: cannot use {value!r}: " + "; ".join(errors))
    if tp is Any:
        return value
    if isinstance(value, str) and (tp in (int, float, bool) or origin in (tuple, list, dict)):
        value = _yaml_value(value, key)
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ValueError(f"{key} must be true or false, got {value!r}")
    if tp is int:
        whole = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if not whole or int(value) != value or abs(value) >= 2**63:
            raise ValueError(f"{key} must be an integer (of size below 2**63), got {value!r}")
        return int(value)
    if tp is float:
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError as err:
                raise ValueError(f"{key} must be a number, got {value!r}") from err
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{key} must be a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ValueError(f"{key} must be a string, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{key} must be a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], key) for v in value)
        if len(value) != len(args):
            raise ValueError(f"{key} must be a list of {len(args)} values, got {value!r}")
        return tuple(_coerce(v, a, key) for v, a in zip(value, args))
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{key} must be a list, got {value!r}")
        return [_coerce(v, args[0], key) for v in value]
    if origin is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{key} must be a mapping, got {value!r}")
        return dict(value)
    raise TypeError(f"{key}: unsupported config type {tp!r}")


def _build(cls: type, data: dict[str, Any], prefix: str) -> Any:
    if not isinstance(data, dict):
        raise ValueError(f"{prefix or 'config'} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in data if k not in names]
    if unknown:
        where = f"section {prefix!r}" if prefix else "the top level"
        raise ValueError(f"unknown config key(s) {[prefix + str(k) for k in unknown]} in {where}; valid keys: {names}")
    kwargs = {}
    for name, value in data.items():
        tp = hints[name]
        if _is_dataclass_type(tp):
            kwargs[name] = _build(tp, value or {}, f"{prefix}{name}.")
        else:
            kwargs[name] = _coerce(value, tp, prefix + name)
    return cls(**kwargs)


def config_from_dict(data: dict[str, Any]) -> Config:
    """Builds a [`Config`][wrim.engine.Config] from a nested mapping (missing keys keep their defaults).

    Raises:
        ValueError: an unknown key (the message lists the valid ones) or a value of the wrong type.
    """
    return _build(Config, data, "")


def config_to_dict(config: Config) -> dict[str, Any]:
    """Returns ``config`` as plain nested dicts / lists (tuples become lists), ready for YAML or JSON."""

    def plain(v: Any) -> Any:
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(dataclasses.asdict(config))


#: Keys whose values belong to the dataset a config was written for ([D]): when ``data.dataset`` changes (an
#: override, or a file that changes its ``base``'s), they start again from ``{}``, so that the new dataset's reader
#: uses its own defaults (its constructor's and ``test_split``'s) except where the same overrides (or the file) set
#: them.
DATASET_SETTINGS = ("data.dataset_kwargs", "eval.protocol")


def _reset_dataset_settings(data: dict[str, Any], own: dict[str, Any] | None = None) -> None:
    """Sets `DATASET_SETTINGS` in the nested mapping ``data`` to the values of ``own`` (a config file's own
    sections), ``{}`` where it has none."""
    for key in DATASET_SETTINGS:
        section, name = key.split(".")
        value = (own or {}).get(section, {}).get(name, {})
        data.setdefault(section, {})[name] = dict(value) if isinstance(value, dict) else value


def apply_overrides(config: Config, overrides: list[str]) -> Config:
    """Returns a copy of ``config`` with ``key=value`` overrides applied.

    An override that changes ``data.dataset`` also resets ``data.dataset_kwargs`` and ``eval.protocol`` to ``{}``
    (the new dataset's own defaults) unless the overrides set them too (`DATASET_SETTINGS`): switching datasets is
    one override.

    Args:
        config: the base configuration.
        overrides: strings like ``"optim.lr=0.01"``, ``"data.img_size=[128,64]"`` or ``"model.kwargs.last_stride=2"``
            (values are parsed as YAML, then converted to the field's type).

    Raises:
        ValueError: a malformed override or an unknown key (the message lists the valid keys).
    """
    data = config_to_dict(config)
    datasets = [raw for key, _, raw in (item.partition("=") for item in overrides) if key.strip() == "data.dataset"]
    if datasets and _yaml_value(datasets[-1], "data.dataset") != config.data.dataset:
        _reset_dataset_settings(data)  # the overrides below may set them for the new dataset
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} must look like key=value, e.g. optim.lr=0.01")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        node: dict[str, Any] = data
        cls: Any = Config
        for i, part in enumerate(parts[:-1]):
            if cls is not None:
                names = [f.name for f in dataclasses.fields(cls)]
                if part not in names:
                    raise ValueError(f"unknown config key {'.'.join(parts[: i + 1])!r}; valid keys: {names}")
                hint = typing.get_type_hints(cls)[part]
                cls = hint if _is_dataclass_type(hint) else None
            elif not isinstance(node.get(part, {}), dict):
                raise ValueError(f"cannot set {key!r}: {'.'.join(parts[: i + 1])!r} is not a mapping")
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"cannot set {key!r}: {'.'.join(parts[: i + 1])!r} is not a section")
        if cls is not None:
            names = [f.name for f in dataclasses.fields(cls)]
            if parts[-1] not in names:
                raise ValueError(f"unknown config key {key!r}; valid keys: {names}")
            node[parts[-1]] = raw
        else:
            node[parts[-1]] = _yaml_value(raw, key)
    return config_from_dict(data)


def list_configs() -> list[str]:
    """Names of the configs shipped in ``wrim/configs/`` (usable as ``wrim train --config NAME``)."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def load_config(name_or_path: str | Path = "synthetic", overrides: list[str] | None = None) -> Config:
    """Loads a shipped config by name or a YAML file by path, then applies ``overrides``.

    A file may start from another config with a top-level ``base: NAME`` (a shipped name or a YAML path) and list
    only what it changes; nested sections are merged key by key (the ablation configs are written this way).

    Args:
        name_or_path: ``"synthetic"``, ``"sysu"``, ``"regdb"``, ``"llcm"`` or the path of a YAML file.
        overrides: ``key=value`` strings, see [`apply_overrides()`][wrim.engine.apply_overrides].

    Raises:
        ValueError: an unknown config name or missing file (lists the shipped names), or a bad key or value.
    """
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        shipped = CONFIG_DIR / f"{name_or_path}.yaml"
        if not shipped.is_file():
            raise ValueError(
                f"unknown config {str(name_or_path)!r}; shipped configs: {list_configs()}, or a .yaml path"
            )
        path = shipped
    elif not path.is_file():
        raise ValueError(f"config file {str(path)!r} does not exist; shipped configs: {list_configs()}")
    data = _read_yaml(path)
    data.setdefault("name", path.stem)
    try:
        config = config_from_dict(data)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: {err}") from None
    return apply_overrides(config, overrides or [])


def _read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A config file's mapping; a top-level ``base: NAME`` is the shipped config (or YAML path) it changes."""
    data = read_yaml(path) or {}
    if not isinstance(data, dict):
        raise ValueError(f"config file {str(path)!r} must hold a mapping at the top level")
    base = data.pop("base", None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise ValueError(f"{str(path)!r}: base must be a config name or a YAML path, got {base!r}")
    base_path = Path(base) if Path(base).suffix in (".yaml", ".yml") else CONFIG_DIR / f"{base}.yaml"
    if not base_path.is_absolute() and not base_path.is_file():
        base_path = path.parent / base_path
    if not base_path.is_file():
        raise ValueError(f"{str(path)!r}: base config {base!r} not found; shipped configs: {list_configs()}")
    if base_path.resolve() in seen:
        raise ValueError(f"{str(path)!r}: base configs form a cycle through {str(base_path)!r}")
    inherited = _read_yaml(base_path, (*seen, path.resolve()))
    inherited.pop("name", None)  # a run is named after the file that was asked for
    merged = _merge(inherited, data)
    base_dataset = inherited.get("data", {}).get("dataset", DataConfig.dataset)
    if merged.get("data", {}).get("dataset", base_dataset) != base_dataset:
        _reset_dataset_settings(merged, data)  # the file's own values for its dataset, not merged with the base's
    return merged


def _merge(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``changes`` applied key by key (nested mappings merged, other values replaced)."""
    out = dict(base)
    for key, value in changes.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe YAML loader (no tags beyond plain data) that also rejects a key given twice in one mapping, a key that
    is not a string, an alias (``*name``: a few of them can expand to billions of values) and nesting deeper than
    `MAX_DEPTH`."""

    depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise yaml.composer.ComposerError(
                None, None, f"alias *{event.anchor} refused: write the value out in full", event.start_mark
            )
        if self.depth >= MAX_DEPTH:
            raise yaml.composer.ComposerError(None, None, f"nested deeper than {MAX_DEPTH} levels", event.start_mark)
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Mark] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, str):
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} is not a name (quote it)", key_node.start_mark
                )
            if key in seen:
                mark = key_node.start_mark
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first at line {seen[key].line + 1})", mark
                )
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def read_yaml(path: str | Path) -> Any:
    """Reads a YAML file safely (`_UniqueKeyLoader`); a syntax error, a duplicate key, an alias, a tag or text that
    is not UTF-8 is a one-line ``ValueError`` naming ``file:line:column`` (the file alone where YAML has no mark)."""
    try:
        return yaml.load(Path(path).read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)  # noqa: S506 (SafeLoader)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else str(path)
        problem = " ".join(str(x) for x in (err.context, err.problem) if x)
        raise ValueError(f"{where}: YAML error: {' '.join(problem.split())}") from None
    except (yaml.YAMLError, ValueError) as err:  # ValueError: not UTF-8, an integer of over 4300 digits
        raise ValueError(f"{path}: YAML error: {' '.join(str(err).split())}") from None


def _yaml_value(raw: str, key: str) -> Any:
    try:
        return yaml.load(raw, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)
    except (yaml.YAMLError, ValueError) as err:
        raise ValueError(f"{key}: cannot parse {raw!r} as a YAML value ({' '.join(str(err).split())})") from None


def config_sha256(config: Config) -> str:
    """The SHA-256 of the config's canonical JSON (recorded in checkpoint manifests)."""
    return hashlib.sha256(json.dumps(config_to_dict(config), sort_keys=True).encode()).hexdigest()


RESUME_OVERRIDABLE = ("epochs", "device", "log_every", "progress", "keep_checkpoints", "output_dir", "run_name",
                      "data.num_workers", "data.skip_bad_images", "data.strict_check", "eval.")  # fmt: skip
"""Keys (a trailing dot: a whole section) that ``--resume`` may change; every other key is the run's structure."""


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and prefix + key in ("model", "data", "loss", "optim", "eval"):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = value
    return flat


def config_diff(old: Config, new: Config) -> dict[str, tuple[Any, Any]]:
    """``key -> (old, new)`` for every field that differs (sections flattened to dotted keys)."""
    a, b = _flatten(config_to_dict(old)), _flatten(config_to_dict(new))
    return {k: (a.get(k), b.get(k)) for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)}


def structural_changes(old: Config, new: Config) -> dict[str, tuple[Any, Any]]:
    """The differences of `config_diff()` that ``--resume`` may not make (see `RESUME_OVERRIDABLE`)."""
    allowed = RESUME_OVERRIDABLE
    return {k: v for k, v in config_diff(old, new).items() if not any(k == a or (a.endswith(".") and k.startswith(a))
                                                                     for a in allowed)}  # fmt: skip


def save_config(config: Config, path: str | Path) -> None:
    """Writes ``config`` as YAML (the resolved config of a run: every field, defaults included)."""
    Path(path).write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False), encoding="utf-8")
