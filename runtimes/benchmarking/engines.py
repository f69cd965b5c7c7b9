"""Benchmark engines: which engines this node can run, and how one run of each is started.

Embedded engines run in a forked child of the worker (the worker itself never runs wasm):
- `wasmtime`: wasmtime-py, compiled (JIT) in the child at every run;
- `wasmtime-aot`: wasmtime-py, precompiled once (in a child) to `~/.cache/silverline/aot`,
  each run deserializes the artifact;
- `wasmer`, `wasmer-sp`: the wasmer Python package (cranelift / singlepass) exec'd under the
  Python 3.10 of `.venv310` (`python -m runtimes.benchmarking.wasmer_child`): wall time then
  includes that interpreter's start;
- `pywasm`: the pure-Python interpreter (~50,000x slower than wasmtime; for small modules).
Command-line engines use the seed's names and are exec'd when their program is on PATH;
their AOT variants run an artifact next to the module (`prog.aot`, `prog.cwasm`, ...) that
`manage.py aot` makes. `native` execs a native executable built from the same source.
An engine that is not available is an error that names it: never a silent fallback.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import sys
from dataclasses import dataclass, field
from typing import Callable

from runtimes.benchmarking import harness

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_ENGINE = "wasmtime"
AOT_DIR = os.path.join(os.path.expanduser("~"), ".cache", "silverline", "aot")


class EngineNotAvailable(RuntimeError):
    """The requested engine cannot run here; the text names it and says why."""


@dataclass
class Invocation:
    """What one run needs: module path, WASI argv (argv[0] = program name), env, dirs."""
    path: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    dirs: list[str] = field(default_factory=list)


@dataclass
class Prepared:
    """A ready-to-run launcher: a target for a forked child, or an argv to exec."""
    target: harness.ChildTarget | None = None
    exec_argv: list[str] | None = None
    env: dict[str, str] | None = None


# -- embedded engines (child side) -----------------------------------------------------------------

def _wasmtime_child(inv: Invocation, artifact: str | None) -> harness.ChildTarget:
    def target(_fd: int) -> int:
        import wasmtime

        engine = wasmtime.Engine()
        if artifact:
            module = wasmtime.Module.deserialize_file(engine, artifact)
        else:
            module = wasmtime.Module.from_file(engine, inv.path)
        store = wasmtime.Store(engine)
        cfg = wasmtime.WasiConfig()
        cfg.argv = inv.argv
        cfg.env = list(inv.env.items())
        for d in inv.dirs:
            cfg.preopen_dir(d, d)
        cfg.inherit_stdin()
        cfg.inherit_stdout()
        cfg.inherit_stderr()
        store.set_wasi(cfg)
        linker = wasmtime.Linker(engine)
        linker.define_wasi()
        start = linker.instantiate(store, module).exports(store)["_start"]
        try:
            start(store)  # type: ignore[operator]
        except wasmtime.ExitTrap as e:
            return int(e.code)
        return 0
    return target


def _pywasm_child(inv: Invocation) -> harness.ChildTarget:
    def target(_fd: int) -> int:
        import pywasm

        runtime = pywasm.core.Runtime()
        wasi = pywasm.wasi.Preview1(inv.argv, {d: d for d in inv.dirs}, dict(inv.env))
        wasi.bind(runtime)
        inst = runtime.instance_from_file(inv.path)
        return int(wasi.main(runtime, inst))
    return target


def aot_artifact(path: str) -> str:
    """Precompile `path` for the embedded wasmtime (in a child) unless cached; return the artifact."""
    import wasmtime  # nothing runs in this process: compiling happens in a child
    from importlib.metadata import version

    with open(path, "rb") as f:
        data = f.read()
    key = hashlib.sha256(data + version("wasmtime").encode()).hexdigest()[:32]
    out = os.path.join(AOT_DIR, f"{key}.cwasm")
    if os.path.exists(out):
        return out
    os.makedirs(AOT_DIR, mode=0o700, exist_ok=True)

    def compile_child(_fd: int) -> int:
        engine = wasmtime.Engine()
        blob = wasmtime.Module(engine, data).serialize()
        tmp = f"{out}.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
            f.write(blob)
        os.replace(tmp, out)
        return 0

    r = harness.run(compile_child, limit=600)
    if r.failed:
        raise EngineNotAvailable(f"engine 'wasmtime-aot': precompiling {path} failed: {r.describe()}")
    return out


def _python310() -> str | None:
    p = os.path.join(PROJECT_ROOT, ".venv310", "bin", "python")
    return p if os.access(p, os.X_OK) else None


# -- command-line engines (seed names) -------------------------------------------------------------

# name -> (program, argv template, artifact suffix for AOT or None, description)
CLI: dict[str, tuple[str, list[str], str | None, str]] = {
    "iwasm-i": ("iwasm", ["iwasm", "{dirs:--dir={}}", "{env:--env={}}", "{file}", "{args}"], None, "WAMR interpreter"),
    "iwasm-a": ("iwasm", ["iwasm", "{dirs:--dir={}}", "{env:--env={}}", "{file}", "{args}"], ".aot", "WAMR AOT (wamrc artifact)"),
    "wasmer-j-cl": ("wasmer", ["wasmer", "run", "--cranelift", "{dirs:--dir={}}", "{env:--env={}}", "{file}", "--", "{args}"], None, "wasmer JIT, cranelift"),
    "wasmer-a-cl": ("wasmer", ["wasmer", "run", "{dirs:--dir={}}", "{env:--env={}}", "{file}", "--", "{args}"], ".cl.wasmu", "wasmer AOT, cranelift"),
    "wasmer-j-ll": ("wasmer", ["wasmer", "run", "--llvm", "{dirs:--dir={}}", "{env:--env={}}", "{file}", "--", "{args}"], None, "wasmer JIT, LLVM"),
    "wasmer-a-ll": ("wasmer", ["wasmer", "run", "{dirs:--dir={}}", "{env:--env={}}", "{file}", "--", "{args}"], ".ll.wasmu", "wasmer AOT, LLVM"),
    "wasmer-j-sp": ("wasmer", ["wasmer", "run", "--singlepass", "{dirs:--dir={}}", "{env:--env={}}", "{file}", "--", "{args}"], None, "wasmer JIT, singlepass"),
    "wasmedge-i": ("wasmedge", ["wasmedge", "--force-interpreter", "{dirs:--dir={}:{}}", "{env:--env={}}", "{file}", "{args}"], None, "WasmEdge interpreter"),
    "wasmedge-j": ("wasmedge", ["wasmedge", "--enable-jit", "{dirs:--dir={}:{}}", "{env:--env={}}", "{file}", "{args}"], None, "WasmEdge JIT"),
    "wasmedge-a": ("wasmedge", ["wasmedge", "{dirs:--dir={}:{}}", "{env:--env={}}", "{file}", "{args}"], ".so", "WasmEdge AOT (wasmedgec artifact)"),
    "wasmtime-j": ("wasmtime", ["wasmtime", "run", "{dirs:--dir={}}", "{env:--env={}}", "{file}", "{args}"], None, "wasmtime CLI, JIT"),
    "wasmtime-a": ("wasmtime", ["wasmtime", "run", "--allow-precompiled", "{dirs:--dir={}}", "{env:--env={}}", "{file}", "{args}"], ".cwasm", "wasmtime CLI, precompiled"),
    "wasm3-i": ("wasm3", ["wasm3", "{file}", "{args}"], None, "wasm3 interpreter"),
}

EMBEDDED: dict[str, str] = {
    "wasmtime": "wasmtime-py, JIT (compiled in the run child)",
    "wasmtime-aot": "wasmtime-py, precompiled artifact",
    "wasmer": "wasmer-python, cranelift (Python 3.10 worker)",
    "wasmer-sp": "wasmer-python, singlepass (Python 3.10 worker)",
    "pywasm": "pywasm pure-Python interpreter",
    "native": "native executable built from the same source",
}


def all_names() -> list[str]:
    return list(EMBEDDED) + list(CLI)


def _stem(path: str) -> str:
    return path[:-5] if path.endswith(".wasm") else path


def _expand(template: list[str], artifact: str, inv: Invocation) -> list[str]:
    out: list[str] = []
    for t in template:
        if t == "{file}":
            out.append(artifact)
        elif t == "{args}":
            out.extend(inv.argv[1:])
        elif t.startswith("{dirs:"):
            fmt = t[6:-1]
            out.extend(fmt.replace("{}", d) for d in inv.dirs)
        elif t.startswith("{env:"):
            fmt = t[5:-1]
            out.extend(fmt.replace("{}", f"{k}={v}") for k, v in inv.env.items())
        else:
            out.append(t)
    return out


def availability(name: str) -> tuple[bool, str]:
    """(available, why not / what) for one engine name on this node."""
    if name in ("wasmtime", "wasmtime-aot"):
        from importlib.metadata import PackageNotFoundError, version
        try:
            return True, f"wasmtime-py {version('wasmtime')}"
        except PackageNotFoundError:
            return False, "the wasmtime Python package is not installed"
    if name in ("wasmer", "wasmer-sp"):
        py = _python310()
        if py is None:
            return False, "needs .venv310 (Python 3.10 with the wasmer packages)"
        pkg = "wasmer_compiler_singlepass" if name == "wasmer-sp" else "wasmer_compiler_cranelift"
        site = os.path.join(PROJECT_ROOT, ".venv310", "lib", "python3.10", "site-packages")
        if not os.path.isdir(os.path.join(site, pkg)):
            return False, f"{pkg} is not installed in .venv310 (no build for this platform on PyPI?)"
        return True, f"wasmer-python under {py}"
    if name == "pywasm":
        if sys.version_info < (3, 11):
            return False, "pywasm needs Python >= 3.11"
        import importlib.util  # find, not import: the supervisor asks this for the registration

        if importlib.util.find_spec("pywasm") is None:
            return False, "the pywasm package is not installed (pip install pywasm)"
        return True, "pywasm"
    if name == "native":
        return True, "exec of a native executable"
    if name in CLI:
        prog = CLI[name][0]
        where = shutil.which(prog)
        return (True, where) if where else (False, f"`{prog}` is not on PATH")
    return False, f"unknown engine (known: {', '.join(all_names())})"


def prepare(name: str, inv: Invocation, *, wasmer_python: str | None = None) -> Prepared:
    """A launcher for one run of `inv` on engine `name`; EngineNotAvailable when it cannot run.

    Call once per (engine, file, argv) and reuse for repeated runs: AOT compilation happens here.
    """
    ok, why = availability(name)
    if not ok:
        raise EngineNotAvailable(f"engine {name!r} is not available on this node: {why}")
    if name != "native" and not os.path.exists(inv.path):
        raise FileNotFoundError(f"module file {inv.path!r} does not exist")
    if name == "wasmtime":
        return Prepared(target=_wasmtime_child(inv, None))
    if name == "wasmtime-aot":
        return Prepared(target=_wasmtime_child(inv, aot_artifact(inv.path)))
    if name == "pywasm":
        return Prepared(target=_pywasm_child(inv))
    if name in ("wasmer", "wasmer-sp"):
        py = wasmer_python or _python310()
        compiler = "singlepass" if name == "wasmer-sp" else "cranelift"
        argv = [str(py), "-m", "runtimes.benchmarking.wasmer_child", compiler, inv.path]
        argv += [f"--dir={d}" for d in inv.dirs] + [f"--env={k}={v}" for k, v in inv.env.items()] + ["--"] + inv.argv
        env = dict(os.environ)
        env["PYTHONPATH"] = PROJECT_ROOT
        return Prepared(exec_argv=argv, env=env)
    if name == "native":
        exe = native_executable(inv.path)
        return Prepared(exec_argv=[exe] + inv.argv[1:], env={**os.environ, **inv.env})
    prog, template, suffix, _desc = CLI[name]
    artifact = inv.path
    if suffix:
        artifact = _stem(inv.path) + suffix
        if not os.path.exists(artifact):
            raise EngineNotAvailable(f"engine {name!r} needs the precompiled artifact {artifact!r} (make it with `manage.py aot`)")
    if name == "wasm3-i" and (inv.dirs or inv.env):
        raise EngineNotAvailable("engine 'wasm3-i' supports neither preopened dirs nor env")
    return Prepared(exec_argv=_expand(template, artifact, inv))


def native_executable(path: str) -> str:
    """The native executable for `path`: itself when not a .wasm, else `<stem>` or `<stem>.native`."""
    candidates = [path] if not path.endswith(".wasm") else [_stem(path), _stem(path) + ".native"]
    for c in candidates:
        if os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    raise EngineNotAvailable(f"engine 'native': no executable for {path!r} (looked for {', '.join(candidates)})")


def run_once(prep: Prepared, *, limit: float | None, stdout: str | None = None, cpus: list[int] | None = None,
             on_start: Callable[[int], None] | None = None) -> harness.RunResult:
    """One measured run of a prepared launcher."""
    return harness.run(prep.target, exec_argv=prep.exec_argv, env=prep.env, limit=limit, stdout=stdout, cpus=cpus,
                       on_start=on_start)
