"""Runtime registry: runtime name (as given to `start.py -r`) -> the class that runs it.

Entries name their class as `"module:Class"` and are imported only when used, so a runtime whose
module is not written yet, or whose engine is missing, does not break the others. Add a runtime by
adding one `RuntimeSpec` line to `REGISTRY` (and, for aliases, to `ALIASES`). Docs: docs/runtimes.md.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from runtimes.base import Runtime


class UnknownRuntime(LookupError):
    """A runtime name that is not in the registry."""


class RuntimeUnavailable(RuntimeError):
    """A registered runtime that cannot run here (module missing, engine not installed, ...)."""


@dataclass(frozen=True)
class RuntimeSpec:
    name: str  # e.g. "linux/min/wasmer"
    target: str  # "package.module:ClassName", a subclass of runtimes.base.Runtime
    summary: str = ""

    @property
    def short_name(self) -> str:
        """The suffix used in `NODE.SHORT` when several runtimes run on one node (the seed's rule: last path part)."""
        return self.name.rstrip("/").split("/")[-1]

    def load(self) -> "type[Runtime]":
        """Import the runtime class; RuntimeUnavailable with the reason when it cannot be imported."""
        mod_name, _, cls_name = self.target.partition(":")
        try:
            mod = importlib.import_module(mod_name)
        except ImportError as e:
            raise RuntimeUnavailable(f"runtime {self.name!r} is not available: cannot import {mod_name} ({e})") from e
        try:
            cls = getattr(mod, cls_name)
        except AttributeError as e:
            raise RuntimeUnavailable(f"runtime {self.name!r} is not available: {mod_name} has no class {cls_name}") from e
        return cls  # type: ignore[no-any-return]


REGISTRY: dict[str, RuntimeSpec] = {
    s.name: s
    for s in (
        # WebAssembly runtimes (runtimes/linux*.py)
        RuntimeSpec("linux", "runtimes.linux:LinuxRuntime", "up to 128 modules: channels, dirs, resources, fault_crash, profiling"),
        RuntimeSpec("linux/min/wasmtime", "runtimes.linux_min:WasmtimeMinRuntime", "minimal one-module runtime on wasmtime (stdout only)"),
        RuntimeSpec("linux/min/wasmer", "runtimes.linux_min:WasmerMinRuntime", "minimal one-module runtime on wasmer, exec'd under python3.10"),
        RuntimeSpec("linux/min/wamr", "runtimes.linux_min:WamrMinRuntime", "minimal one-module runtime on WAMR (no binding available here)"),
        # benchmarking runtimes (runtimes/benchmarking/, issue of helper D)
        RuntimeSpec("benchmarking", "runtimes.benchmarking:BenchmarkingRuntime", "generic benchmarking runtime"),
        RuntimeSpec("benchmarking/seeded", "runtimes.benchmarking:SeededRuntime", "benchmarking with seeded inputs"),
        RuntimeSpec("benchmarking/interference", "runtimes.benchmarking:InterferenceRuntime", "simultaneous interference runtime"),
        RuntimeSpec("benchmarking/opcodes", "runtimes.benchmarking:OpcodesRuntime", "opcode counting interpreted runtime"),
        # Python test runtimes (no WebAssembly): runtimes/testing.py
        RuntimeSpec("test/reg", "runtimes.testing:RegRuntime", "registers and runs nothing"),
        RuntimeSpec("test/echo", "runtimes.testing:EchoRuntime", "echoes channel messages; crash/exit on demand"),
        RuntimeSpec("test/single", "runtimes.testing:SingleEchoRuntime", "test/echo with max_nmodules 1"),
        RuntimeSpec("test/bench", "runtimes.testing:BenchRuntime", "latency/throughput source and sink (bench/channels.py)"),
        RuntimeSpec("test/bootfail", "runtimes.testing:BootFailRuntime", "fails in setup() (tests the FATAL state)"),
        RuntimeSpec("test/exec", "runtimes.testing:ExecEchoRuntime", "test/echo, exec'd in a fresh interpreter"),
    )
}

ALIASES: dict[str, str] = {
    "runtime-linux": "linux",
    "benchmarking/if": "benchmarking/interference",
    "if": "benchmarking/interference",
}


def known_names() -> list[str]:
    return sorted(REGISTRY) + sorted(ALIASES)


def get(name: str) -> RuntimeSpec:
    """The spec of `name` (aliases resolved), or UnknownRuntime listing the known names."""
    spec = REGISTRY.get(ALIASES.get(name, name))
    if spec is None:
        raise UnknownRuntime(f"unknown runtime {name!r}; known runtimes: {', '.join(known_names())}")
    return spec


def register(spec: RuntimeSpec, *aliases: str) -> None:
    """Add a runtime at run time (plugins, tests)."""
    REGISTRY[spec.name] = spec
    for a in aliases:
        ALIASES[a] = spec.name
