"""The style's length rules: no function in ``wrim/`` over 60 lines (docstring aside), no module over 500 lines.

tests/_function_lengths.py measures all of wrim/; both rules hold everywhere.
"""

from pathlib import Path

import pytest

from tests._function_lengths import FILE_LIMIT, FUNCTION_LIMIT, file_lengths, function_lengths

pytestmark = pytest.mark.repo  # measures the wrim/ source tree

ROOT = Path(__file__).resolve().parents[1]


def test_no_function_over_the_limit() -> None:
    long = [(name, n) for name, n in function_lengths(ROOT) if n > FUNCTION_LIMIT]
    assert not long, f"functions over {FUNCTION_LIMIT} lines (docstring aside): {long}"


def test_no_module_over_the_limit() -> None:
    long = [(path, n) for path, n in file_lengths(ROOT) if n > FILE_LIMIT]
    assert not long, f"modules over {FILE_LIMIT} lines: {long}"


def test_the_measure_counts_without_the_docstring(tmp_path: Path) -> None:
    package = tmp_path / "wrim"
    package.mkdir()
    source = [
        "def f():",
        '    """One.',
        "",
        "    Two.",
        '    """',
        "    x = 1",
        "    return x",
        "",
        "",
        "class C:",
        "    def g(self):",
        "        y = 2",
        "        return y",
    ]
    (package / "m.py").write_text("\n".join(source) + "\n")
    assert function_lengths(tmp_path) == [("wrim/m.py:f", 3), ("wrim/m.py:C.g", 3)]
    assert file_lengths(tmp_path) == [("wrim/m.py", 13)]
