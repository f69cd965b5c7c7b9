"""The benchmarking test modules, built from runtimes/benchmarking/testdata (WAT through wasmtime's
text parser, C through clang --target=wasm32-wasi), and the start.py arguments of a benchmarking
test node. The session fixtures `wasm` and `wasm_root` (tests/conftest.py) build them once."""
from __future__ import annotations

import os
import shutil
import subprocess

TESTDATA = os.path.join(os.path.dirname(__file__), "..", "runtimes", "benchmarking", "testdata")


def build_modules(out: str) -> dict[str, str]:
    """Build every testdata source into `out`; return name -> path (e.g. 'loops' -> out/loops.wasm)."""
    import wasmtime

    paths: dict[str, str] = {}
    for fn in sorted(os.listdir(TESTDATA)):
        stem, ext = os.path.splitext(fn)
        src = os.path.join(TESTDATA, fn)
        dst = os.path.join(out, stem + ".wasm")
        if ext == ".wat":
            with open(src) as f, open(dst, "wb") as g:
                g.write(wasmtime.wat2wasm(f.read()))
        elif ext == ".c":
            clang = shutil.which("clang")
            if clang is None:
                raise RuntimeError("clang is not installed: apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32")
            subprocess.run([clang, "--target=wasm32-wasi", "-O2", "-Wl,--strip-all", src, "-o", dst], check=True)
            # a native build of the same source, for the `native` engine
            subprocess.run([clang, "-O2", src, "-o", os.path.join(out, stem)], check=True)
        else:
            continue
        paths[stem] = dst
    return paths



def node_args(tmp_path: object, roots: list[str], enable_engines: list[str] | str | None = None) -> list[str]:
    """start.py arguments for a benchmarking test node: its module roots, and (via a config file
    in `tmp_path`) the native/command-line engines it enables (benchmarking/engines/gate.py)."""
    import json

    args = ["--module-root", ":".join(roots)]
    if enable_engines is not None:
        cfg = os.path.join(str(tmp_path), "node-config.json")
        with open(cfg, "w") as f:
            json.dump({"runtimes": {"benchmarking": {"enable_engines": enable_engines}}}, f)
        args += ["-c", cfg]
    return args
