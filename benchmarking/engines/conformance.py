"""One conformance suite for every benchmark engine: the same modules, the same inputs, and the
engine's stdout, files and exit status must equal the reference's (`wasmtime-j`, wasmtime-py).

Cases: our examples (hello, args + env + exit code, stdin, a preopened dir read and written, a
trap), WASI checks of our own (modules/conformance: files and directories, clocks and random,
exit codes, no `..` / symlink escape out of a preopened dir), and compute kernels of different
kinds (integer matmul, recursive calls, a table-driven CRC over memory, float n-body). A trap is
one status whatever the engine prints for it (exit 134 or death by a signal). Cases marked
`sandbox` (escape attempts) count only for engines that claim to be sandboxes; for the others
(native, Node, and wasmer 1.1 and pywasm, which this suite caught following symlinks out of a
preopened dir) what happened is recorded under `not_a_sandbox`.

`check(names)` runs the suite and stores the verdict per engine and version (verdicts.py);
`launch.availability` refuses an engine whose stored verdict for its current version failed, and
`manage.py engines` says why.
"""
from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from benchmarking.engines import launch as engines
from benchmarking.engines.verdicts import save

REFERENCE = "wasmtime-j"
MODULES = os.path.join(engines.PROJECT_ROOT, "build", "modules")
CASE_LIMIT = 120.0


@dataclass
class Case:
    """One module run: argv (argv[0] included), env, stdin text, files to create in a preopened
    dir `D` (argv items "{D}" are replaced by its path), files to compare afterwards."""
    name: str
    module: str                      # path under build/modules, without .wasm
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    stdin: str | None = None
    files: dict[str, str] = field(default_factory=dict)   # created in D before the run
    outside: dict[str, str] = field(default_factory=dict)  # created beside D (escape targets)
    symlinks: dict[str, str] = field(default_factory=dict)  # in D: name -> target ("{OUT}" = beside D)
    dir: bool = False
    sandbox: bool = False            # only for engines that confine modules to their dirs
    normalize: Callable[[str], str] | None = None


def _argv0_any(out: str) -> str:
    """argv[0] differs for native executables (the kernel passes the path); everything else must match."""
    return "\n".join("argv[0]=*" if ln.startswith("argv[0]=") else ln for ln in out.split("\n"))


CASES: list[Case] = [
    Case("hello", "helloworld", ["helloworld"]),
    Case("args-env-exit7", "args", ["args", "7", "two words", ""], env={"A": "1", "EMPTY": "", "X": "a=b"},
         normalize=_argv0_any),
    Case("exit0", "args", ["args", "0"], normalize=_argv0_any),
    Case("exit-code-113", "conformance/wasi_misc", ["wasi_misc", "exit", "113"]),
    Case("stdin", "cat", ["cat"], stdin="line one\nline two\n\u00e9t\u00e9\n"),
    Case("dir-read", "readfile", ["readfile", "{D}/in.txt"], files={"in.txt": "from the host\n"}, dir=True),
    Case("dir-write", "readfile", ["readfile", "{D}/out.txt", "written"], dir=True),
    Case("dir-missing-file", "readfile", ["readfile", "{D}/nope.txt"], dir=True),
    Case("files-and-dirs", "conformance/wasi_fs", ["wasi_fs", "{D}"], files={"a.txt": "alpha\n", "b.txt": "0123456789"},
         dir=True),
    Case("no-escape", "conformance/wasi_fs", ["wasi_fs", "{D}", "escape"], outside={"secret.txt": "secret\n"},
         symlinks={"link": "{OUT}/secret.txt"}, dir=True, sandbox=True),
    Case("clock-random-argv", "conformance/wasi_misc", ["wasi_misc", "misc", "a", "b c"], env={"K": "V"}),
    Case("trap", "trap", ["trap"]),
    Case("kernel-matmul", "conformance/kernels", ["kernels", "matmul", "24"]),
    Case("kernel-calls", "conformance/kernels", ["kernels", "fib", "18"]),
    Case("kernel-crc", "conformance/kernels", ["kernels", "crc", "16384"]),
    Case("kernel-float", "conformance/kernels", ["kernels", "nbody", "200"]),
]


@dataclass
class Outcome:
    stdout: str
    status: str                 # "exit N" | "trap" | "killed (time limit)" | "cannot run: ..."
    files: dict[str, str]

    def differs(self, ref: "Outcome") -> str | None:
        if self.status != ref.status:
            return f"status {self.status!r}, reference {ref.status!r}"
        if self.stdout != ref.stdout:
            return f"stdout {_clip(self.stdout)!r}, reference {_clip(ref.stdout)!r}"
        if self.files != ref.files:
            return f"files {self.files!r}, reference {ref.files!r}"
        return None


def _clip(s: str, n: int = 120) -> str:
    return s if len(s) <= n else s[:n] + "..."


def _status(r: Any) -> str:
    if r.killed:
        return "killed (time limit)"
    if r.signal is not None or r.exit_code == engines.TRAP_EXIT:
        return "trap"
    return f"exit {r.exit_code}"


