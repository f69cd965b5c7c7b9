"""wasm2c-a: WebAssembly to C with Debian `wabt`'s wasm2c, compiled with gcc -O2 together with
wabt's runtime (wasm-rt-impl.c) and our WASI layer (wasm2c/wasi.c) into a native executable.

Built once per (module hash, wasm2c version, target) by aot.py; a run execs the executable with
the module's argv[1..], and argv[0], env and preopened dirs in SLW_* variables
(engines._wasm2c_env). wabt has no WASI; a module that imports a WASI call our layer lacks fails
to link, and the build error names the missing call.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wasm2c")
RT_DIRS = ("/usr/share/wabt/wasm2c", "/usr/src/wasm2c")
BUILD_LIMIT = 600.0


def layer_hash() -> str:
    """12 hex digits of our WASI layer's source: a changed layer means new executables."""
    with open(os.path.join(HERE, "wasi.c"), "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()[:12]


def _runtime_dir() -> str | None:
    for d in RT_DIRS:
        if os.path.exists(os.path.join(d, "wasm-rt-impl.c")):
            return d
    return None


def compiler() -> str | None:
    return shutil.which("gcc") or shutil.which("cc") or shutil.which("clang")


def available() -> tuple[bool, str]:
    if shutil.which("wasm2c") is None:
        return False, "`wasm2c` is not on PATH (apt-get install wabt; `make env` does)"
    if _runtime_dir() is None or not os.path.exists("/usr/include/wasm-rt.h"):
        return False, "wabt's wasm2c runtime (wasm-rt-impl.c, wasm-rt.h) is missing (apt-get install wabt)"
    if compiler() is None:
        return False, "no C compiler (apt-get install gcc)"
    return True, f"wasm2c + {compiler()} -O2 + runtimes/benchmarking/wasm2c/wasi.c"


def build(path: str, out: str) -> None:
    """wasm2c `path`, compile, link into the executable `out`; AotError with the tool's words if not."""
    from runtimes.benchmarking.aot import AotError

    ok, why = available()
    if not ok:
        raise AotError(f"engine 'wasm2c-a': {why}")
    rt = str(_runtime_dir())
    with tempfile.TemporaryDirectory(prefix="sl-wasm2c-") as tmp:
        _run_tool(["wasm2c", path, "-n", "m", "-o", os.path.join(tmp, "m.c")], path)
        with open(os.path.join(tmp, "m.h")) as f:
            header = f.read()
        # a module may import no WASI (instantiate then takes no import instance) or export no memory
        wasi_imports = "void Z_m_instantiate(Z_m_instance_t*, struct Z_wasi_snapshot_preview1_instance_t*);" in header
        defines = [f"-DSLW_WASI_IMPORTS={int(wasi_imports)}", f"-DSLW_MEMORY_EXPORT={int('Z_mZ_memory(' in header)}"]
        _run_tool([str(compiler()), "-O2", "-w", *defines, "-I", tmp, "-I", rt, os.path.join(tmp, "m.c"),
                   os.path.join(rt, "wasm-rt-impl.c"), os.path.join(HERE, "wasi.c"), "-o", out, "-lm"], path)


def _run_tool(cmd: list[str], path: str) -> None:
    from runtimes.benchmarking.aot import AotError

    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=BUILD_LIMIT)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise AotError(f"engine 'wasm2c-a': {cmd[0]} on {path} failed: {e}") from None
    if p.returncode != 0:
        tail = " | ".join((p.stderr or p.stdout).strip().splitlines()[-4:])
        raise AotError(f"engine 'wasm2c-a': {os.path.basename(cmd[0])} on {path} failed "
                       f"(exit {p.returncode}): {tail}")
