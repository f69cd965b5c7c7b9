"""Run one WebAssembly module in this process, like an engine's command line:

    python -m runtimes.engines.run [--engine E] [--env K=V]... [--dir D]... [--memory BYTES]
                                   [--time S] [--stdin FILE] [--json] FILE [ARG...]

The module's stdout/stderr go to ours, unbuffered. With --json, the RunResult is printed as one
JSON object on the last line of stderr. Exit status: the module's exit code, else 134 (trap),
137 (limit), 130 (interrupted), 2 (could not load/start).

It is the process-per-module baseline of bench/modules.py (the seed's minimal runtime spawned
an engine per module) and how tests run the wasmer engine under Python 3.10.
Python 3.10 compatible (argparse, not docopt: the 3.10 venv has only the engine's packages).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Callable, List, Optional

from runtimes.engines import ERROR, EXITED, INTERRUPTED, LIMIT, EngineError, Limits, RunResult, RunSpec
from runtimes.engines import open_engine

EXIT_STATUS = {ERROR: 2, INTERRUPTED: 130, LIMIT: 137}


def _write(fd: int) -> Callable[[bytes], None]:
    def sink(data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    return sink


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m runtimes.engines.run", description=__doc__.split("\n\n")[0])
    p.add_argument("--engine", default="wasmtime", help="wasmtime (default) or wasmer")
    p.add_argument("--env", action="append", default=[], metavar="K=V")
    p.add_argument("--dir", action="append", default=[], metavar="DIR", help="preopen DIR at the same path")
    p.add_argument("--memory", type=int, default=None, metavar="BYTES", help="linear memory limit")
    p.add_argument("--time", type=float, default=None, metavar="S", help="wall time limit")
    p.add_argument("--stdin", default=None, metavar="FILE")
    p.add_argument("--cache-dir", default=None, help="compile cache directory (default: memory only)")
    p.add_argument("--json", action="store_true", help="print the result as JSON on stderr's last line")
    p.add_argument("file")
    p.add_argument("args", nargs=argparse.REMAINDER)
    a = p.parse_args(argv)
    try:
        engine = open_engine(a.engine, cache_dir=a.cache_dir)
        module = engine.load(a.file)
    except EngineError as e:
        result = RunResult(ERROR, message=str(e))
    else:
        spec = RunSpec(argv=[os.path.basename(a.file)] + a.args, env=a.env, dirs=a.dir,
                       stdout=_write(1), stderr=_write(2), stdin=a.stdin,
                       limits=Limits(memory_bytes=a.memory, time_s=a.time))
        result = engine.run(module, spec)
        engine.close()
    if a.json:
        sys.stderr.write(json.dumps(result.to_dict()) + "\n")
    elif result.reason != EXITED:
        sys.stderr.write(f"{result.reason}: {result.message}\n")
    sys.stderr.flush()
    if result.reason == EXITED:
        return int(result.code or 0) & 0xFF
    return EXIT_STATUS.get(result.reason, 134)


if __name__ == "__main__":
    status = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # skip interpreter finalization: wasmtime's WASI threads can panic ("panic in a function
    # that cannot unwind") while Python tears down under them
    os._exit(status)
