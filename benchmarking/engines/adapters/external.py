"""Untested templates for engines the project does not install (WAMR's `iwasm`, WasmEdge): a program
on PATH and an argv template; their AOT variants need an artifact beside the module
(`<stem>.aot` / `<stem>.so`, made by the engine's own compiler)."""
from __future__ import annotations

import os
import shutil

from benchmarking.engines.adapters.base import Adapter, program_version
from benchmarking.engines.adapters.native import stem
from benchmarking.engines.catalog import EngineNotAvailable
from benchmarking.engines.invocation import Invocation, Prepared
from common.preopen import preopen_pair

# name -> (program, argv template, artifact suffix for AOT or None)
CLI: dict[str, tuple[str, list[str], str | None]] = {
    "iwasm-i": ("iwasm", ["iwasm", "{dirs:--dir={}}", "{env:--env={}}", "{file}", "{args}"], None),
    "iwasm-a": ("iwasm", ["iwasm", "{dirs:--dir={}}", "{env:--env={}}", "{file}", "{args}"], ".aot"),
    "wasmedge-i": ("wasmedge", ["wasmedge", "--force-interpreter", "{dirs:--dir={}:{}}", "{env:--env={}}", "{file}", "{args}"], None),
    "wasmedge-j": ("wasmedge", ["wasmedge", "--enable-jit", "{dirs:--dir={}:{}}", "{env:--env={}}", "{file}", "{args}"], None),
    "wasmedge-a": ("wasmedge", ["wasmedge", "{dirs:--dir={}:{}}", "{env:--env={}}", "{file}", "{args}"], ".so"),
}


def expand(template: list[str], artifact: str, inv: Invocation) -> list[str]:
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


class External(Adapter):
    """WAMR and WasmEdge (one instance per family)."""

    def __init__(self, family: str) -> None:
        self.family = family

    def installed(self, name: str) -> tuple[bool, str]:
        prog = CLI[name][0]
        where = shutil.which(prog)
        return (True, f"{where} (untested template)") if where else (False, f"`{prog}` is not on PATH")

    def version(self, name: str) -> str | None:
        prog = shutil.which(CLI[name][0])
        return program_version((prog, "--version")) if prog else None

    def prepare(self, name: str, inv: Invocation, artifact: str | None) -> Prepared:
        _prog, template, suffix = CLI[name]
        path = inv.path
        if suffix:
            path = stem(inv.path) + suffix
            if not os.path.exists(path):
                raise EngineNotAvailable(f"engine {name!r} needs the precompiled artifact {path!r} "
                                         f"(make it with `manage.py aot`)")
        return Prepared(exec_argv=expand(template, path, inv))
