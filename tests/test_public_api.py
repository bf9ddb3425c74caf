"""The public API (``__all__`` of the modules in tests/_api_snapshot.py's PUBLIC_MODULES) against the committed
snapshot tests/api_snapshot.json: a name removed or a signature changed incompatibly fails unless it went through
a deprecation (wrim._deprecation); any other difference fails until the snapshot is rewritten."""

from __future__ import annotations

import json
import pkgutil
import types
from typing import Any

import pytest

import wrim
from tests._api_snapshot import (
    EXPERIMENTAL_MODULES,
    INTERNAL_MODULES,
    PUBLIC_MODULES,
    ROOT,
    SNAPSHOT,
    WRITE_COMMAND,
    collect,
    compare,
    dumps,
    module_entry,
    parse_signature,
    signature_breaks,
)
from wrim._deprecation import Moved, deprecated, deprecated_names, renamed_argument


def test_the_public_api_matches_the_snapshot() -> None:
    breaking, other = compare(json.loads(SNAPSHOT.read_text(encoding="utf-8")), collect())
    assert not breaking, (
        "incompatible changes to the public API:\n  " + "\n  ".join(breaking) + "\n"
        "Keep the old name or argument working through wrim._deprecation (deprecated, renamed_argument, "
        "deprecated_names) for at least one minor version (docs: Citing, section Versioning and deprecation). "
        f"Only for a deliberate break, rewrite the snapshot: {WRITE_COMMAND}"
    )
    assert not other, (
        "the public API changed compatibly; rewrite the snapshot so that it stays the reference:\n"
        f"  {WRITE_COMMAND}\n  " + "\n  ".join(other)
    )


def test_the_snapshot_file_is_as_written() -> None:
    """The committed file is the tool's own output (sorted, one format), so that regenerating it gives clean diffs."""
    snapshot = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    assert SNAPSHOT.read_text(encoding="utf-8") == dumps(snapshot)
    assert sorted(snapshot["modules"]) == sorted(PUBLIC_MODULES)


def test_every_top_level_module_is_public_experimental_or_internal() -> None:
    """A new sub-package or module of wrim is a decision: public (in the snapshot), experimental or internal."""
    found = {f"wrim.{m.name}" for m in pkgutil.iter_modules(wrim.__path__) if not m.name.startswith("_")}
    classified = set(PUBLIC_MODULES) | set(EXPERIMENTAL_MODULES) | set(INTERNAL_MODULES)
    assert found <= classified, (
        f"unclassified: {sorted(found - classified)}; add each to PUBLIC_MODULES, EXPERIMENTAL_MODULES or "
        "INTERNAL_MODULES in tests/_api_snapshot.py and to docs/citing.md's Versioning and deprecation"
    )


@pytest.mark.repo
def test_the_docs_name_the_public_and_experimental_modules() -> None:
    page = (ROOT / "docs" / "citing.md").read_text(encoding="utf-8")
    assert "## Versioning and deprecation" in page, "docs/citing.md has no section Versioning and deprecation"
    section = page.split("## Versioning and deprecation", 1)[1].split("\n## ", 1)[0]
    for module in (*PUBLIC_MODULES, *EXPERIMENTAL_MODULES):
        assert f"`{module}`" in section, f"docs/citing.md's Versioning and deprecation does not name `{module}`"


# The rules, on a module made here: each change below is what a user's code would meet after an upgrade.


def _snapshot(version: str = "0.3.0", **names: Any) -> dict[str, Any]:
    module = types.ModuleType("wrim.fake")
    getattr_ = names.pop("__getattr__", None)
    if getattr_ is not None:
        module.__getattr__ = getattr_  # type: ignore[attr-defined]
    for name, value in names.items():
        setattr(module, name, value)
    module.__all__ = sorted(names)  # type: ignore[attr-defined]
    return {"wrim_version": version, "modules": {"wrim.fake": module_entry(module)}}


def _fake_class(**methods: Any) -> type:
    return type("Thing", (), {"__module__": "wrim.fake", **methods})


def f_base(x: int, y: int = 1, *, scale: float = 2.0) -> int:
    return x


def test_parse_signature_reads_every_kind() -> None:
    params = parse_signature("(a, /, b, c=(1, 2), *args, d='x, y', e=None, **kw)")
    assert [(p.name, p.kind, p.default) for p in params] == [
        ("a", "po", None),
        ("b", "pk", None),
        ("c", "pk", "(1, 2)"),
        ("args", "var", None),
        ("d", "kw", "'x, y'"),
        ("e", "kw", "None"),
        ("kw", "varkw", None),
    ]


