"""Run an instrumented module on wasmtime and read its counters back (`benchmarking/opcodes`,
`instrumented` profile). Call this only in a run child (never in a worker: see harness.py)."""
from __future__ import annotations

from dataclasses import dataclass

from common.preopen import preopen_pair
from benchmarking.opcodes.instrument import Instrumented, instrument


@dataclass
class CountResult:
    exit_code: int
    error: str | None
    opcodes: list[int]  # 256 dynamic counts by opcode byte
    loops: list[int]  # iterations per loop, code order


def run_counted(ins: Instrumented, argv: list[str], env: dict[str, str] | None = None, dirs: list[str] | None = None,
                stdout: str | None = None, stdin: str | None = None) -> CountResult:
    """Run `_start` of the instrumented module once; counters are read even after exit or trap."""
    import wasmtime

    engine = wasmtime.Engine()
    module = wasmtime.Module(engine, ins.binary)
    store = wasmtime.Store(engine)
    wasi = wasmtime.WasiConfig()
    wasi.argv = argv
    if env:
        wasi.env = list(env.items())
    for d in dirs or []:
        wasi.preopen_dir(*preopen_pair(d))
    if stdout:
        wasi.stdout_file = stdout
    if stdin:
        wasi.stdin_file = stdin
    store.set_wasi(wasi)
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    code, error = 0, None
    instance = linker.instantiate(store, module)
    exports = instance.exports(store)
    try:
        start = exports["_start"]
    except KeyError:
        raise ValueError("module has no _start export (not a WASI command)") from None
    try:
        start(store)  # type: ignore[operator]
    except wasmtime.ExitTrap as e:
        code = e.code
    except wasmtime.Trap as e:
        code, error = 134, f"trap: {e.message}"
    counts = [exports[n].value(store) for n in ins.export_names()]  # type: ignore[union-attr]
    return CountResult(code, error, ins.opcode_histogram(counts), ins.loop_counts(counts))


def count_opcodes(data: bytes, argv: list[str], **kw: object) -> CountResult:
    """Instrument and run in one step (tests, benchmark)."""
    return run_counted(instrument(data), argv, **kw)  # type: ignore[arg-type]


# -- the run child's report to the worker: [exit:i32][nloops:u32][256 x u64][nloops x u32][error utf-8]

def child_target(ins: Instrumented, argv: list[str], env: dict[str, str] | None = None, dirs: list[str] | None = None):  # type: ignore[no-untyped-def]
    """A harness target that runs the instrumented module and writes its counts to the result pipe.
    WASI stdout/stdin are the child's fds 0/1 (the harness points them at /dev/null or a file)."""
    import os
    import struct

    def target(fd: int) -> int:
        r = run_counted(ins, argv, env, dirs, stdout="/dev/stdout", stdin="/dev/stdin")
        blob = struct.pack("<iI", r.exit_code, len(r.loops)) + struct.pack("<256Q", *r.opcodes)
        blob += struct.pack(f"<{len(r.loops)}I", *r.loops) + (r.error or "").encode()
        view = memoryview(blob)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        return 0
    return target


def parse_child_result(blob: bytes) -> CountResult:
    """Inverse of `child_target`'s report; ValueError when truncated."""
    import struct

    if len(blob) < 8 + 2048:
        raise ValueError(f"opcode counter report truncated ({len(blob)} bytes)")
    code, n = struct.unpack_from("<iI", blob)
    opcodes = list(struct.unpack_from("<256Q", blob, 8))
    end = 8 + 2048 + 4 * n
    if len(blob) < end:
        raise ValueError(f"opcode counter report truncated ({len(blob)} of {end} bytes)")
    loops = list(struct.unpack_from(f"<{n}I", blob, 8 + 2048))
    err = blob[end:].decode("utf-8", "replace") or None
    return CountResult(code, err, opcodes, loops)
