"""V8 through Node's node:wasi (preview1): `v8-b` Liftoff only, `v8-j` TurboFan only (in tiered mode
one long main() never reaches TurboFan, so each tier is measured alone). The launcher script is
wasi/v8_wasi.mjs; it reports phases on fd RESULT_FD."""
from __future__ import annotations

import json
import os
import shutil

from benchmarking.engines.adapters.base import Adapter, program_version
from benchmarking.engines.invocation import RESULT_FD, TRAP_EXIT, Invocation, Prepared
from common.preopen import preopen_pair

SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "wasi", "v8_wasi.mjs")


class V8(Adapter):
    family = "v8"

    def installed(self, name: str) -> tuple[bool, str]:
        node = shutil.which("node")
        if node is None:
            return False, "`node` is not on PATH (apt-get install nodejs)"
        major = (self.version(name) or "0").split(".")[0]
        if not major.isdigit() or int(major) < 20:
            return False, f"node {self.version(name)} has no preview1 node:wasi (needs Node >= 20)"
        return True, node

    def version(self, name: str) -> str | None:
        node = shutil.which("node")
        return program_version((node, "--version")) if node else None

    def prepare(self, name: str, inv: Invocation, artifact: str | None) -> Prepared:
        flags = ["--liftoff", "--liftoff-only"] if name == "v8-b" else ["--no-liftoff"]
        spec = json.dumps({"file": inv.path, "argv": inv.argv, "env": inv.env,
                           "dirs": [list(preopen_pair(d)) for d in inv.dirs],
                           "result_fd": RESULT_FD, "trap_exit": TRAP_EXIT})
        return Prepared(exec_argv=[str(shutil.which("node")), "--no-warnings", *flags, SCRIPT, spec], result_fd=True)
