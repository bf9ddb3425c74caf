"""Import cycles and private cross-package imports in a wrim tree, read with ``ast`` (nothing is imported).

Usage: ``python tests/_import_cycles.py [ROOT]`` (ROOT holds the ``wrim`` folder; default the repository). Prints
the cycles between modules, the cycles between sub-packages, and every import of a private name (``_name`` or
``pkg._module``) from another sub-package. Exit status 1 when any is found.

Every import that runs counts, deferred ones inside functions included (a deferred import hides a cycle from the
interpreter, not from the reader); imports under ``if TYPE_CHECKING:`` never run and do not count. Importing
``a.b.c`` also runs ``a/__init__`` and ``a/b/__init__``.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

# private homes below every sub-package
_SHARED = {
    "wrim._checks",
    "wrim._deprecation",
    "wrim._files",
    "wrim._plotting",
    "wrim._registry",
    "wrim._versions",
    "wrim.modality",
    "wrim.version",
}


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(tree: ast.Module) -> list[tuple[str, list[str]]]:
    """``(module, imported names)`` for every ``wrim`` import of a file that runs, at module level or deferred."""
    skip = _type_checking_ids(tree)
    found = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("wrim") and node.level == 0:
            found.append((node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            found.extend((alias.name, []) for alias in node.names if alias.name.startswith("wrim"))
    return found


def _type_checking_ids(tree: ast.Module) -> set[int]:
    """Nodes under ``if TYPE_CHECKING:`` (never run)."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            out |= {id(sub) for stmt in node.body for sub in ast.walk(stmt)}
    return out


def _resolve(target: str, names: list[str], modules: set[str]) -> list[str]:
    """The modules an import runs: ``from a.b import c`` is module ``a.b.c`` when that is a module."""
    out = [f"{target}.{n}" for n in names if f"{target}.{n}" in modules]
    return out or [target]


def _with_parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(2, len(parts) + 1)]


def _subpackage(module: str) -> str:
    return ".".join(module.split(".")[:2])


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def analyse(root: Path) -> tuple[list[list[str]], list[list[str]], list[str]]:
    """``(module cycles, sub-package cycles, private cross-package imports)`` of ``root/wrim``."""
    files = {_module_name(p, root): p for p in sorted((root / "wrim").rglob("*.py"))}
    modules = set(files)
    module_graph: dict[str, set[str]] = defaultdict(set)
    package_graph: dict[str, set[str]] = defaultdict(set)
    private: list[str] = []
    for name, path in files.items():
        tree = ast.parse(path.read_text())
        own_packages = set(_with_parents(name))
        for target, names in _imports(tree):
            resolved = _resolve(target, names, modules)
            for mod in resolved:
                if _subpackage(mod) != _subpackage(name):
                    package_graph[_subpackage(name)].add(_subpackage(mod))
                    hidden = [p for p in mod.split(".")[1:] if p.startswith("_") and p != "__init__"]
                    hidden += [n for n in names if n.startswith("_") and f"{target}.{n}" not in modules]
                    if hidden and mod not in _SHARED:
                        private.append(f"{name} imports {', '.join(hidden)} from {mod}")
                for dep in _with_parents(mod):  # importing a.b.c runs a/b/__init__ first (not the importer's own)
                    if dep not in own_packages and dep in modules:
                        module_graph[name].add(dep)
    return _cycles(module_graph), _cycles(package_graph), private


def main(argv: list[str]) -> int:
    root = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parents[1]
    module_cycles, package_cycles, private = analyse(root)
    print(f"module import cycles (deferred imports included): {len(module_cycles)}")
    for cycle in module_cycles:
        print("  " + " <-> ".join(cycle))
    print(f"sub-package cycles (deferred imports included): {len(package_cycles)}")
    for cycle in package_cycles:
        print("  " + " <-> ".join(cycle))
    print(f"private names imported across sub-packages: {len(private)}")
    for line in private:
        print("  " + line)
    return 1 if module_cycles or package_cycles or private else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
