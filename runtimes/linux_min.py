"""The seed's minimal runtimes: one module at a time, argv, env, WASI, stdout.

- `linux/min/wasmtime` (new): on wasmtime, in the forked worker.
- `linux/min/wasmer`: on wasmer 1.1, whose Python builds stop at CPython 3.10: the worker is
  exec'd under a Python that can import wasmer (setting `wasmer_python`, else `.venv310` from
  `make env`, else python3.10 under pyenv / on PATH); without one the runtime refuses to start
  and says what to install. Each module runs in a child forked by that worker (wasmer cannot be
  interrupted in-process), so delete is a SIGKILL.
- `linux/min/wamr`: registered, but no WAMR Python binding exists on the registries reachable
  here: starting it says so.
"""
from __future__ import annotations

import os
from typing import Any, Dict, List, Optional

from runtimes.linux import WasmRuntime

_MIN_FEATURES = {"channels": False, "dirs": False, "stdin": False, "resources": False,
                 "fault_crash": False, "profile": False}


class WasmtimeMinRuntime(WasmRuntime):
    RUNTIME_TYPE = "linux/min/wasmtime"  # ours (the original has no wasmtime runtime); named like its siblings
    MAX_NMODULES = 1
    APIS = ["wasm", "wasi", "stdio:out", "stdout"]
    DESCRIPTION = "minimal one-module runtime on wasmtime (argv, env, stdout)"
    ENGINE = "wasmtime"
    FEATURES = dict(_MIN_FEATURES)


class WasmerMinRuntime(WasmRuntime):
    RUNTIME_TYPE = "linux/min/wasmer"
    MAX_NMODULES = 1
    APIS = ["wasm", "wasm:wasmer", "wasi", "stdio:in", "stdio:out", "stdin", "stdout"]
    DESCRIPTION = "minimal one-module runtime on wasmer 1.1 (argv, env, stdin, stdout), under Python 3.10"
    ENGINE = "wasmer"
    FEATURES = dict(_MIN_FEATURES, thread_affine=True, stdin=True)  # stdin as the original's (stdio:in)

    @classmethod
    def _python(cls, settings: Dict[str, Any]) -> "tuple[Optional[str], str]":
        from common.python310 import find_wasmer_python
        return find_wasmer_python(settings.get("wasmer_python"))

    @classmethod
    def unavailable(cls, settings: Dict[str, Any]) -> Optional[str]:
        python, why = cls._python(settings)
        return None if python else f"linux/min/wasmer: {why}"

    @classmethod
    def exec_command(cls, settings: Dict[str, Any]) -> Optional[List[str]]:
        python, _ = cls._python(settings)
        return [python, "-m", "runtimes.worker_main"] if python else None

    def engine_settings(self, cache_dir: Optional[str]) -> Dict[str, Any]:
        return {"cache_dir": os.path.join(os.path.dirname(cache_dir), "wasmer") if cache_dir else None}


class WamrMinRuntime(WasmRuntime):
    RUNTIME_TYPE = "linux/min/wamr"
    MAX_NMODULES = 1
    APIS = ["wasm", "wasi", "stdio:out", "stdout"]
    DESCRIPTION = "minimal one-module runtime on WAMR (not available: no Python binding)"

    @classmethod
    def unavailable(cls, settings: Dict[str, Any]) -> Optional[str]:
        return ("linux/min/wamr: no WAMR Python binding (pywamr) is published on the package registries "
                "this project can reach, and PyPI's `wamr-bin` is a different AOT-only project; "
                "use linux/min/wasmtime or linux/min/wasmer instead")

    def setup(self) -> None:
        raise RuntimeError(self.unavailable(self.config.settings or {}) or "unavailable")
