"""wrim's public API as data: the names in each public module's ``__all__`` with their signatures, compared with the
committed snapshot ``tests/api_snapshot.json`` (tests/test_public_api.py).

Usage, from the repository root:

    python tests/_api_snapshot.py            # compare the tree with the snapshot; exit 1 on any difference
    python tests/_api_snapshot.py --write    # rewrite the snapshot from the tree (after a deliberate change)

What is recorded: for every name in ``__all__`` of the modules in ``PUBLIC_MODULES``, its kind; for a function its
signature; for a class its constructor's signature, the signatures of its public methods (those defined in wrim's
classes, inherited ones included) and its public properties; for a constant its type (and value, when it is a plain
int, float, bool, str or tuple of them); deprecations (``wrim._deprecation``) as they are. Signatures are written
without annotations (``inspect.Signature`` with the annotations removed; object addresses in default values cut).

What breaks (``compare``'s first list): a name, method or module removed without having been deprecated with a
``remove_in`` that the current version has reached; a kind changed; a parameter removed or renamed (unless through
``renamed_argument``), moved among the positional ones, made keyword-only or positional-only, or stripped of its
default; a new parameter without a default; ``*args`` / ``**kwargs`` removed. Anything else that differs (a name
or parameter added, a default value changed, a name newly deprecated) is the second list: compatible, but the
snapshot must be rewritten so that it stays the reference.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import re
import sys
import types
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SNAPSHOT = ROOT / "tests" / "api_snapshot.json"
WRITE_COMMAND = "python tests/_api_snapshot.py --write"

#: the modules whose ``__all__`` is the public API (docs: Citing, section Versioning and deprecation)
PUBLIC_MODULES = (
    "wrim",
    "wrim.data",
    "wrim.distributed",
    "wrim.engine",
    "wrim.engine.evaluate",
    "wrim.evaluation",
    "wrim.layers",
    "wrim.losses",
    "wrim.losses.pml",
    "wrim.miners",
    "wrim.models",
    "wrim.pairs",
    "wrim.visualize",
)
#: public but experimental: documented as such and not covered by the snapshot
EXPERIMENTAL_MODULES = ("wrim.study",)
#: homes of names that public modules re-export (their own ``__all__`` is not a promise); wrim.cli: its promise is
#: the ``wrim`` command line, documented on the docs' pages, not its Python names
INTERNAL_MODULES = ("wrim.cli", "wrim.flip", "wrim.modality", "wrim.version")

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
_SIMPLE = (bool, int, float, str)


def signature_text(func: Any, *, drop_first: bool = False) -> str:
    """``inspect.signature`` without annotations (``drop_first``: an unbound method's ``self``)."""
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return "(?)"  # a builtin without signature metadata
    parameters = [p.replace(annotation=inspect.Parameter.empty) for p in signature.parameters.values()]
    if drop_first:
        parameters = parameters[1:]
    plain = signature.replace(parameters=parameters, return_annotation=inspect.Signature.empty)
    return _ADDRESS.sub("", str(plain))


def _is_wrim(module_name: str) -> bool:
    return module_name == "wrim" or module_name.startswith("wrim.")


def _renamed(func: Any) -> dict[str, dict[str, str]]:
    return {old: info.as_dict() for old, info in getattr(func, "__wrim_renamed_arguments__", {}).items()}


def _constructor_text(cls: type) -> str:
    """The constructor's signature where a wrim class defines it, else the base class it comes from (a signature
    that belongs to torch or Python and changes with their versions)."""
    owner = next(k for k in cls.__mro__ if "__init__" in vars(k) or "__new__" in vars(k))
    if _is_wrim(owner.__module__):
        return signature_text(cls)
    base = next(k for k in cls.__mro__ if not _is_wrim(k.__module__))
    return f"inherited from {base.__module__}.{base.__qualname__}"


def _class_entry(cls: type) -> dict[str, Any]:
    methods: dict[str, str] = {}
    properties: list[str] = []
    deprecated_methods: dict[str, dict[str, str]] = {}
    renamed = {"__init__": _renamed(cls.__init__)} if _renamed(cls.__init__) else {}
    seen: set[str] = set()
    for klass in cls.__mro__:
        if not _is_wrim(klass.__module__):
            continue
        for name, attribute in vars(klass).items():
            if name.startswith("_") or name in seen:
                continue
            seen.add(name)
            if isinstance(attribute, (property, functools.cached_property)):
                properties.append(name)
            elif isinstance(attribute, (staticmethod, classmethod)):
                methods[name] = signature_text(getattr(cls, name))
            elif inspect.isfunction(attribute):
                methods[name] = signature_text(attribute, drop_first=True)
            else:
                continue
            if hasattr(attribute, "__wrim_deprecation__"):
                deprecated_methods[name] = attribute.__wrim_deprecation__.as_dict()
            if _renamed(attribute):
                renamed[name] = _renamed(attribute)
    entry: dict[str, Any] = {"kind": "class", "signature": _constructor_text(cls)}
    entry.update({"methods": dict(sorted(methods.items())), "properties": sorted(properties)})
    if "__wrim_deprecation__" in vars(cls):
        entry["deprecated"] = cls.__wrim_deprecation__.as_dict()
    if deprecated_methods:
        entry["deprecated_methods"] = deprecated_methods
    if renamed:
        entry["renamed_arguments"] = renamed
    return entry


def name_entry(name: str, obj: Any) -> dict[str, Any]:
    """The snapshot's record of one public name."""
    if isinstance(obj, types.ModuleType):
        return {"kind": "module"}
    if isinstance(obj, type) and not isinstance(obj, types.GenericAlias):  # Python 3.10: tuple[int] is a type
        return _class_entry(obj)
    if inspect.isroutine(obj):
        entry: dict[str, Any] = {"kind": "function", "signature": signature_text(obj)}
        if hasattr(obj, "__wrim_deprecation__"):
            entry["deprecated"] = obj.__wrim_deprecation__.as_dict()
        if _renamed(obj):
            entry["renamed_arguments"] = {"__call__": _renamed(obj)}
        return entry
    entry = {"kind": "constant", "type": type(obj).__name__}
    simple = isinstance(obj, _SIMPLE) or (isinstance(obj, tuple) and all(isinstance(v, _SIMPLE) for v in obj))
    if name != "__version__" and (simple or isinstance(obj, types.GenericAlias)):
        entry["value"] = repr(obj)
    return entry


def module_entry(module: types.ModuleType) -> dict[str, Any]:
    """``{"names": {name: entry}, "deprecated_names": {old: deprecation}}`` of one public module."""
    names = {name: name_entry(name, getattr(module, name)) for name in sorted(module.__all__)}
    moved = getattr(vars(module).get("__getattr__"), "deprecations", {})
    return {"names": names, "deprecated_names": {old: info.as_dict() for old, info in sorted(moved.items())}}


def collect(modules: Iterable[str] = PUBLIC_MODULES) -> dict[str, Any]:
    """The snapshot of the importable ``wrim``: its version and every public module's entry."""
    import wrim

    return {
        "wrim_version": wrim.__version__,
        "modules": {name: module_entry(importlib.import_module(name)) for name in modules},
    }


@dataclass(frozen=True)
class Param:
    """One parameter read back from a signature text: kind ``po`` / ``pk`` / ``kw`` / ``var`` / ``varkw``."""

    name: str
    kind: str
    default: str | None


def _split_top_level(text: str) -> list[str]:
    """Split at the commas outside brackets and quotes."""
    parts, depth, quote, current = [], 0, "", ""
    for char in text:
        if quote:
            quote = "" if char == quote and not current.endswith("\\") else quote
        elif char in "'\"":
            quote = char
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
            continue
        current += char
    return [p for p in [*parts, current.strip()] if p]


def parse_signature(text: str) -> list[Param]:
    """The parameters of a ``signature_text`` (``"(a, /, b=1, *args, c, **kw)"``)."""
    tokens = _split_top_level(text.strip()[1:-1])
    kind = "po" if "/" in tokens else "pk"
    params = []
    for token in tokens:
        if token == "/":
            kind = "pk"
        elif token == "*":
            kind = "kw"
        elif token.startswith("**"):
            params.append(Param(token[2:], "varkw", None))
        elif token.startswith("*"):
            params.append(Param(token[1:], "var", None))
            kind = "kw"
        else:
            name, equals, default = token.partition("=")
            params.append(Param(name, kind, default if equals else None))
    return params


def _renamed_map(entry: dict[str, Any], member: str) -> dict[str, str]:
    """``{old argument: new argument}`` kept working by ``renamed_argument`` on ``member`` of ``entry``."""
    return {
        old: info["replacement"].rstrip("=") for old, info in entry.get("renamed_arguments", {}).get(member, {}).items()
    }


def signature_breaks(old_text: str, new_text: str, renamed: dict[str, str]) -> list[str]:
    """Why a call that worked with ``old_text`` can fail with ``new_text`` (empty: compatible)."""
    old, new = parse_signature(old_text), parse_signature(new_text)
    by_name = {p.name: p for p in new if p.kind in ("po", "pk", "kw")}
    breaks = []
    old_positional = [p for p in old if p.kind in ("po", "pk")]
    new_positional = [p for p in new if p.kind in ("po", "pk")]
    for index, param in enumerate(old_positional):
        moved = index >= len(new_positional) or (
            param.kind == "pk" and new_positional[index].name not in (param.name, renamed.get(param.name))
        )
        if moved:
            breaks.append(f"positional parameter {index} ({param.name}) is gone or moved")
        elif param.default is not None and new_positional[index].default is None:
            breaks.append(f"{param.name} lost its default")
    for param in old:
        if param.kind in ("pk", "kw"):
            current = by_name.get(param.name) or by_name.get(renamed.get(param.name, ""))
            if current is None:
                breaks.append(f"parameter {param.name} is gone")
            elif param.default is not None and current.default is None:
                breaks.append(f"{param.name} lost its default")
            elif param.kind == "pk" and current.kind == "po":
                breaks.append(f"{param.name} became positional-only")
    known = {p.name for p in old} | {renamed[n] for n in renamed if n in {p.name for p in old}}
    for param in new:
        if param.name not in known and param.kind in ("po", "pk", "kw") and param.default is None:
            breaks.append(f"new parameter {param.name} has no default")
    for kind, star in (("var", "*"), ("varkw", "**")):
        if any(p.kind == kind for p in old) and not any(p.kind == kind for p in new):
            breaks.append(f"{star}{next(p.name for p in old if p.kind == kind)} is gone")
    return sorted(set(breaks))


def _gone_allowed(deprecation: dict[str, str] | None, version: str) -> bool:
    """A name deprecated in the snapshot may go once the version reaches its ``remove_in``."""
    from wrim._deprecation import parse_version

    return deprecation is not None and parse_version(version) >= parse_version(deprecation["remove_in"])


def _compare_members(where: str, old: dict[str, Any], new: dict[str, Any], version: str) -> list[str]:
    """Breaking changes among a class's methods (old vs new class entries)."""
    breaks = []
    for method, old_text in old.get("methods", {}).items():
        new_text = new.get("methods", {}).get(method)
        if new_text is None:
            if not _gone_allowed(old.get("deprecated_methods", {}).get(method), version):
                breaks.append(f"{where}.{method}: method removed without a deprecation")
        else:
            reasons = signature_breaks(old_text, new_text, _renamed_map(new, method))
            breaks += [f"{where}.{method}{new_text}: {reason}" for reason in reasons]
    for prop in set(old.get("properties", [])) - set(new.get("properties", [])):
        breaks.append(f"{where}.{prop}: property removed")
    return breaks


def _compare_entry(where: str, old: dict[str, Any], new: dict[str, Any], version: str) -> list[str]:
    """Breaking changes of one public name present in both snapshots."""
    if old["kind"] != new["kind"]:
        return [f"{where}: was a {old['kind']}, is a {new['kind']}"]
    breaks = []
    if old.get("signature", "").startswith("(") and new["signature"].startswith("("):
        member = "__init__" if old["kind"] == "class" else "__call__"
        reasons = signature_breaks(old["signature"], new["signature"], _renamed_map(new, member))
        breaks += [f"{where}{new['signature']}: {reason}" for reason in reasons]
    if old["kind"] == "class":
        breaks += _compare_members(where, old, new, version)
    return breaks


def _compare_module(module: str, old: dict[str, Any], new: dict[str, Any], version: str) -> list[str]:
    breaks = []
    for name, entry in old["names"].items():
        where = f"{module}.{name}"
        if name in new["names"]:
            breaks += _compare_entry(where, entry, new["names"][name], version)
        elif name not in new["deprecated_names"] and not _gone_allowed(entry.get("deprecated"), version):
            breaks.append(f"{where}: removed without a deprecation")
    for name, deprecation in old["deprecated_names"].items():
        gone = name not in new["deprecated_names"] and name not in new["names"]
        if gone and not _gone_allowed(deprecation, version):
            breaks.append(f"{module}.{name}: deprecated name removed before {deprecation['remove_in']}")
    return breaks


def compare(old: dict[str, Any], new: dict[str, Any]) -> tuple[list[str], list[str]]:
    """``(breaking changes, other differences)`` from the snapshot ``old`` to the tree's ``new``."""
    version = new["wrim_version"]
    breaking = []
    for module, entry in old["modules"].items():
        if module not in new["modules"]:
            breaking.append(f"{module}: public module removed")
        else:
            breaking += _compare_module(module, entry, new["modules"][module], version)
    other = []
    for module in sorted(set(old["modules"]) | set(new["modules"])):
        before, after = old["modules"].get(module, {}), new["modules"].get(module, {})
        for section in ("names", "deprecated_names"):
            for name in sorted(set(before.get(section, {})) | set(after.get(section, {}))):
                was, now = before.get(section, {}).get(name), after.get(section, {}).get(name)
                if was != now:
                    other.append(f"{module}.{name} ({section}): {_short(was)} -> {_short(now)}")
    return sorted(breaking), other


def _short(entry: dict[str, Any] | None) -> str:
    if entry is None:
        return "absent"
    return entry.get("signature") or entry.get("kind") or json.dumps(entry)[:80]


def dumps(snapshot: dict[str, Any]) -> str:
    return json.dumps(snapshot, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> int:
    sys.path.insert(0, str(ROOT))  # the wrim of this tree, not an installed one
    import wrim

    current = collect()
    print(f"wrim {wrim.__version__} from {Path(wrim.__file__).parent}")
    if "--write" in argv:
        if SNAPSHOT.is_file():
            breaking, _ = compare(json.loads(SNAPSHOT.read_text(encoding="utf-8")), current)
            for line in breaking:
                print(f"  accepted breaking change: {line}")
        SNAPSHOT.write_text(dumps(current), encoding="utf-8")
        count = sum(len(m["names"]) for m in current["modules"].values())
        print(f"wrote {SNAPSHOT.relative_to(ROOT)}: {count} names in {len(current['modules'])} modules")
        return 0
    breaking, other = compare(json.loads(SNAPSHOT.read_text(encoding="utf-8")), current)
    for title, lines in (("breaking", breaking), ("other differences", other)):
        print(f"{title}: {len(lines)}")
        for line in lines:
            print(f"  {line}")
    return 1 if breaking or other else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
