"""AOT artifacts of the benchmark engines: built once per (module hash, engine version, target).

Where a run looks (first match wins):
1. the original's layout beside the module (docs/compatibility.md, "The original engines"): for `.../wasm/dir/m.wasm`,
   `.../aot/<LAYOUT_DIR[engine]>/dir/m.wasm` (name and suffix kept), made by `manage.py aot`, with a sidecar
   `<artifact>.key` (JSON: module sha256, engine version, target) that must match; a stale
   artifact (module rebuilt, engine upgraded) is ignored and said so in the log;
2. the node's cache `~/.cache/silverline/aot/<engine>/<sha256[:32]>-<version>-<target>.<ext>`,
   built here on first use (compilers run in a child: the worker never runs wasm).
Artifacts are trusted native code: the cache is private (0700) and written atomically.
"""
from __future__ import annotations

import json
import logging
import os
import platform
import subprocess
import tempfile

from runtimes.benchmarking import engines, harness

log = logging.getLogger("rt.benchmarking")

EXT = {"wasmtime-a": "cwasm", "wasmtime-a-b": "cwasm", "wasmtime-cli-a": "cwasm", "wasmer-a-cl": "wasmu",
       "wasmer-a-sp": "wasmu", "wasmer-a-ll": "wasmu", "wasm2c-a": "exe"}
# the directory under aot/ per engine: the original's names where they correspond (docs/compatibility.md, "The original engines")
LAYOUT_DIR = {"wasmtime-a": "wasmtime", "wasmtime-a-b": "wasmtime-winch", "wasmtime-cli-a": "wasmtime-cli",
              "wasmer-a-cl": "wasmer-cranelift", "wasmer-a-sp": "wasmer-singlepass", "wasmer-a-ll": "wasmer-llvm",
              "wasm2c-a": "wasm2c"}
COMPILE_LIMIT = 600.0


class AotError(engines.EngineNotAvailable):
    """An artifact could not be built; the text names the engine, the module and the compiler's words."""


def target() -> str:
    """This node's target: `<machine>-linux` (the only one these compilers build for here)."""
    return f"{platform.machine()}-{platform.system().lower()}"


def aot_engines() -> list[str]:
    return [n for n in EXT]


def key(name: str, path: str) -> dict[str, str]:
    return {"module_sha256": engines.module_hash(path), "engine": name,
            "version": engines.version(name) or "?", "target": target()}


def layout_path(name: str, path: str, root: str | None = None) -> str | None:
    """The original's artifact path for a module under a `wasm/` dir (None when it is not)."""
    parts = os.path.abspath(path).split(os.sep)
    if "wasm" not in parts:
        return None
    i = len(parts) - 1 - parts[::-1].index("wasm")
    base = root or os.sep.join(parts[:i])
    return os.path.join(base, "aot", LAYOUT_DIR.get(name, name), *parts[i + 1:])


def cache_path(name: str, path: str) -> str:
    k = key(name, path)
    v = k["version"].replace("/", "_").replace(" ", "_")
    return os.path.join(engines.AOT_DIR, name, f"{k['module_sha256'][:32]}-{v}-{k['target']}.{EXT[name]}")


def _matches(artifact: str, name: str, path: str) -> bool:
    try:
        with open(artifact + ".key") as f:
            return bool(json.load(f) == key(name, path))
    except (OSError, ValueError):
        return False


def artifact(name: str, path: str) -> str:
    """The artifact of `path` for AOT engine `name`: the layout's when it matches, else the cache's
    (built now when missing). AotError when the compiler fails."""
    name = engines.resolve(name)
    lay = layout_path(name, path)
    if lay and os.path.exists(lay):
        if _matches(lay, name, path):
            return lay
        log.warning("ignoring stale AOT artifact %s (module, engine version or target changed): "
                    "rebuild it with `manage.py aot`", lay)
    out = cache_path(name, path)
    if not os.path.exists(out):
        build(name, path, out)
    return out


def build(name: str, path: str, out: str) -> str:
    """Compile `path` for `name` into `out` (atomically) with its `.key` sidecar; return `out`."""
    if name not in EXT:
        raise AotError(f"engine {name!r} has no AOT artifacts (AOT engines: {', '.join(EXT)})")
    os.makedirs(os.path.dirname(out), mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(out), prefix=".tmp-")
    os.close(fd)
    try:
        _compile(name, path, tmp)
        os.chmod(tmp, 0o700 if name == "wasm2c-a" else 0o600)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    with open(out + ".key", "w") as f:
        json.dump(key(name, path), f)
    return out


def _compile(name: str, path: str, out: str) -> None:
    if name in ("wasmtime-a", "wasmtime-a-b"):
        jit = "wasmtime-j" if name == "wasmtime-a" else "wasmtime-b"

        def compile_child(_fd: int) -> int:
            import wasmtime

            engine = wasmtime.Engine(engines._wasmtime_config(jit))
            with open(path, "rb") as f:
                blob = wasmtime.Module(engine, f.read()).serialize()
            with open(out, "wb") as f:
                f.write(blob)
            return 0

        r = harness.run(compile_child, limit=COMPILE_LIMIT)
        if r.failed:
            raise AotError(f"engine {name!r}: precompiling {path} failed: {r.describe()}")
        return
    if name == "wasmtime-cli-a":
        _check([str(engines.wasmtime_cli()), "compile", "-o", out, path], name, path)
    elif name.startswith("wasmer-a-"):
        _check([str(engines.python310()), "-m", "runtimes.benchmarking.wasmer_child", "--compile",
                engines._wasmer_compiler(name), path, out], name, path, env=engines._wasmer_env())
    elif name == "wasm2c-a":
        from runtimes.benchmarking import wasm2c
        wasm2c.build(path, out)


def _check(cmd: list[str], name: str, path: str, env: dict[str, str] | None = None) -> None:
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=COMPILE_LIMIT, env=env)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise AotError(f"engine {name!r}: compiling {path} failed: {e}") from None
    if p.returncode != 0:
        tail = (p.stderr or p.stdout).strip().splitlines()[-3:]
        raise AotError(f"engine {name!r}: compiling {path} failed (exit {p.returncode}): {' | '.join(tail)}")