def module_path(case: Case) -> str:
    return os.path.join(MODULES, case.module + ".wasm")


def run_case(engine: str, case: Case, limit: float = CASE_LIMIT) -> Outcome:
    """Run one case on one engine in a fresh temporary directory; never raises for engine faults."""
    with tempfile.TemporaryDirectory(prefix="sl-conf-") as tmp:
        d = os.path.join(tmp, "d")
        os.mkdir(d)
        for name, text in case.files.items():
            with open(os.path.join(d, name), "w") as f:
                f.write(text)
        for name, text in case.outside.items():
            with open(os.path.join(tmp, name), "w") as f:
                f.write(text)
        for name, target in case.symlinks.items():
            os.symlink(target.replace("{OUT}", tmp), os.path.join(d, name))
        argv = [a.replace("{D}", d) for a in case.argv]
        out = os.path.join(tmp, "stdout")
        stdin = None
        if case.stdin is not None:
            stdin = os.path.join(tmp, "stdin")
            with open(stdin, "w") as f:
                f.write(case.stdin)
        try:
            prep = engines.prepare(engine, engines.Invocation(module_path(case), argv, dict(case.env),
                                                              [d] if case.dir else []))
            r = engines.run_once(prep, limit=limit, stdout=out, stdin=stdin)
        except (engines.EngineNotAvailable, OSError) as e:
            return Outcome("", f"cannot run: {e}", {})
        text = ""
        if os.path.exists(out):
            with open(out, encoding="utf-8", errors="replace") as f:
                text = f.read()
        # stderr shares the file: keep stdout lines only up to a trap message of the engine
        text = text.replace(d, "{D}")
        files = {}
        for name in sorted(os.listdir(d)):
            p = os.path.join(d, name)
            if os.path.isfile(p) and not os.path.islink(p):
                with open(p, encoding="utf-8", errors="replace") as f:
                    files[name] = f.read()
        status = _status(r)
        if status == "trap":
            text = _before_trap_message(text)
        if case.normalize:
            text = case.normalize(text)
        return Outcome(text, status, files)


def _before_trap_message(text: str) -> str:
    """The module's own output of a trapped run: engines print their trap report after it."""
    for marker in ("wasm trap", "Error: failed to run", "wasmer:", "wasm3:", "==== wasm backtrace", "pywasm:",
                   "wasm2c trap", "RuntimeError"):
        i = text.find(marker)
        if i >= 0:
            text = text[:i]
    return text


def applicable(engine: str, case: Case) -> bool:
    return not case.sandbox or engines.info(engine).sandboxed


def check_engine(engine: str, reference: dict[str, Outcome], cases: list[Case] | None = None) -> dict[str, Any]:
    """Run every case on `engine`, compare with the reference outcomes; the verdict as a dict."""
    failures: dict[str, str] = {}
    escapes: dict[str, str] = {}  # sandbox cases failed by an engine that does not claim to be one
    t0 = time.monotonic()
    for case in cases or CASES:
        diff = run_case(engine, case).differs(reference[case.name])
        if diff and applicable(engine, case):
            failures[case.name] = diff
        elif diff:
            escapes[case.name] = diff
    why = "; ".join(f"{k}: {v}" for k, v in failures.items())
    return {"ok": not failures, "why": why, "failures": failures, "not_a_sandbox": escapes,
            "version": engines.version(engine) or "?", "checked_at": time.time(),
            "seconds": round(time.monotonic() - t0, 2)}


def reference_outcomes(cases: list[Case] | None = None) -> dict[str, Outcome]:
    ref = {c.name: run_case(REFERENCE, c) for c in cases or CASES}
    broken = [f"{k}: {o.status}" for k, o in ref.items() if o.status.startswith(("cannot", "killed"))]
    if broken:
        raise engines.EngineNotAvailable(f"the reference engine {REFERENCE} cannot run the suite: {'; '.join(broken)} "
                                         f"(are the modules built? `make modules`)")
    return ref


def check(names: list[str] | None = None, *, store: bool = True,
          progress: Callable[[str, dict[str, Any]], None] | None = None) -> dict[str, dict[str, Any]]:
    """Run the suite on `names` (default: every installed engine); store and return the verdicts."""
    missing = [c.module for c in CASES if not os.path.exists(module_path(c))]
    if missing:
        raise FileNotFoundError(f"conformance modules missing: {', '.join(sorted(set(missing)))} (run `make modules`)")
    todo = [engines.resolve(n) for n in names] if names else [n for n in engines.all_names()
                                                                  if engines.availability(n, conformance=False)[0]]
    ref = reference_outcomes()
    verdicts: dict[str, dict[str, Any]] = {}
    for n in todo:
        ok, why = engines.availability(n, conformance=False)
        if not ok:
            verdicts[n] = {"ok": False, "why": f"not installed: {why}", "failures": {}, "version": None,
                           "checked_at": time.time(), "installed": False}
        else:
            verdicts[n] = check_engine(n, ref)
        if progress is not None:
            progress(n, verdicts[n])
    if store:
        save({k: v for k, v in verdicts.items() if v.get("installed", True)})
    return verdicts
