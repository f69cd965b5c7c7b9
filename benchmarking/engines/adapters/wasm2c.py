"""wasm2c-a: WebAssembly to C with Debian `wabt`'s wasm2c, compiled with gcc -O2 together with
wabt's runtime (wasm-rt-impl.c) and our WASI layer in C (wasi/wasi.c) into a native executable.

Built once per (module hash, wasm2c version, target) by aot.py; a run execs the executable with
the module's argv[1..], and argv[0], env and preopened dirs in SLW_* variables
(`env`). wabt has no WASI; a module that imports a WASI call our layer lacks fails
to link, and the build error names the missing call.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile

from benchmarking.engines.adapters.base import Adapter, AotError, program_version
from benchmarking.engines.invocation import Invocation, Prepared
from common.preopen import preopen_pair

LAYER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "wasi", "wasi.c")
RT_DIRS = ("/usr/share/wabt/wasm2c", "/usr/src/wasm2c")
BUILD_LIMIT = 600.0


def layer_hash() -> str:
    """12 hex digits of our WASI layer's source: a changed layer means new executables."""
    with open(LAYER, "rb") as f:
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
    return True, f"wasm2c + {compiler()} -O2 + benchmarking/engines/wasi/wasi.c"


def build(path: str, out: str) -> None:
    """wasm2c `path`, compile, link into the executable `out`; AotError with the tool's words if not."""
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
                   os.path.join(rt, "wasm-rt-impl.c"), LAYER, "-o", out, "-lm"], path)


def _run_tool(cmd: list[str], path: str) -> None:
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=BUILD_LIMIT)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise AotError(f"engine 'wasm2c-a': {cmd[0]} on {path} failed: {e}") from None
    if p.returncode != 0:
        tail = " | ".join((p.stderr or p.stdout).strip().splitlines()[-4:])
        raise AotError(f"engine 'wasm2c-a': {os.path.basename(cmd[0])} on {path} failed "
                       f"(exit {p.returncode}): {tail}")


def env(inv: Invocation) -> dict[str, str]:
    """A wasm2c executable takes its WASI argv0, env and preopens from SLW_* variables (wasi/wasi.c)."""
    out = {"SLW_ARGV0": inv.argv[0] if inv.argv else "module", "SLW_NENV": str(len(inv.env)),
           "SLW_NDIRS": str(len(inv.dirs))}
    for i, (k, v) in enumerate(inv.env.items()):
        out[f"SLW_ENV{i}"] = f"{k}={v}"
    for i, d in enumerate(inv.dirs):
        out[f"SLW_DIR{i}"], out[f"SLW_GUEST{i}"] = preopen_pair(d)
    return out


class Wasm2c(Adapter):
    family = "wasm2c"
    ext = {"wasm2c-a": "exe"}
    layout_dir = {"wasm2c-a": "wasm2c"}

    def installed(self, name: str) -> tuple[bool, str]:
        return available()

    def version(self, name: str) -> str | None:
        """wasm2c's version and our WASI layer's hash: the executables link the layer."""
        w = shutil.which("wasm2c")
        v = program_version((w, "--version")) if w else None
        return f"{v}+wasi.c-{layer_hash()}" if v else None

    def prepare(self, name: str, inv: Invocation, artifact: str | None) -> Prepared:
        return Prepared(exec_argv=[str(artifact)] + inv.argv[1:], env=env(inv))

    def compile(self, name: str, path: str, out: str) -> None:
        build(path, out)
