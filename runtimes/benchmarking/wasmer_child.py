"""One benchmark run on the wasmer Python package, exec'd under Python 3.10 by the harness.

Usage: python3.10 -m runtimes.benchmarking.wasmer_child cranelift|singlepass FILE [--dir=D]... [--env=K=V]... -- ARGV...
Exit code = the module's exit code (wasmer reports `proc_exit(n)` as RuntimeError "WASI exited
with code: n", even for 0). Stdout/stderr are the process's own (the harness redirects them).
"""
from __future__ import annotations

import re
import sys

_EXIT = re.compile(r"WASI exited with code: (\d+)")


def main(args: list[str]) -> int:
    if len(args) < 3 or "--" not in args:
        print(__doc__, file=sys.stderr)
        return 2
    compiler_name, path = args[0], args[1]
    sep = args.index("--")
    opts, argv = args[2:sep], args[sep + 1:]
    from wasmer import Instance, Module, Store, engine, wasi

    if compiler_name == "singlepass":
        from wasmer_compiler_singlepass import Compiler
    else:
        from wasmer_compiler_cranelift import Compiler
    store = Store(engine.Universal(Compiler))
    with open(path, "rb") as f:
        module = Module(store, f.read())
    builder = wasi.StateBuilder(argv[0] if argv else path).arguments(argv[1:])
    for o in opts:
        if o.startswith("--dir="):
            builder = builder.map_directory(o[6:], o[6:])
        elif o.startswith("--env="):
            k, _, v = o[6:].partition("=")
            builder = builder.environment(k, v)
    env = builder.finalize()
    instance = Instance(module, env.generate_import_object(store, wasi.get_version(module, strict=True)))
    try:
        instance.exports._start()
    except RuntimeError as e:
        m = _EXIT.search(str(e))
        if m:
            return int(m.group(1))
        print(f"wasmer: {e}", file=sys.stderr)
        return 134
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
