"""The supervisor stays within its file-size budget (docs/supervisor.md). The import rules that used to
live here (what the workers load never imports the supervisor, ...) are import-linter contracts now:
pyproject.toml [tool.importlinter], checked by `make lint` (part of `make test`)."""
from __future__ import annotations

import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def python_files(package: str) -> list[str]:
    out = []
    for d, _, names in os.walk(os.path.join(ROOT, package)):
        out += [os.path.join(d, n) for n in names if n.endswith(".py")]
    return out


def test_supervisor_files_stay_small() -> None:
    sizes: dict[str, int] = {}
    for p in python_files("supervisor"):
        with open(p) as f:
            sizes[os.path.basename(p)] = len(f.readlines())
    assert sizes["node.py"] <= 300, sizes
    assert max(sizes.values()) <= 400, sizes
