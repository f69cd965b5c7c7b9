"""wasm3 (PyPI `pywasm3`, no WASI in the binding) in a forked child under our WASI layer in Python
(wasi/wasm3.py)."""
from __future__ import annotations

from benchmarking.engines.adapters.base import Adapter, pkg_version
from benchmarking.engines.invocation import Invocation, Prepared
from benchmarking.engines.wasi import wasm3 as wasi


class Wasm3(Adapter):
    family = "wasm3"

    def installed(self, name: str) -> tuple[bool, str]:
        return wasi.available()

    def version(self, name: str) -> str | None:
        return pkg_version("pywasm3")

    def prepare(self, name: str, inv: Invocation, artifact: str | None) -> Prepared:
        return Prepared(target=wasi.child_target(inv.path, inv.argv, inv.env, inv.dirs))
