"""The deprecation helper: the old name keeps working, with a FutureWarning at the user's line that names the
version the name goes away in and its replacement; a too-short deprecation is refused."""

from __future__ import annotations

import sys
import types
import warnings

import pytest

from wrim._deprecation import Deprecation, Moved, deprecated, deprecated_names, parse_version, renamed_argument

EXPECTED = r"deprecated since wrim 0\.3\.0 and will be removed in wrim 0\.4\.0; use {} instead"


def _one_warning(record: list[warnings.WarningMessage]) -> warnings.WarningMessage:
    assert len(record) == 1, [str(w.message) for w in record]
    assert record[0].category is FutureWarning
    assert record[0].filename == __file__, "the warning points at the caller's line"
    return record[0]


def test_a_deprecated_function_warns_at_the_callers_line_and_still_works() -> None:
    @deprecated(since="0.3.0", remove_in="0.4.0", replacement="new_add")
    def old_add(a: int, b: int = 1) -> int:
        """Adds."""
        return a + b

    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        assert old_add(2, b=3) == 5
    message = str(_one_warning(record).message)
    assert message.startswith(f"{__name__}.") and ".old_add is deprecated" in message
    assert "removed in wrim 0.4.0" in message and "use new_add instead" in message
    assert old_add.__name__ == "old_add" and old_add.__doc__ == "Adds."
    assert old_add.__wrim_deprecation__.as_dict() == {"replacement": "new_add", "since": "0.3.0", "remove_in": "0.4.0"}


def test_a_deprecated_class_warns_when_instantiated() -> None:
    @deprecated(since="0.3.0", remove_in="0.4.0", replacement="wrim.losses.CMKICLoss")
    class OldLoss:
        def __init__(self, scale: float = 1.0) -> None:
            self.scale = scale

    with pytest.warns(FutureWarning, match=EXPECTED.format(r"wrim\.losses\.CMKICLoss")) as record:
        loss = OldLoss(scale=2.0)
    assert loss.scale == 2.0 and isinstance(loss, OldLoss)
    assert record[0].filename == __file__


def test_a_renamed_argument_still_works_with_a_warning() -> None:
    class Block:
        @renamed_argument("heads", "num_heads", since="0.3.0", remove_in="0.4.0")
        def __init__(self, channels: int, num_heads: int = 8) -> None:
            self.channels, self.num_heads = channels, num_heads

    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        block = Block(64, heads=4)
    assert (block.channels, block.num_heads) == (64, 4)
    message = str(_one_warning(record).message)
    assert message.endswith("Block(heads=...) is " + EXPECTED.format("num_heads=").replace("\\", ""))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new name and positional calls do not warn
        assert Block(64, num_heads=2).num_heads == 2 and Block(64, 2).num_heads == 2
    with pytest.raises(TypeError, match=r"both heads= \(deprecated\) and num_heads=; pass num_heads= only"):
        Block(64, heads=4, num_heads=4)
    assert set(Block.__init__.__wrim_renamed_arguments__) == {"heads"}


def test_two_renamed_arguments_on_one_function_are_both_recorded() -> None:
    @renamed_argument("a_old", "a", since="0.3.0", remove_in="0.4.0")
    @renamed_argument("b_old", "b", since="0.3.0", remove_in="0.5.0")
    def f(a: int = 0, b: int = 0) -> tuple[int, int]:
        return a, b

    with pytest.warns(FutureWarning):
        assert f(a_old=1, b_old=2) == (1, 2)
    assert {k: v.remove_in for k, v in f.__wrim_renamed_arguments__.items()} == {"a_old": "0.4.0", "b_old": "0.5.0"}


def test_a_moved_module_name_resolves_to_its_replacement_with_a_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("wrim_fake_module")
    module.__getattr__ = deprecated_names(  # type: ignore[attr-defined]
        "wrim_fake_module", {"OldMIIM": Moved("wrim.layers.MIIM", since="0.3.0", remove_in="0.4.0")}
    )
    monkeypatch.setitem(sys.modules, "wrim_fake_module", module)
    from wrim.layers import MIIM

    with pytest.warns(FutureWarning, match=r"wrim_fake_module\.OldMIIM is " + EXPECTED.format(r"wrim\.layers\.MIIM")):
        from wrim_fake_module import OldMIIM  # type: ignore[attr-defined]
    assert OldMIIM is MIIM
    with pytest.raises(AttributeError, match="module 'wrim_fake_module' has no attribute 'Other'"):
        module.Other  # noqa: B018
    assert set(module.__getattr__.deprecations) == {"OldMIIM"}


def test_the_fallback_handles_every_other_name() -> None:
    getattr_ = deprecated_names("m", {"old": Moved("wrim.version.__version__", "0.3.0", "0.4.0")}, fallback=len)
    assert getattr_("abc") == 3
    with pytest.warns(FutureWarning, match=r"m\.old is deprecated"):
        assert isinstance(getattr_("old"), str)


@pytest.mark.parametrize(
    ("since", "remove_in"), [("0.3.0", "0.3.5"), ("0.3.0", "0.2.0"), ("1.2.0", "1.2.9"), ("0.3.1", "0.3.2")]
)
def test_a_deprecation_kept_for_less_than_one_minor_version_is_refused(since: str, remove_in: str) -> None:
    with pytest.raises(ValueError, match="must be a later minor version than since=.*kept for at least one minor"):
        Deprecation("wrim.x", "wrim.y", since, remove_in)


@pytest.mark.parametrize(("since", "remove_in"), [("0.3.0", "0.4.0"), ("0.3.2", "0.5.0"), ("0.9.0", "1.0.0")])
def test_one_minor_version_or_more_is_accepted(since: str, remove_in: str) -> None:
    assert Deprecation("wrim.x", "wrim.y", since, remove_in).remove_in == remove_in


@pytest.mark.parametrize("version", ["0.4", "v0.4.0", "0.4.0rc1", "0..1", ""])
def test_versions_are_three_integers(version: str) -> None:
    with pytest.raises(ValueError, match="is not MAJOR.MINOR.PATCH"):
        parse_version(version)
