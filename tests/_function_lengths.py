"""Function and file lengths in a wrim tree: the style's "no function over 60 lines (docstring aside)" and
"files over 500 lines split at a concept boundary", measured with ``ast``.

Usage: ``python tests/_function_lengths.py [ROOT] [--limit 60] [--file-limit 500]`` (ROOT holds ``wrim``; default
the repository). A function's length counts its lines from ``def`` to its last line, without its docstring (the
decorators are not counted; a nested function counts in its parent as well). Exit status 1 when any function or
file is over its limit.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

FUNCTION_LIMIT = 60
FILE_LIMIT = 500


def _docstring_lines(node: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    first = node.body[0] if node.body else None
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
        return first.end_lineno - first.lineno + 1
    return 0


def function_lengths(root: Path) -> list[tuple[str, int]]:
    """``("path:qualified name", lines without docstring)`` for every function of ``root/wrim``."""
    out = []
    for path in sorted((root / "wrim").rglob("*.py")):
        rel = path.relative_to(root).as_posix()

        def visit(node: ast.AST, prefix: str, rel: str = rel) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    length = child.end_lineno - child.lineno + 1 - _docstring_lines(child)
                    out.append((f"{rel}:{prefix}{child.name}", length))
                    visit(child, f"{prefix}{child.name}.")
                elif isinstance(child, ast.ClassDef):
                    visit(child, f"{prefix}{child.name}.")

        visit(ast.parse(path.read_text()), "")
    return out


def file_lengths(root: Path) -> list[tuple[str, int]]:
    """``(path, lines)`` for every module of ``root/wrim``."""
    return [
        (p.relative_to(root).as_posix(), len(p.read_text().splitlines())) for p in sorted((root / "wrim").rglob("*.py"))
    ]


def over_limits(
    root: Path, limit: int = FUNCTION_LIMIT, file_limit: int = FILE_LIMIT
) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    """The functions over ``limit`` lines and the files over ``file_limit`` lines, longest first."""
    functions = sorted((f for f in function_lengths(root) if f[1] > limit), key=lambda f: -f[1])
    files = sorted((f for f in file_lengths(root) if f[1] > file_limit), key=lambda f: -f[1])
    return functions, files


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", default=str(Path(__file__).resolve().parents[1]))
    parser.add_argument("--limit", type=int, default=FUNCTION_LIMIT)
    parser.add_argument("--file-limit", type=int, default=FILE_LIMIT)
    args = parser.parse_args(argv)
    functions, files = over_limits(Path(args.root), args.limit, args.file_limit)
    print(f"functions over {args.limit} lines (docstring aside): {len(functions)}")
    for name, length in functions:
        print(f"  {length:4d}  {name}")
    print(f"files over {args.file_limit} lines: {len(files)}")
    for name, length in files:
        print(f"  {length:4d}  {name}")
    return 1 if functions or files else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
