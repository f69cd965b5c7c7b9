"""Child process of `manage.py aot`: precompile with the wasmtime Python package for one triple.

Run as `python -m cluster.aot_wasmtime TRIPLE OPT_LEVEL IN OUT [IN OUT ...]`; prints one JSON
line per file. A separate process because the PyPI wheel is built with only some code
generators (here: the host's and pulley) and *aborts the process* (a Rust panic, not an
exception) when an Engine is made for another target.
"""
from __future__ import annotations

import json
import os
import sys

import wasmtime

# Must match the engine that loads the artifact (runtimes/engines/wasmtime_engine.py):
# wasmtime refuses a serialized module whose engine settings differ.
EPOCH_INTERRUPTION = True


def engine_for(triple: str, opt_level: str) -> wasmtime.Engine:
    config = wasmtime.Config()
    if triple:
        config.target = triple
    config.epoch_interruption = EPOCH_INTERRUPTION
    config.cranelift_opt_level = opt_level
    return wasmtime.Engine(config)


def main(argv: list[str]) -> int:
    triple, opt_level, pairs = argv[0], argv[1], argv[2:]
    engine = engine_for(triple, opt_level)
    failed = 0
    for src, out in zip(pairs[::2], pairs[1::2]):
        try:
            with open(src, "rb") as f:
                module = wasmtime.Module(engine, f.read())
            data = bytes(module.serialize())
            os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
            tmp = out + ".tmp"
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, out)
            print(json.dumps({"src": src, "out": out, "bytes": len(data)}), flush=True)
        except (OSError, wasmtime.WasmtimeError) as e:
            failed += 1
            msg = e.strerror if isinstance(e, OSError) and e.strerror else str(e).strip().splitlines()[0]
            print(json.dumps({"src": src, "error": msg}), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
