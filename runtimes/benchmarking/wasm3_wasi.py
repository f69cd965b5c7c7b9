"""wasm3-i: pywasm3 with our WASI layer. (Being written: not available yet.)"""
from __future__ import annotations

from typing import Any


def child_target(path: str, argv: list[str], env: dict[str, str], dirs: list[str]) -> Any:
    raise NotImplementedError("wasm3-i is not available in this version")


def available() -> tuple[bool, str]:
    return False, "the wasm3 WASI layer is not finished in this version"
