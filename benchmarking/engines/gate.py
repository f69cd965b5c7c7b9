"""Which benchmark engines a create may use on this node: native and command-line engines are opt-in.

An engine that runs the module in a sandbox of its own making (wasmtime-py in any mode, wasm3 under
our WASI layer) is always on. A `native` engine execs the module's executable, a command-line
engine execs another program on it (wasmtime CLI, Node, a wasm2c executable, WAMR/WasmEdge), and
some engines' WASI is no sandbox (wasmer 1.1 and pywasm follow symlinks out of a preopened dir);
anyone who can publish a create on the broker could use them. So they run only when the node's
configuration enables them, per engine or all:

    "runtimes": {"benchmarking": {"enable_engines": ["native", "wasmtime-j"]}}   (or "all")

The `benchmarking` section is the default of every `benchmarking/*` runtime (start.py merges it);
a `benchmarking/interference` section of its own overrides it. When enabled, the executables
they start must still lie inside the module roots (runtimes/files.py; BenchmarkingRuntime.prepare).
Which engines are on by default is the catalog's `on` column (catalog.py).
"""
from __future__ import annotations

from typing import Any

from benchmarking.engines import catalog

SETTING = "enable_engines"


class EngineRefused(catalog.EngineNotAvailable):
    """An engine that is installed but not enabled by this node's configuration."""


def opt_in(name: str) -> bool:
    """Must the node's configuration enable engine `name`? Every engine the catalog does not mark
    `on`: native and command-line engines, and every engine that is not a sandbox (its WASI follows
    a symlink out of a preopened dir, e.g. wasmer 1.1, pywasm, Node's WASI); unknown names are left
    to launch.availability, which refuses them."""
    n = catalog.resolve(name)
    return n in catalog.ENGINES and not catalog.ENGINES[n].on


def parse_setting(value: Any, where: str = SETTING) -> tuple[bool, frozenset[str]]:
    """(all enabled, names enabled) of the `enable_engines` setting; ValueError naming what is wrong."""
    if value is None or value == []:
        return False, frozenset()
    if value == "all" or value is True:
        return True, frozenset()
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{where} must be \"all\" or a list of engine names, got {value!r}")
    known = set(catalog.all_names()) | set(catalog.ALIASES)
    unknown = [v for v in value if v != "all" and v not in known]
    if unknown:
        raise ValueError(f"{where}: unknown engine(s) {', '.join(map(repr, unknown))} (known: {', '.join(sorted(known))})")
    return "all" in value, frozenset(catalog.resolve(v) for v in value if v != "all")


class EngineGate:
    """The `enable_engines` setting of one runtime, checked where a create is dispatched."""

    def __init__(self, settings: dict[str, Any] | None, runtime: str = "benchmarking") -> None:
        self.runtime = runtime
        self.all, self.names = parse_setting((settings or {}).get(SETTING), f"runtimes.{runtime}.{SETTING}")

    def enabled(self, name: str) -> bool:
        return not opt_in(name) or self.all or catalog.resolve(name) in self.names

    def check(self, name: str) -> None:
        """EngineRefused saying which setting enables `name` when it is off."""
        if not self.enabled(name):
            raise EngineRefused(
                f"engine {name!r} is off on this node: native and command-line engines run only when the node's "
                f"configuration enables them; add it to config.json \"runtimes\": {{\"{self.runtime}\": "
                f"{{\"{SETTING}\": [\"{name}\"]}}}} (or \"all\") and restart the node")

    def describe(self) -> str:
        if self.all:
            return "all engines enabled"
        on = sorted(self.names)
        return f"native/command-line engines enabled: {', '.join(on)}" if on else "native/command-line engines off"
