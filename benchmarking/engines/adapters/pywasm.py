"""pywasm, the pure-Python interpreter (~50,000x slower than wasmtime), in a forked child with its
own WASI (not a sandbox: it follows symlinks out of a preopened dir)."""
from __future__ import annotations

import importlib.util
import sys

from benchmarking import harness
from benchmarking.engines.adapters.base import Adapter, pkg_version
from benchmarking.engines.invocation import TRAP_EXIT, Invocation, Prepared
from common.preopen import preopen_pair


def _child(inv: Invocation) -> harness.ChildTarget:
    def target(_fd: int) -> int:
        import pywasm

        runtime = pywasm.core.Runtime()
        wasi = pywasm.wasi.Preview1(inv.argv, {g: h for h, g in map(preopen_pair, inv.dirs)}, dict(inv.env))
        wasi.bind(runtime)
        inst = runtime.instance_from_file(inv.path)
        try:
            return int(wasi.main(runtime, inst))
        except Exception as e:  # pywasm raises for traps
            if type(e).__name__ == "SystemExit":
                raise
            sys.stderr.write(f"pywasm: {type(e).__name__}: {e}\n")
            return TRAP_EXIT
    return target


class Pywasm(Adapter):
    family = "pywasm"

    def installed(self, name: str) -> tuple[bool, str]:
        if sys.version_info < (3, 11):
            return False, "pywasm needs Python >= 3.11"
        if importlib.util.find_spec("pywasm") is None:
            return False, "the pywasm package is not installed (pip install pywasm)"
        return True, "pywasm"

    def version(self, name: str) -> str | None:
        return pkg_version("pywasm")

    def prepare(self, name: str, inv: Invocation, artifact: str | None) -> Prepared:
        return Prepared(target=_child(inv))
