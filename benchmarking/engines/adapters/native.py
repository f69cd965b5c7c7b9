"""`native`: the module's native executable (the file itself, or `<stem>` / `<stem>.native` beside
`x.wasm`), spawned with only the given environment, as a WASI module sees it."""
from __future__ import annotations

import os
import platform

from benchmarking.engines.adapters.base import Adapter
from benchmarking.engines.catalog import EngineNotAvailable
from benchmarking.engines.invocation import Invocation, Prepared


def stem(path: str) -> str:
    return path[:-5] if path.endswith(".wasm") else path


def executable(path: str) -> str:
    """The native executable for `path`: itself when not a .wasm, else `<stem>` or `<stem>.native`."""
    candidates = [path] if not path.endswith(".wasm") else [stem(path), stem(path) + ".native"]
    for c in candidates:
        if os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    raise EngineNotAvailable(f"engine 'native': no executable for {path!r} (looked for {', '.join(candidates)})")


class Native(Adapter):
    family = "native"

    def installed(self, name: str) -> tuple[bool, str]:
        return True, "exec of a native executable"

    def version(self, name: str) -> str | None:
        return platform.machine()

    def prepare(self, name: str, inv: Invocation, artifact: str | None) -> Prepared:
        # the same environment a WASI module sees: only the given variables
        return Prepared(exec_argv=[executable(inv.path)] + inv.argv[1:], env=dict(inv.env))
