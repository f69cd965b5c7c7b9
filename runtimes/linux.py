"""`linux` (alias `runtime-linux`): the seed's full WebAssembly runtime, on wasmtime.

Up to 128 modules at once, each on its own thread (wasm runs with the GIL released): argv, env,
preopened dirs, WASI, stdin/stdout on `{realm}/proc/stdio/{uuid}`, channels + loopback +
get_uuid through the `silverline` host API, CPU budgets (`args.resources`, epoch throttling),
a memory limit per module, `fault_crash` restart/ignore, `profile:deployed`. Delete interrupts a
running module within milliseconds (wasmtime epochs).

Settings (config.json `"runtimes": {"linux": {...}}`):
  module_root   path or list of paths where `file` and `args.dirs` are looked up (default:
                <project>/build/modules only); paths outside them are refused
                (runtimes/files.py: one policy for every runtime)
  memory_limit  bytes of linear memory per module (default 256 MiB)
  memory_total  bytes of linear memory all its modules may reserve together (default half the RAM;
                a create past it is refused; runtimes/wasm/limits.py)
  file_bytes    the largest file a module may write (default 256 MiB; RLIMIT_FSIZE, the write fails)
  cache_dir     compile cache directory (default ~/.cache/silverline/wasmtime; "" = memory only)
  max_restarts  fault_crash restarts before giving up (default 5); restart_backoff (s, default 0.5)
"""
from __future__ import annotations

import importlib.metadata
import os
import platform
import threading
from typing import Any, ClassVar, Dict, List, Optional

from runtimes.base import Module, Runtime
from runtimes.engines.api import DEFAULT_MEMORY_LIMIT

WASM_PAGE_SIZE = 65536  # bytes of a WebAssembly linear memory page (the original registers `page_size`)

DEFAULT_CACHE_DIR = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
                                 "silverline", "wasmtime")


class WasmRuntime(Runtime):
    """Shared logic of the WebAssembly runtimes: one ModuleHost per module slot."""

    ENGINE: ClassVar[str] = "wasmtime"
    FEATURES: ClassVar[Dict[str, Any]] = {}
    PAGE_SIZE = WASM_PAGE_SIZE

    @classmethod
    def aot_target(cls, settings: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        """The compile cache's artifacts: this engine, its version, this machine's triple (the
        cache key holds the same; a mismatch recompiles). No engine import here (supervisor side)."""
        try:
            version: Optional[str] = importlib.metadata.version(cls.ENGINE)
        except importlib.metadata.PackageNotFoundError:
            version = None  # wasmer lives in the Python 3.10 environment
        return {"engine": cls.ENGINE, "version": version, "triple": f"{platform.machine()}-unknown-linux-gnu"}

    def setup(self) -> None:
        from runtimes.engines import open_engine  # engines load in the worker, never in the supervisor
        from runtimes.files import ModuleFiles
        from runtimes.wasm.host import Features
        s = self.config.settings or {}
        self.features = Features(**self.FEATURES)
        if "max_restarts" in s:
            self.features.max_restarts = int(s["max_restarts"])
        if "restart_backoff" in s:
            self.features.restart_backoff = float(s["restart_backoff"])
        self.files = ModuleFiles(s.get("module_root"))
        self.memory_limit: Optional[int] = int(s.get("memory_limit", DEFAULT_MEMORY_LIMIT))
        from runtimes.wasm.limits import Limits
        self.limits = Limits(s, self.memory_limit)
        self.limits.apply_file_size()
        cache_dir = s.get("cache_dir", DEFAULT_CACHE_DIR)
        self.engine = open_engine(self.ENGINE, **self.engine_settings(cache_dir or None))
        self.hosts: Dict[int, Any] = {}
        self.hosts_lock = threading.Lock()
        self.log_rt.info("%s: engine %s, module roots %s, memory limit %s bytes per module, %s in all, files up to %s bytes",
                         self.config.name, self.ENGINE, self.files.roots, self.memory_limit, self.limits.memory_total,
                         self.limits.file_bytes)

    def engine_settings(self, cache_dir: Optional[str]) -> Dict[str, Any]:
        return {"cache_dir": cache_dir}

    def on_create(self, index: int, module: Module) -> None:
        from runtimes.files import ModuleFileError
        from runtimes.wasm.host import BadArgs, ModuleHost, parse_args
        try:
            args = parse_args(module.create, self.features)
            args.dirs = self.files.preopens(args.dirs)
        except (BadArgs, ModuleFileError) as e:
            self.send_exited(index, "error", None, f"module {module.name}: {e}")
            return
        with self.hosts_lock:
            full = self.limits.refuse(len(self.hosts))
        if full is not None:
            self.send_exited(index, "error", None, f"module {module.name}: {full}")
            return
        host = ModuleHost(self, index, module.uuid, module.name, args, self.engine, self.files, self.features,
                          self.memory_limit, self._gone)
        with self.hosts_lock:
            self.hosts[index] = host
        host.start()

    def _gone(self, index: int, host: Any) -> None:
        with self.hosts_lock:
            if self.hosts.get(index) is host:
                del self.hosts[index]

    def on_delete(self, index: int) -> None:
        with self.hosts_lock:
            host = self.hosts.get(index)
        if host is None:  # not started (bad args) or already ending: its exited is on the way
            return
        host.stop("deleted")

    def on_channel_message(self, index: int, fd: int, payload: bytes) -> None:
        host = self.hosts.get(index)
        if host is not None:
            host.on_message(fd, payload)

    def on_stop(self) -> None:
        with self.hosts_lock:
            hosts = list(self.hosts.values())
        for h in hosts:
            h.stop("killed")
        deadline = 3.0
        import time
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            with self.hosts_lock:
                if not self.hosts:
                    break
            time.sleep(0.01)

    def children(self) -> List[Dict[str, Any]]:
        with self.hosts_lock:
            hosts = list(self.hosts.values())
        return [h.child_info() for h in hosts]


class LinuxRuntime(WasmRuntime):
    """The `linux` runtime (see the module docstring)."""

    RUNTIME_TYPE = "linux"
    MAX_NMODULES = 128
    # the original's names first (docs/compatibility.md, "The original runtimes"), then ours for what it adds
    APIS = ["wasm", "wasi", "channels", "stdio:out", "profile:deployed", "stdio:in", "dirs", "stdin", "stdout",
            "loopback", "get_uuid", "resources", "fault_crash"]
    DESCRIPTION = "WebAssembly modules on wasmtime: channels, dirs, stdin/stdout, resources, fault_crash"
    ENGINE = "wasmtime"
    FEATURES = {}

    @classmethod
    def registration(cls, settings: Dict[str, Any]) -> Dict[str, Any]:
        return {"metadata": {"engine": "wasmtime", "max_memory_per_module": int(settings.get("memory_limit", DEFAULT_MEMORY_LIMIT))}}
