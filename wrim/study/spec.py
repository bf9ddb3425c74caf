"""A study file: a base config, variants (config overrides) x seeds, and the comparisons to report.

```yaml
name: synthetic_bench                  # names the study's records
config: synthetic_bench                # a shipped config name or a YAML path, as for wrim train --config
overrides: [progress=false]            # for every run
imports: [my_parts.py]                 # optional: plugins that register models / datasets (wrim train --import)
seeds: [0, 1, 2, 3, 4]                 # default seeds of every variant
variants:
  no_miim:
    label: no MIIM (baseline)
    overrides: [model.kwargs.separate_stages=[], model.kwargs.shared_stages=[]]
  wrim:
    label: WRIM-Net (MIIMs 1-4)
  miim_1:
    overrides: [model.kwargs.separate_stages=[1], model.kwargs.shared_stages=[]]
    seeds: [0, 1, 2]                   # a variant may run fewer (or other) seeds
comparisons:                           # the tables: each variant paired by seed with the reference
  - title: WRIM-Net vs baseline
    reference: no_miim
    variants: [wrim]
```

Every variant x seed is one run; variants that share their overrides share their runs only when they are one
variant (the key names the run). Checked when the file is read: unknown keys, a variant named twice, overrides the
config does not take (each applied once to the base config), comparisons naming unknown variants ([D] see
docs: Training, section Studies over seeds).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wrim.engine.config import load_config, read_yaml

__all__ = ["Comparison", "StudySpec", "Variant", "load_study"]

_KEY = re.compile(r"^[A-Za-z0-9_.-]+$")
_STUDY_KEYS = {"name", "config", "overrides", "imports", "seeds", "variants", "comparisons"}
_VARIANT_KEYS = {"label", "overrides", "seeds"}
_COMPARISON_KEYS = {"title", "reference", "variants"}


@dataclass(frozen=True)
class Variant:
    """One setting of the study: ``key`` names its runs (``<key>-seed<S>``), ``label`` its table row."""

    key: str
    label: str
    overrides: tuple[str, ...]
    seeds: tuple[int, ...]


@dataclass(frozen=True)
class Comparison:
    """A table: ``variants`` each paired by seed with ``reference``."""

    title: str
    reference: str
    variants: tuple[str, ...]


@dataclass(frozen=True)
class StudySpec:
    """A parsed study file (see the module docstring for the format)."""

    name: str
    config: str
    overrides: tuple[str, ...]
    variants: dict[str, Variant]
    comparisons: tuple[Comparison, ...]
    imports: tuple[str, ...] = ()
    path: Path | None = None

    def jobs(self) -> list[tuple[Variant, int]]:
        """Every (variant, seed) run, seeds interleaved (seed 0 of every variant, then seed 1, ...), so that a
        stopped study holds pairs."""
        seeds = sorted({seed for variant in self.variants.values() for seed in variant.seeds})
        return [(variant, seed) for seed in seeds for variant in self.variants.values() if seed in variant.seeds]

    def run_overrides(self, variant: Variant, seed: int) -> list[str]:
        """The overrides of one run (the study's, then the variant's, then its seed)."""
        return [*self.overrides, *variant.overrides, f"seed={seed}"]


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(item, str) and "=" in item for item in value):
        raise ValueError(f"{where} must be a list of key=value strings; got {value!r}")
    return tuple(value)


def _seeds(value: Any, where: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(s, int) and s >= 0 for s in value):
        raise ValueError(f"{where} must be a non-empty list of seeds (ints >= 0); got {value!r}")
    if len(set(value)) != len(value):
        raise ValueError(f"{where} lists a seed twice: {value}")
    return tuple(value)


def _unknown(found: dict, allowed: set[str], where: str) -> None:
    extra = sorted(set(found) - allowed)
    if extra:
        raise ValueError(f"{where}: unknown key(s) {extra}; allowed: {sorted(allowed)}")


def _variant(key: Any, body: Any, default_seeds: tuple[int, ...] | None, where: str) -> Variant:
    if not isinstance(key, str) or not _KEY.match(key):
        raise ValueError(f"{where}: variant names are letters, digits, '_', '.', '-'; got {key!r}")
    body = body or {}
    if not isinstance(body, dict):
        raise ValueError(f"{where}: variant {key!r} must be a mapping (label, overrides, seeds)")
    _unknown(body, _VARIANT_KEYS, f"{where}: variant {key!r}")
    seeds = _seeds(body["seeds"], f"{where}: variant {key!r} seeds") if "seeds" in body else default_seeds
    if seeds is None:
        raise ValueError(f"{where}: variant {key!r} has no seeds: give seeds at the top or in the variant")
    overrides = _strings(body.get("overrides"), f"{where}: variant {key!r} overrides")
    bad = [item for item in overrides if item.split("=", 1)[0].strip() in ("seed", "output_dir", "run_name")]
    if bad:
        raise ValueError(f"{where}: variant {key!r} sets {bad}; the study sets seed, output_dir and run_name itself")
    return Variant(key, str(body.get("label", key)), overrides, seeds)


def _comparison(body: Any, variants: dict[str, Variant], where: str) -> Comparison:
    if not isinstance(body, dict):
        raise ValueError(f"{where}: a comparison is a mapping (title, reference, variants)")
    _unknown(body, _COMPARISON_KEYS, f"{where}: comparison")
    names = [body.get("reference"), *(body.get("variants") or [])]
    unknown = [name for name in names if name not in variants]
    if unknown or not body.get("variants"):
        raise ValueError(
            f"{where}: comparison {body.get('title')!r} names unknown variant(s) {unknown} or none to compare; "
            f"variants: {sorted(variants)}"
        )
    return Comparison(str(body.get("title", names[1])), names[0], tuple(names[1:]))


def _relative_to(study: Path, name: str) -> str:
    """A ``.yaml`` / ``.py`` path relative to the study file's folder (a name or an absolute path as given)."""
    if not Path(name).is_absolute() and Path(name).suffix in (".yaml", ".yml", ".py"):
        return str((study.parent / name).resolve())
    return name


