"""Version checks of the features that need more than wrim's floor (wrim._versions)."""

from __future__ import annotations

import importlib.metadata

import pytest
import torch

from wrim import _versions


def test_release_numbers() -> None:
    assert _versions.release("2.3.1+cu121") == (2, 3, 1)
    assert _versions.release("2.6.0a0+git1234") == (2, 6, 0)
    assert _versions.at_least("0.18.1", "0.18") and not _versions.at_least("0.18.1", "0.19")
    assert _versions.at_least("1.0.10", "1.0.9")  # numbers, not strings
    with pytest.raises(ValueError, match="cannot read a release number"):
        _versions.release("unknown")


@pytest.mark.parametrize(
    ("torch_version", "sympy_version", "blocked"),
    [("2.3.1", "1.14.0", True), ("2.3.1", "1.12", False), ("2.4.0", "1.14.0", False)],
)
def test_compile_is_switched_off_with_a_reason_only_where_it_fails(
    monkeypatch, torch_version: str, sympy_version: str, blocked: bool
) -> None:
    monkeypatch.setattr(torch, "__version__", torch_version)
    real_version = importlib.metadata.version
    monkeypatch.setattr(
        importlib.metadata, "version", lambda name: sympy_version if name == "sympy" else real_version(name)
    )
    reason = _versions.compile_unsupported_reason()
    assert (reason is not None) == blocked
    if blocked:
        assert reason == (
            f"torch.compile on torch {torch_version} needs sympy<1.13 (installed {sympy_version}): "
            "pip install 'sympy<1.13', or torch>=2.4"
        )

        def step() -> int:
            return 1

        with pytest.warns(UserWarning, match="torch.compile is off, running eagerly"):
            assert _versions.compile_if_supported(step) is step
