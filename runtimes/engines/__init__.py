"""Engines: run one WebAssembly module with WASI, limits and the `silverline` host API.

`open_engine(name, **settings)` gives an Engine; see `api.py` for the interface and
docs/modules.md for what modules see. Engine modules import their native package lazily,
so importing this package never needs wasmtime or wasmer.
"""
from __future__ import annotations

from typing import Any

from runtimes.engines.api import (DEFAULT_MEMORY_LIMIT, ERROR, EXITED, INTERRUPTED, LIMIT, TRAP,
                                  CompiledModule, Engine, EngineError, EngineUnavailable, Limits,
                                  LoadError, Run, RunControl, RunResult, RunSpec, StdinPipe)
from runtimes.engines.bridge import Bridge, NullBridge

ENGINES = ("wasmtime", "wasmer")

__all__ = [
    "DEFAULT_MEMORY_LIMIT", "ERROR", "EXITED", "INTERRUPTED", "LIMIT", "TRAP", "Bridge",
    "CompiledModule", "Engine", "EngineError", "EngineUnavailable", "Limits", "LoadError",
    "NullBridge", "Run", "RunControl", "RunResult", "RunSpec", "StdinPipe", "open_engine", "ENGINES",
]


def open_engine(name: str, **settings: Any) -> Engine:
    """An engine by name ("wasmtime" or "wasmer"); EngineUnavailable when it cannot run here."""
    if name == "wasmtime":
        try:
            from runtimes.engines.wasmtime_engine import WasmtimeEngine
        except ImportError as e:
            raise EngineUnavailable(f"engine wasmtime needs the PyPI package wasmtime: {e}") from None
        return WasmtimeEngine(**settings)
    if name == "wasmer":
        from runtimes.engines.wasmer_engine import WasmerEngine
        return WasmerEngine(**settings)
    raise EngineError(f"unknown engine {name!r}: choose one of {', '.join(ENGINES)}")
