"""The checks Pitot's preprocessing makes on an exported session and its opcodes tree, read its
way (docs/compatibility.md, "Pitot's preprocessing"): problems (what stops a step or makes it
lose data silently) and notes (what a step skips by design)."""
from __future__ import annotations

import json
import os
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from benchmarking.analysis.pitot import PITOT_MEM, workload_name

# the engines Pitot's platforms step takes when it is not given -r (its DEFAULT_RUNTIMES)
PITOT_ENGINES = ("iwasm-a", "wasmer-a-ll", "wasmer-a-cl", "wasmtime-a", "iwasm-i", "wasm3-i", "wasmedge-i",
                 "wasmtime-j", "wasmer-j-cl", "wasmer-j-sp")


@dataclass
class Check:
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _files(top: str) -> list[str]:
    """Every file below `top` but runtimes.json, as Pitot's walker visits them."""
    return sorted(os.path.join(d, f) for d, _s, fs in os.walk(top) for f in fs if f != "runtimes.json")


def _obj(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def _runtimes(out: str, c: Check) -> dict[str, Any]:
    """runtimes.json as the platforms and dataset steps read it."""
    try:
        with open(os.path.join(out, "runtimes.json")) as f:
            rts = json.load(f)
        if not isinstance(rts, dict) or not all(isinstance(v, dict) for v in rts.values()):
            raise ValueError("not an object of runtime objects")
    except (OSError, ValueError) as e:
        c.problems.append(f"{out}/runtimes.json: {e}")
        return {}
    names: dict[str, list[str]] = defaultdict(list)
    for rtid, rt in rts.items():
        plat = _obj(rt.get("platform"))
        cpu, mem = _obj(plat.get("cpu")), _obj(plat.get("mem"))
        if not isinstance(rt.get("name"), str) or not rt["name"]:
            c.problems.append(f"runtimes.json[{rtid}]: no name (the device)")
        else:
            names[rt["name"]].append(rtid)
        if not isinstance(cpu.get("cpu"), str) or not cpu["cpu"]:
            c.problems.append(f"runtimes.json[{rtid}]: platform.cpu.cpu is missing (run `manage.py configure` on the node)")
        if isinstance(cpu.get("cpufreq"), bool) or not isinstance(cpu.get("cpufreq"), (int, float)) or cpu["cpufreq"] <= 0:
            c.problems.append(f"runtimes.json[{rtid}]: platform.cpu.cpufreq (Hz) is missing")
        missing = [k for k in PITOT_MEM if mem.get(k) is None]
        if missing:
            c.problems.append(f"runtimes.json[{rtid}]: platform.mem lacks {', '.join(missing)} (the platforms step reads "
                              "them; 0 = no such cache; `manage.py configure` on the node writes them)")
        for k in PITOT_MEM:
            v = mem.get(k)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
                c.problems.append(f"runtimes.json[{rtid}]: platform.mem.{k} must be a non-negative integer, got {v!r}")
    for name, ids in sorted(names.items()):
        if len(ids) > 1:
            c.problems.append(f"runtimes.json: device {name!r} is runtimes {', '.join(ids)}: Pitot's platforms step makes "
                              f"every ENGINE:{name} platform {len(ids)} times and its dataset step fails (IndexError); "
                              "one runtime per device (export again)")
    return rts


def _module(path: str, d: Any, rts: dict[str, Any], c: Check) -> tuple[str, str] | None:
    """The (platform, workload) of one session file, after the dataset step's checks."""
    m = d["module"]
    engine, argv = m["args"]["engine"], m["args"].get("argv", [])
    if not isinstance(engine, str) or not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
        c.problems.append(f"{path}: module.args.engine must be a string and argv a list of strings")
        return None
    for f_ in m["file"].split(":"):
        if not f_.startswith("wasm/"):
            c.problems.append(f"{path}: module.file part {f_!r} does not start with wasm/")
    name = workload_name(m)
    if not name or name.startswith("/"):
        c.problems.append(f"{path}: workload name {name!r} is not a relative name")
    if "wall" in d:
        if not all(isinstance(x, int) and x >= 0 for x in d["wall"]) or not any(x > 0 for x in d["wall"]):
            c.problems.append(f"{path}: wall needs non-negative integers with at least one > 0")
    else:
        for i, f_ in enumerate(m["file"].split(":")):
            v = d.get(f"{i}:{f_}")
            if not isinstance(v, list) or not all(isinstance(x, int) and x >= 0 for x in v):
                c.problems.append(f"{path}: no list of run times under {i}:{f_} (interference)")
    if m["parent"] not in rts:
        c.problems.append(f"{path}: module.parent {m['parent']} is not in runtimes.json")
        return None
    return f"{engine}:{rts[m['parent']].get('name')}", name


def check(out: str, opcodes_dir: str | None = None) -> Check:
    """What Pitot's platforms, opcodes, dataset and interference steps would trip over."""
    c = Check()
    rts = _runtimes(out, c)
    used: dict[str, set[str]] = defaultdict(set)  # platform -> workloads
    for path in _files(out):
        try:
            with open(path) as f:
                d = json.load(f)
            got = _module(path, d, rts, c)
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            c.problems.append(f"{path}: {type(e).__name__}: {e}")
            continue
        if got:
            used[got[0]].add(got[1])
    workloads: dict[str, list[str]] = defaultdict(list)
    if opcodes_dir and os.path.isdir(opcodes_dir):
        for path in _files(opcodes_dir):
            try:
                with open(path) as f:
                    d = json.load(f)
                if len(d["opcodes"]) != 256 or not d["module"]["file"].startswith("wasm/"):
                    raise ValueError("need 256 counts of a wasm/ module")
                workloads[workload_name(d["module"])].append(path)
            except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
                c.problems.append(f"{path}: not an opcodes file ({type(e).__name__}: {e}); the opcodes tree must hold only those")
        for w, paths in sorted(workloads.items()):
            if len(paths) > 1:
                c.problems.append(f"opcodes: workload {w!r} has {len(paths)} files ({', '.join(paths)}): the dataset step "
                                  "fails (IndexError); keep one")
    for platform, ws in sorted(used.items()):
        engine = platform.split(":")[0]
        if engine not in PITOT_ENGINES:
            c.notes.append(f"platform {platform}: engine {engine!r} is not among the platforms step's defaults; "
                           f"pass it with `preprocess.py platforms -r` or the dataset step skips its files")
        missing = sorted(w for w in ws if workloads and w not in workloads)
        if missing:
            c.notes.append(f"platform {platform}: no opcodes for {', '.join(missing[:5])}"
                           + (f" and {len(missing) - 5} more" if len(missing) > 5 else "") + ": the dataset step skips them")
    return c


def pitot_problems(out: str, opcodes_dir: str | None = None) -> list[str]:
    return check(out, opcodes_dir).problems