@pytest.mark.parametrize(
    ("new", "reason"),
    [
        ("(x, *, scale=2.0)", "positional parameter 1 (y) is gone or moved"),
        ("(y, x, *, scale=2.0)", "positional parameter 0 (x) is gone or moved"),
        ("(x, y=1, *, scale)", "scale lost its default"),
        ("(x, *, y=1, scale=2.0)", "positional parameter 1 (y) is gone or moved"),
        ("(x, y=1, /, *, scale=2.0)", "y became positional-only"),
        ("(x, y=1, *, scale=2.0, shift)", "new parameter shift has no default"),
        ("(x, y=1, *, factor=2.0)", "parameter scale is gone"),
        ("(x, y=1, z=0, *, scale=2.0)", None),
        ("(x, y=1, *, scale=2.0, shift=0.0)", None),
        ("(x, y=1, *args, scale=2.0, **kwargs)", None),
        ("(x, y=3, *, scale=0.5)", None),
        ("(x=0, y=1, *, scale=2.0)", None),
    ],
)
def test_signature_breaks(new: str, reason: str | None) -> None:
    breaks = signature_breaks("(x, y=1, *, scale=2.0)", new, renamed={})
    assert (reason in breaks) if reason else (breaks == []), breaks


def test_removing_star_args_breaks() -> None:
    assert signature_breaks("(x, *args, **kw)", "(x)", renamed={}) == ["**kw is gone", "*args is gone"]


def test_a_removed_name_breaks_unless_deprecated() -> None:
    old = _snapshot(f_base=f_base, g=f_base)
    breaking, other = compare(old, _snapshot(g=f_base))
    assert breaking == ["wrim.fake.f_base: removed without a deprecation"]
    moved = deprecated_names("wrim.fake", {"f_base": Moved("wrim.fake.g", since="0.3.0", remove_in="0.4.0")})
    breaking, other = compare(old, _snapshot(g=f_base, __getattr__=moved))
    assert breaking == [] and other == [
        "wrim.fake.f_base (names): (x, y=1, *, scale=2.0) -> absent",
        "wrim.fake.f_base (deprecated_names): absent -> "
        '{"replacement": "wrim.fake.g", "since": "0.3.0", "remove_in": "0.4.0"}',
    ]


def test_a_deprecated_name_goes_only_once_its_version_is_reached() -> None:
    moved = deprecated_names("wrim.fake", {"old": Moved("wrim.fake.g", since="0.3.0", remove_in="0.4.0")})
    old = _snapshot("0.3.0", g=f_base, __getattr__=moved)
    assert compare(old, _snapshot("0.3.5", g=f_base))[0] == ["wrim.fake.old: deprecated name removed before 0.4.0"]
    assert compare(old, _snapshot("0.4.0", g=f_base))[0] == []
    old_function = _snapshot("0.3.0", h=deprecated(since="0.3.0", remove_in="0.4.0", replacement="g")(f_base))
    assert compare(old_function, _snapshot("0.3.9"))[0] == ["wrim.fake.h: removed without a deprecation"]
    assert compare(old_function, _snapshot("0.4.0"))[0] == []


def test_a_renamed_argument_does_not_break() -> None:
    def f_new(x: int, y: int = 1, *, factor: float = 2.0) -> int:
        return x

    renamed = renamed_argument("scale", "factor", since="0.3.0", remove_in="0.4.0")(f_new)
    breaking, other = compare(_snapshot(f=f_base), _snapshot(f=renamed))
    assert breaking == [] and len(other) == 1
    assert compare(_snapshot(f=f_base), _snapshot(f=f_new))[0] == [
        "wrim.fake.f(x, y=1, *, factor=2.0): parameter scale is gone"
    ]


def test_class_constructors_and_methods_are_guarded() -> None:
    old = _fake_class(__init__=lambda self, dim, heads=8: None, forward=lambda self, x: x, size=property(len))
    dropped = _fake_class(__init__=lambda self, dim: None, size=property(len))
    breaking, _ = compare(_snapshot(Thing=old), _snapshot(Thing=dropped))
    assert breaking == [
        "wrim.fake.Thing(dim): parameter heads is gone",
        "wrim.fake.Thing(dim): positional parameter 1 (heads) is gone or moved",
        "wrim.fake.Thing.forward: method removed without a deprecation",
    ]
    grown = _fake_class(
        __init__=lambda self, dim, heads=8, bias=True: None, forward=lambda self, x, y=None: x, reset=lambda self: 0
    )
    breaking, other = compare(_snapshot(Thing=old), _snapshot(Thing=grown))
    assert breaking == ["wrim.fake.Thing.size: property removed"] and len(other) == 1
    assert compare(_snapshot(Thing=old), _snapshot(Thing=f_base))[0] == ["wrim.fake.Thing: was a class, is a function"]


def test_added_names_and_changed_defaults_ask_for_a_rewrite_only() -> None:
    def f_default(x: int, y: int = 5, *, scale: float = 2.0) -> int:
        return x

    breaking, other = compare(_snapshot(f=f_base), _snapshot(f=f_default, LIMIT=3))
    assert breaking == []
    assert other == [
        "wrim.fake.LIMIT (names): absent -> constant",
        "wrim.fake.f (names): (x, y=1, *, scale=2.0) -> (x, y=5, *, scale=2.0)",
    ]
