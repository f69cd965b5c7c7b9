"""Each engine family (catalog.EngineInfo.family) and its adapter."""
from __future__ import annotations

from benchmarking.engines import catalog
from benchmarking.engines.adapters.base import Adapter
from benchmarking.engines.adapters.external import External
from benchmarking.engines.adapters.native import Native
from benchmarking.engines.adapters.pywasm import Pywasm
from benchmarking.engines.adapters.v8 import V8
from benchmarking.engines.adapters.wasm2c import Wasm2c
from benchmarking.engines.adapters.wasm3 import Wasm3
from benchmarking.engines.adapters.wasmer import Wasmer
from benchmarking.engines.adapters.wasmtime import WasmtimeCli, WasmtimePy

ADAPTERS: dict[str, Adapter] = {a.family: a for a in (
    WasmtimePy(), WasmtimeCli(), Wasmer(), V8(), Wasm3(), Wasm2c(), Pywasm(), Native(), External("wamr"),
    External("wasmedge"))}
assert set(ADAPTERS) == set(catalog.FAMILIES), "every family of the catalog has one adapter"


def adapter(name: str) -> Adapter:
    """The adapter of a canonical engine name (catalog.resolve first); KeyError when unknown."""
    return ADAPTERS[catalog.ENGINES[name].family]
