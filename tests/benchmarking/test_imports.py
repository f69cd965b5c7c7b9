"""The benchmarking package has no import cycle: a static walk of its own imports (module level and
inside functions), so a cycle is caught whether or not Python would trip over it at import time."""
from __future__ import annotations

import ast
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def module_files(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every .py under root/package (packages by their __init__)."""
    out: dict[str, Path] = {}
    for dirpath, _dirs, files in os.walk(root / package):
        for f in files:
            if f.endswith(".py"):
                rel = (Path(dirpath) / f).relative_to(root).with_suffix("")
                parts = list(rel.parts)
                if parts[-1] == "__init__":
                    parts.pop()
                out[".".join(parts)] = Path(dirpath) / f
    return out


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The modules of `known` that `path` (module `name`) imports, relative imports resolved; a
    `from P import x` counts as importing P.x when that is a module, else P."""
    is_pkg = path.name == "__init__.py"
    here = name.split(".") if is_pkg else name.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = here[:len(here) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in known:  # `import a.b.c` of a name inside a module
                t = t.rpartition(".")[0]
            if t and t != name:
                found.add(t)
    return found


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of the graph as a path that ends where it starts, or None."""
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state:
                got = visit(m)
                if got:
                    return got
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            got = visit(n)
            if got:
                return got
    return None


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    known = module_files(root, package)
    return {n: imports_of(n, p, known) for n, p in known.items()}


def test_benchmarking_has_no_import_cycle() -> None:
    graph = import_graph(ROOT, "benchmarking")
    assert "benchmarking.engines.launch" in graph and "benchmarking.engines.catalog" in graph["benchmarking.engines.launch"]
    cycle = find_cycle(graph)
    assert cycle is None, f"import cycle in benchmarking/: {' -> '.join(cycle or [])}"


def test_the_catalog_is_the_bottom_of_the_engines() -> None:
    """catalog.py imports nothing of the package: everything that names an engine can read it cheaply."""
    graph = import_graph(ROOT, "benchmarking")
    assert graph["benchmarking.engines.catalog"] == set()
    assert graph["benchmarking"] == set() and graph["benchmarking.engines"] == set()  # 3.10 children import them


def test_the_walk_finds_a_cycle(tmp_path: Path) -> None:
    """The check can fail: a two-module cycle through a relative import inside a function is found."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from pkg.sub import b\n")
    (pkg / "sub" / "b.py").write_text("def f():\n    from .. import a\n    return a\n")
    (pkg / "c.py").write_text("import pkg.a\n")
    graph = import_graph(tmp_path, "pkg")
    assert graph["pkg.c"] == {"pkg.a"}
    assert find_cycle(graph) == ["pkg.a", "pkg.sub.b", "pkg.a"]