def load_study(path: str | Path) -> StudySpec:
    """Read and check a study file.

    Raises:
        ValueError: one line naming the file and the problem (unknown keys, bad seeds or overrides, unknown
            variants in a comparison, an override the base config does not take).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"study file {str(path)!r} does not exist")
    data = read_yaml(path)
    where = str(path)
    if not isinstance(data, dict):
        raise ValueError(f"{where}: a study file holds a mapping (name, config, seeds, variants, comparisons)")
    _unknown(data, _STUDY_KEYS, where)
    if not isinstance(data.get("variants"), dict) or not data["variants"]:
        raise ValueError(f"{where}: 'variants' must map variant names to their overrides")
    default_seeds = _seeds(data["seeds"], f"{where}: seeds") if "seeds" in data else None
    variants = {key: _variant(key, body, default_seeds, where) for key, body in data["variants"].items()}
    comparisons = tuple(_comparison(body, variants, where) for body in data.get("comparisons") or [])
    config = _relative_to(path, str(data.get("config", "synthetic")))
    imports = data.get("imports") or []
    if not isinstance(imports, list) or not all(isinstance(item, str) for item in imports):
        raise ValueError(f"{where}: imports must be a list of module names or .py paths; got {imports!r}")
    spec = StudySpec(
        name=str(data.get("name", path.stem)),
        config=config,
        overrides=_strings(data.get("overrides"), f"{where}: overrides"),
        variants=variants,
        comparisons=comparisons,
        imports=tuple(_relative_to(path, item) for item in imports),
        path=path,
    )
    if spec.imports:
        from wrim.engine.plugins import load_plugins

        load_plugins(list(spec.imports))  # the plugins' models and datasets, for the checks below
    for variant in variants.values():  # every override is checked against the config before any run starts
        try:
            load_config(config, spec.run_overrides(variant, variant.seeds[0]))
        except ValueError as err:
            raise ValueError(f"{where}: variant {variant.key!r}: {err}") from None
    return spec
