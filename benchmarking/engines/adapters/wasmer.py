"""wasmer-python 1.1 (`wasmer-j-cl`/`-sp`/`-ll`, `wasmer-a-*`): its builds stop at CPython 3.10, so a
run execs `python3.10 -m benchmarking.engines.wasmer_child` under the Python 3.10 that has wasmer
(common/python310.py: `.venv310` from `make env` first; the child reports phases on fd RESULT_FD);
AOT engines serialize once (Universal engine) and deserialize per run."""
from __future__ import annotations

import os

from benchmarking.engines.adapters.base import Adapter, run_compiler
from benchmarking.engines.invocation import PROJECT_ROOT, RESULT_FD, Invocation, Prepared
from common.python310 import find_with, site_packages

CHILD = "benchmarking.engines.wasmer_child"


def python310() -> str | None:
    """The Python 3.10 whose site-packages has wasmer (no process started; cached per process)."""
    return find_with(("wasmer",))


def _site310() -> str:
    py = python310()
    return site_packages(py) if py else ""


def _dist_version_in(site: str, dist: str) -> str | None:
    if not os.path.isdir(site):
        return None
    prefix = dist.replace("-", "_").lower() + "-"
    for d in os.listdir(site):
        if d.lower().startswith(prefix) and d.endswith(".dist-info"):
            return d[len(prefix):-len(".dist-info")]
    return None


def compiler(name: str) -> str:
    return {"cl": "cranelift", "sp": "singlepass", "ll": "llvm"}[name.rsplit("-", 1)[1]]


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": PROJECT_ROOT}


class Wasmer(Adapter):
    family = "wasmer"
    ext = {"wasmer-a-cl": "wasmu", "wasmer-a-sp": "wasmu", "wasmer-a-ll": "wasmu"}
    layout_dir = {"wasmer-a-cl": "wasmer-cranelift", "wasmer-a-sp": "wasmer-singlepass", "wasmer-a-ll": "wasmer-llvm"}

    def installed(self, name: str) -> tuple[bool, str]:
        py = python310()
        if py is None:
            return False, "needs a Python 3.10 with the wasmer packages (.venv310): install python3.10, run `make env`"
        pkg = f"wasmer_compiler_{compiler(name)}"
        if not os.path.isdir(os.path.join(_site310(), pkg)):
            return False, f"{pkg} is not installed beside wasmer in {_site310()} (run `make env`)"
        return True, f"wasmer-python under {py}"

    def version(self, name: str) -> str | None:
        w = _dist_version_in(_site310(), "wasmer")
        c = _dist_version_in(_site310(), f"wasmer_compiler_{compiler(name)}")
        return f"{w}+{compiler(name)}-{c}" if w and c else None

    def prepare(self, name: str, inv: Invocation, artifact: str | None) -> Prepared:
        argv = [str(python310()), "-m", CHILD, compiler(name), inv.path, f"--result-fd={RESULT_FD}"]
        if artifact:
            argv.append(f"--artifact={artifact}")
        argv += [f"--dir={d}" for d in inv.dirs] + [f"--env={k}={v}" for k, v in inv.env.items()] + ["--"] + inv.argv
        return Prepared(exec_argv=argv, env=_env(), result_fd=True)

    def compile(self, name: str, path: str, out: str) -> None:
        run_compiler([str(python310()), "-m", CHILD, "--compile", compiler(name), path, out], name, path, env=_env())
