"""No import runs back up: what the workers load (`runtimes/`, `ipc/`, `common/`) never imports the
supervisor, and the supervisor stays within its file-size budget (docs/supervisor.md)."""
from __future__ import annotations

import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def python_files(package: str) -> list[str]:
    out = []
    for d, _, names in os.walk(os.path.join(ROOT, package)):
        out += [os.path.join(d, n) for n in names if n.endswith(".py")]
    return out


def imported(path: str) -> set[str]:
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    mods: set[str] = set()
    for node in ast.walk(tree):  # also imports inside functions
        if isinstance(node, ast.Import):
            mods.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            mods.add(node.module)
    return mods


def test_runtimes_ipc_common_never_import_the_supervisor() -> None:
    bad = [f"{os.path.relpath(p, ROOT)} imports {m}" for pkg in ("runtimes", "ipc", "common")
           for p in python_files(pkg) for m in imported(p) if m == "supervisor" or m.startswith("supervisor.")]
    assert bad == []


def test_supervisor_files_stay_small() -> None:
    sizes: dict[str, int] = {}
    for p in python_files("supervisor"):
        with open(p) as f:
            sizes[os.path.basename(p)] = len(f.readlines())
    assert sizes["node.py"] <= 300, sizes
    assert max(sizes.values()) <= 400, sizes
