"""The import-linter contracts (pyproject.toml [tool.importlinter], run by `make lint`) stay complete: the
client side's contract names every orchestrator module but the client-safe ones, so a server module added
tomorrow is forbidden to cli/, cluster/ and silverline/ the day it appears."""
from __future__ import annotations

import os
import sys
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the 3.10 lock pins tomli for mypy
    import tomli as tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# standard library only, no I/O: the states and records a client may share with the orchestrator
CLIENT_SAFE = {"orchestrator.model"}


def contract(name: str) -> dict[str, Any]:
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        contracts: list[dict[str, Any]] = tomllib.load(f)["tool"]["importlinter"]["contracts"]
    return next(c for c in contracts if c["name"] == name)


def modules(package: str) -> set[str]:
    out = set()
    for d, _, names in os.walk(os.path.join(ROOT, package)):
        prefix = os.path.relpath(d, ROOT).replace(os.sep, ".")
        for n in names:
            if n == "__init__.py":
                out.add(prefix)
            elif n.endswith(".py"):
                out.add(f"{prefix}.{n[:-3]}")
    return out


def test_the_client_side_contract_forbids_every_orchestrator_module_but_the_client_safe_ones() -> None:
    c = contract("The client side never imports the orchestrator's server internals")
    assert c["as_packages"] is False  # each module listed by itself: the package's client-safe ones stay allowed
    listed = set(c["forbidden_modules"])
    assert listed == modules("orchestrator") - CLIENT_SAFE, (
        f"add to the contract's forbidden_modules: {sorted(modules('orchestrator') - CLIENT_SAFE - listed)}; "
        f"remove: {sorted(listed - modules('orchestrator'))}")
