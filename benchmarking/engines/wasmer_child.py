"""One benchmark run on the wasmer Python package, exec'd under Python 3.10 by the harness.

Usage:
  python3.10 -m benchmarking.engines.wasmer_child COMPILER FILE [--artifact=A] [--result-fd=N]
                 [--dir=D]... [--env=K=V]... -- ARGV...
  python3.10 -m benchmarking.engines.wasmer_child --compile COMPILER FILE OUT
COMPILER: cranelift | singlepass | llvm. `--artifact` runs a module serialized by `--compile`
(Universal engine) instead of compiling FILE. `--result-fd` gets one JSON line of phase timings
(compile, instantiate, execute in ns). Exit code = the module's exit code (wasmer reports
`proc_exit(n)` as RuntimeError "WASI exited with code: n", even for 0); a trap exits 134.
"""
from __future__ import annotations

import json
import os
import re
import sys
import time
from typing import Any

_EXIT = re.compile(r"WASI exited with code: (\d+)")
TRAP_EXIT = 134


def _store(compiler_name: str) -> Any:
    from wasmer import Store, engine

    if compiler_name == "singlepass":
        from wasmer_compiler_singlepass import Compiler
    elif compiler_name == "llvm":
        from wasmer_compiler_llvm import Compiler
    elif compiler_name == "cranelift":
        from wasmer_compiler_cranelift import Compiler
    else:
        raise SystemExit(f"wasmer_child: unknown compiler {compiler_name!r} (cranelift, singlepass, llvm)")
    return Store(engine.Universal(Compiler))


def compile_to(compiler_name: str, path: str, out: str) -> int:
    from wasmer import Module

    with open(path, "rb") as f:
        blob = Module(_store(compiler_name), f.read()).serialize()
    with open(out, "wb") as f:
        f.write(blob)
    return 0


def main(args: list[str]) -> int:
    if args[:1] == ["--compile"] and len(args) == 4:
        return compile_to(args[1], args[2], args[3])
    if len(args) < 3 or "--" not in args:
        print(__doc__, file=sys.stderr)
        return 2
    compiler_name, path = args[0], args[1]
    sep = args.index("--")
    opts, argv = args[2:sep], args[sep + 1:]
    from wasmer import Instance, Module, wasi

    t0 = time.perf_counter_ns()
    store = _store(compiler_name)
    artifact = next((o[11:] for o in opts if o.startswith("--artifact=")), None)
    result_fd = next((int(o[12:]) for o in opts if o.startswith("--result-fd=")), None)
    if artifact:
        with open(artifact, "rb") as f:
            module = Module.deserialize(store, f.read())
    else:
        with open(path, "rb") as f:
            module = Module(store, f.read())
    t1 = time.perf_counter_ns()
    builder = wasi.StateBuilder(argv[0] if argv else path).arguments(argv[1:])
    for o in opts:
        if o.startswith("--dir="):
            host, mapped, guest = o[6:].partition("::")  # HOST or HOST::GUEST (common.preopen.preopen_pair)
            builder = builder.map_directory(guest if mapped else host, host)
        elif o.startswith("--env="):
            k, _, v = o[6:].partition("=")
            builder = builder.environment(k, v)
    env = builder.finalize()
    version = wasi.get_version(module, strict=False) or wasi.Version.SNAPSHOT1  # None: no WASI imports
    instance = Instance(module, env.generate_import_object(store, version))
    t2 = time.perf_counter_ns()
    code = 0
    try:
        instance.exports._start()
    except RuntimeError as e:
        m = _EXIT.search(str(e))
        if m:
            code = int(m.group(1))
        else:
            print(f"wasmer: {e}", file=sys.stderr)
            code = TRAP_EXIT
    t3 = time.perf_counter_ns()
    sys.stdout.flush()
    if result_fd is not None:
        phases = {"compile_ns": t1 - t0, "instantiate_ns": t2 - t1, "execute_ns": t3 - t2}
        try:
            os.write(result_fd, (json.dumps({"phases": phases}) + "\n").encode())
        except OSError:
            pass
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
