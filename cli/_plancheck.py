"""`manage.py benchmark` checks a plan before anything is sent: every problem is one line, and a plan
with any problem is not submitted.

Checked: runtimes the orchestrator does not know; engines the catalog does not know (with the
closest name); engines a target runtime does not run (its registration's `metadata.engines`: off
by its node's `enable_engines` setting, or not installed there); module files missing from a target
runtime's module roots (its registration's `metadata.module_roots`), when its node runs on this
machine (another machine's files cannot be seen from here: its runtime reports them when it runs).
Engine names are normalised to the catalog's (`wasmtime` -> `wasmtime-j`), so one engine is one
name in the campaign, its module names and its results.
"""
from __future__ import annotations

import difflib
import socket
import sys
from typing import Any

from benchmarking.engines import catalog, gate
from cli._api import Api, CliError
from runtimes.files import ModuleFileError, ModuleFiles

SHORT = {"if": "interference", "bench": "benchmarking", "seed": "seeded", "op": "opcodes"}


def engine_names(asked: list[str]) -> tuple[list[str], list[str]]:
    """(the catalog names of the engines asked for, in order, each once; one problem per unknown name)."""
    names: list[str] = []
    problems: list[str] = []
    known = catalog.all_names() + sorted(catalog.ALIASES)
    for e in asked:
        n = catalog.resolve(e)
        if n in catalog.ENGINES:
            names.append(n)
            continue
        close = difflib.get_close_matches(e, known, n=1)
        problems.append(f"unknown engine {e!r}" + (f"; did you mean {close[0]!r}?" if close else "")
                        + " (`manage.py engines` lists them)")
    return list(dict.fromkeys(names)), problems


def find_runtimes(api: Api, queries: list[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """(the runtime records asked for, each once; one problem per runtime the orchestrator does not
    know). `NODE.if` is `NODE.interference` (also `.bench`, `.seed`, `.op`)."""
    found: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    for q in queries:
        for part in (p.strip() for p in q.split(",") if p.strip()):
            rt = api.runtime(part)
            node, dot, short = part.rpartition(".")
            if rt is None and dot and short in SHORT:
                rt = api.runtime(f"{node}.{SHORT[short]}")
            if rt is None:
                problems.append(f"runtime {part!r} is unknown to the orchestrator at {api.url} (see `manage.py list`)")
            else:
                found.setdefault(str(rt["name"]), rt)
    return list(found.values()), problems


def runtime_problems(rt: dict[str, Any], engines: list[str], files: list[str]) -> list[str]:
    """What runtime `rt` (its REST record) cannot run of the plan's engines and files."""
    got = rt.get("metadata")
    meta: dict[str, Any] = got if isinstance(got, dict) else {}
    name = rt.get("name")
    problems: list[str] = []
    have = meta.get("engines")
    if isinstance(have, list):  # a benchmarking runtime of ours (the original's report none: not checked)
        section = str(meta.get("runtime") or "benchmarking").split("/")[0]
        for e in engines:
            if e in have:
                continue
            if gate.opt_in(e):
                problems.append(f"engine {e!r} is off on runtime {name}: its node must enable it with the setting "
                                f"{gate.SETTING} (config.json \"runtimes\": {{\"{section}\": {{\"{gate.SETTING}\": "
                                f"[\"{e}\"]}}}}, docs/security.md) and restart")
            else:
                problems.append(f"engine {e!r} is not installed on runtime {name} (`manage.py engines` on its node says why)")
    roots = meta.get("module_roots")
    if meta.get("host") == socket.gethostname() and isinstance(roots, list) and roots:
        policy = ModuleFiles([str(r) for r in roots])
        for f in files:
            for part in f.split(":"):  # an interference cell runs several files
                try:
                    policy.resolve(part, "file")
                except ModuleFileError as e:
                    problems.append(f"runtime {name}: {e}")
    return problems


def refuse(problems: list[str], prog: str = "manage.py benchmark") -> None:
    """Print each problem on its own line and fail (nothing is sent); no problems: nothing happens."""
    if not problems:
        return
    problems = list(dict.fromkeys(problems))
    for p in problems[:-1]:
        print(f"{prog}: {p}", file=sys.stderr)
    raise CliError(problems[-1] + (f" ({len(problems)} problems in the plan: nothing was sent)" if len(problems) > 1
                                   else " (nothing was sent)"))
