"""Can each `-r` runtime start here? Asked before the node starts, in a forked child process.

A runtime's `unavailable(settings)` may need its engines (the benchmarking runtimes check their
`enable_engines` setting against the engine catalog), and the supervisor never imports an engine:
the loop every node runs stays small, and workers forked later do not inherit engine state
(docs/supervisor.md, "Registration"). The child imports what the checks need, answers in JSON
on a pipe and exits; a bad setting still ends start.py at once with one clear line (exit 2).
"""
from __future__ import annotations

import json
import os
import sys
import traceback
from typing import Any

import runtimes


def _check(checks: list[tuple[str, dict[str, Any]]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, settings in checks:
        try:
            why = runtimes.get(name).load().unavailable(settings)
        except runtimes.RuntimeUnavailable as e:
            out[name] = str(e)
            continue
        if why:
            out[name] = f"runtime {name!r} cannot start here: {why}"
    return out


def unavailable(checks: list[tuple[str, dict[str, Any]]]) -> dict[str, str]:
    """registry name -> why it cannot start here (a complete sentence), for each (name, settings)
    that cannot. RuntimeUnavailable when the check itself failed (its traceback is on stderr)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: check, answer, exit without running anything of the parent's
        code = 0
        try:
            os.close(r)
            view = memoryview(json.dumps(_check(checks)).encode())
            while view:
                view = view[os.write(w, view):]
        except BaseException:
            sys.stderr.write(f"start.py: checking the runtimes failed:\n{traceback.format_exc()}")
            code = 1
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0 or not data:
        raise runtimes.RuntimeUnavailable("could not check whether the runtimes can start here (the check's child "
                                          "process failed: its error is above)")
    answer: dict[str, str] = json.loads(data)
    return answer
