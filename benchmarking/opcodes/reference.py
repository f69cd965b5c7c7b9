"""The independent reference for opcode counts: the pure-Python `pywasm` interpreter with a
counting hook on its instruction dispatch.

pywasm calls `pywasm.log.debugln('    ', instr)` once for every instruction it dispatches; the
hook replaces that function while the module's `_start` runs (instantiation is not counted) and
bins each instruction by its first byte (pywasm numbers a prefixed instruction by its prefix byte followed by the LEB128 bytes of its
sub-opcode, e.g. `0xFC0A`, `0xFDAE01`).
pywasm never dispatches `end` / `else`, which matches our counting rules. It is ~50,000x slower
than wasmtime: for tests and the benchmark only. pywasm needs Python >= 3.11 (it uses `match`).
"""
from __future__ import annotations

import contextlib
import io
import os
import sys
from typing import Any, Iterator


@contextlib.contextmanager
def _counting(hist: list[int]) -> Iterator[None]:
    import pywasm

    inst_type = pywasm.core.Inst
    old = pywasm.log.debugln

    def hook(*args: Any) -> None:
        if len(args) == 2 and type(args[1]) is inst_type:
            op = args[1].opcode
            while op > 0xFF:  # prefix byte + LEB128 sub-opcode bytes: keep the prefix
                op >>= 8
            hist[op] += 1

    pywasm.log.debugln = hook
    try:
        yield
    finally:
        pywasm.log.debugln = old


def _answer_stdio_like_wasmtime(wasi: Any) -> None:
    """Make stdout/stderr answer as wasmtime does: `fd_fdstat_get` says filetype unknown with
    right fd_write (not "character device"), `fd_write` writes the first non-empty iovec only.
    wasi-libc's behaviour depends on both answers, so otherwise the two hosts would run
    different (each correctly counted) code paths. Only host answers change, never counting."""
    original = wasi.fd_fdstat_get

    def fdstat(m: Any, args: list[int]) -> list[int]:
        if args[0] in (1, 2):
            mems = m.store.mems[m.stack.frame[-1].module.mems[0]]
            mems.put_u8(args[1], 0)
            mems.put_u16(args[1] + 2, 0)
            mems.put_u64(args[1] + 8, 0x40)
            mems.put_u64(args[1] + 16, 0x40)
            return [0]
        return original(m, args)  # type: ignore[no-any-return]

    def fd_write(m: Any, args: list[int]) -> list[int]:
        # wasmtime writes only the first non-empty iovec per call (a legal short write);
        # wasi-libc then loops, so the reference must answer the same way
        if args[0] not in (1, 2):
            return original_write(m, args)  # type: ignore[no-any-return]
        mems = m.store.mems[m.stack.frame[-1].module.mems[0]]
        size = 0
        for i in range(args[2]):
            n = mems.get_u32(args[1] + 8 * i + 4)
            if n:
                os.write(wasi.fd[args[0]].host_fd, mems.get(mems.get_u32(args[1] + 8 * i), n))
                size = n
                break
        mems.put_u32(args[3], size)
        return [0]

    original_write = wasi.fd_write
    wasi.fd_fdstat_get = fdstat
    wasi.fd_write = fd_write


def reference_counts(data: bytes, argv: list[str] | None = None, env: dict[str, str] | None = None) -> tuple[int, list[int]]:
    """Run `_start` of the WASI module `data` under pywasm; return (exit code, 256 counts)."""
    import pywasm

    hist = [0] * 256
    runtime = pywasm.core.Runtime()
    # pywasm takes WASI stdio from sys.std*.fileno(): give it /dev/null (and real fds under pytest)
    saved = sys.stdin, sys.stdout, sys.stderr
    with open(os.devnull, "r") as null_in, open(os.devnull, "w") as null_out:
        sys.stdin, sys.stdout, sys.stderr = null_in, null_out, null_out
        try:
            wasi = pywasm.wasi.Preview1(["module.wasm"] + list(argv or []), {}, dict(env or {}))
        finally:
            sys.stdin, sys.stdout, sys.stderr = saved
        _answer_stdio_like_wasmtime(wasi)
        wasi.bind(runtime)
        module = pywasm.core.ModuleDesc.from_reader(io.BytesIO(data))
        inst = runtime.instance(module)
        with _counting(hist):
            code = wasi.main(runtime, inst)
    return int(code), hist
