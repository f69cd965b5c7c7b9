"""Fixtures of the runtime tests: the example modules (built by `make -C modules` once per
session) and `isolated`, which runs wasm outside the pytest process.

Why isolate: once a process has run a WASI program, WASI I/O in children it forks hangs
(docs/design.md, "Runtimes and engines"). Other tests fork workers from the pytest process, so wasm never runs in it: engine
cases (functions of tests/runtimes/engine_cases.py) run in a fresh interpreter each.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any, Callable

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODULES = os.path.join(ROOT, "build", "modules")


@pytest.fixture(scope="session")
def modules_dir() -> str:
    """build/modules, (re)built from modules/src by the Makefile."""
    p = subprocess.run(["make", "-s", "-C", os.path.join(ROOT, "modules")], capture_output=True, text=True)
    assert p.returncode == 0, f"building the example modules failed:\n{p.stdout}\n{p.stderr}"
    return MODULES


def run_case(case: str, python: str = sys.executable, timeout: float = 120.0, **kwargs: Any) -> Any:
    """Run engine_cases.<case>(**kwargs) in a new interpreter; return its JSON result."""
    code = ("import json, sys; from tests.runtimes import engine_cases as c; "
            f"r = c.{case}(**json.loads(sys.argv[1])); sys.stdout.write('\\nRESULT ' + json.dumps(r) + '\\n'); sys.stdout.flush(); import os; os._exit(0)")
    env = dict(os.environ, PYTHONPATH=ROOT)
    p = subprocess.run([python, "-c", code, json.dumps(kwargs)], capture_output=True, text=True,
                       timeout=timeout, cwd=ROOT, env=env)
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
    assert p.returncode == 0 and lines, f"case {case} failed (exit {p.returncode}):\n{p.stdout}\n{p.stderr}"
    return json.loads(lines[-1][len("RESULT "):])


@pytest.fixture
def isolated() -> Callable[..., Any]:
    return run_case
