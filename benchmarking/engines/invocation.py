"""What one run of an engine is: the invocation (module, argv, env, dirs), the prepared launcher
(a target for a forked child or an argv to exec), the phase report a child writes, and one
measured run through the harness. The adapters make `Prepared`; launch.py hands it out.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Callable

from benchmarking import harness
from benchmarking.limits import ChildLimits

PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# exec'd children that report phases write one JSON line to this fd (harness dup2s the result pipe)
RESULT_FD = 3
# exit status of a trapped module on every engine (the wasmtime CLI's; harness.outcome says "trap")
TRAP_EXIT = harness.EXIT_TRAP


@dataclass
class Invocation:
    """What one run needs: module path, WASI argv (argv[0] = program name), env, dirs."""
    path: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    dirs: list[str] = field(default_factory=list)  # HOST, or HOST::GUEST (common.preopen.preopen_pair)


@dataclass
class Prepared:
    """A ready-to-run launcher: a target for a forked child, or an argv to exec."""
    target: harness.ChildTarget | None = None
    exec_argv: list[str] | None = None
    env: dict[str, str] | None = None
    result_fd: bool = False  # the exec'd program reports phases on fd RESULT_FD
    engine: str = ""
    version: str = ""


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
