"""wasm3-i: the wasm3 interpreter (PyPI `pywasm3` 0.5.0, which has no WASI) under our own WASI
preview1 layer (layer.py).

A trap leaves with exit status 134. Why the name section is stripped before loading: with it,
pywasm3 0.5.0 can resolve `_start` to the wrong function.
"""
from __future__ import annotations

import sys
import time
from typing import Callable

from benchmarking.engines.invocation import write_phases
from benchmarking.engines.wasi.abi import NS
from benchmarking.engines.wasi.layer import SIGNATURES, Wasi

TRAP_EXIT = 134


def strip_custom_sections(data: bytes) -> bytes:
    """The module without custom sections (id 0: the name section among them)."""
    if data[:4] != b"\0asm":
        raise ValueError("not a WebAssembly binary module")
    out = bytearray(data[:8])
    i = 8
    while i < len(data):
        sid = data[i]
        size, shift, j = 0, 0, i + 1
        while True:
            b = data[j]
            size |= (b & 0x7F) << shift
            shift += 7
            j += 1
            if not b & 0x80:
                break
        if sid != 0:
            out += data[i:j + size]
        i = j + size
    return bytes(out)


def available() -> tuple[bool, str]:
    import importlib.util
    if importlib.util.find_spec("wasm3") is None:
        return False, "the pywasm3 package is not installed (run `make env`)"
    return True, "pywasm3 + our WASI layer (benchmarking/engines/wasi/)"


def run(path: str, argv: list[str], env: dict[str, str], dirs: list[str],
        phases: Callable[..., None] | None = None) -> int:
    """Run a WASI module on wasm3 in this process; the exit code (134 for a trap)."""
    import wasm3

    t0 = time.perf_counter_ns()
    with open(path, "rb") as f:
        data = strip_custom_sections(f.read())
    environment = wasm3.Environment()
    runtime = environment.new_runtime(1 << 20)
    module = environment.parse_module(data)
    runtime.load(module)
    t1 = time.perf_counter_ns()
    wasi = Wasi(argv, env, dirs, memory=lambda: runtime.get_memory(0))
    for name, sig in SIGNATURES:
        try:
            module.link_function(NS, name, sig, getattr(wasi, name))
        except RuntimeError:
            pass  # the module does not import it
    start = runtime.find_function("_start")
    t2 = time.perf_counter_ns()
    code = 0
    try:
        start()
    except Exception as e:  # wasm3 reports a host exception (proc_exit) or a trap as RuntimeError
        if wasi.exit_code is not None:
            code = wasi.exit_code
        else:
            sys.stdout.flush()
            sys.stderr.write(f"wasm3: trap: {e}\n")
            code = TRAP_EXIT
    t3 = time.perf_counter_ns()
    if wasi.exit_code is not None:
        code = wasi.exit_code
    if phases is not None:
        phases(compile=t1 - t0, instantiate=t2 - t1, execute=t3 - t2)
    return code


def child_target(path: str, argv: list[str], env: dict[str, str], dirs: list[str]) -> Callable[[int], int]:
    """A harness target: run in the forked child, phases on the result pipe."""
    def target(fd: int) -> int:
        return run(path, argv, env, dirs, phases=lambda **ns: write_phases(fd, **ns))
    return target
