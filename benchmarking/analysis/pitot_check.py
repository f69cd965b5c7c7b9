"""The checks Pitot's preprocessing steps make on an exported session, as one line per problem."""
from __future__ import annotations

import glob
import json
import os

from benchmarking.analysis.pitot import PITOT_MEM, workload_name


def pitot_problems(out: str, opcodes_dir: str | None = None) -> list[str]:
    """What Pitot's preprocessing would trip over in `out` (and the opcodes tree), read its way:
    every JSON below `out` except runtimes.json; platform = engine:device; workload from
    module.file + argv; `wall` with a positive sample; interference keys `<i>:<file_i>`."""
    problems: list[str] = []
    try:
        with open(os.path.join(out, "runtimes.json")) as f:
            rts = json.load(f)
    except (OSError, ValueError) as e:
        return [f"{out}/runtimes.json: {e}"]
    for rtid, rt in rts.items():
        cpu = ((rt.get("platform") or {}).get("cpu")) or {}
        if not isinstance(rt.get("name"), str) or not rt["name"]:
            problems.append(f"runtimes.json[{rtid}]: no name (the device)")
        if not isinstance(cpu.get("cpu"), str) or not cpu["cpu"]:
            problems.append(f"runtimes.json[{rtid}]: platform.cpu.cpu is missing (run `manage.py configure` on the node)")
        if not isinstance(cpu.get("cpufreq"), (int, float)) or cpu["cpufreq"] <= 0:
            problems.append(f"runtimes.json[{rtid}]: platform.cpu.cpufreq (Hz) is missing")
        for k in PITOT_MEM:
            v = ((rt.get("platform") or {}).get("mem") or {}).get(k)
            if v is not None and (not isinstance(v, int) or v < 0):  # 0 = none (the presence flag)
                problems.append(f"runtimes.json[{rtid}]: platform.mem.{k} must be a non-negative integer, got {v!r}")
    for path in sorted(glob.glob(os.path.join(out, "**", "*"), recursive=True)):
        if os.path.isdir(path) or os.path.basename(path) == "runtimes.json":
            continue
        try:
            with open(path) as f:
                d = json.load(f)
            m = d["module"]
            if m["parent"] not in rts:
                problems.append(f"{path}: module.parent {m['parent']} is not in runtimes.json")
            if not isinstance(m["args"]["engine"], str) or not isinstance(m["args"].get("argv", []), list):
                problems.append(f"{path}: module.args.engine must be a string and argv a list")
            for f_ in m["file"].split(":"):
                if not f_.startswith("wasm/"):
                    problems.append(f"{path}: module.file part {f_!r} does not start with wasm/")
            name = workload_name(m)
            if not name or name.startswith("/"):
                problems.append(f"{path}: workload name {name!r} is not a relative name")
            if "wall" in d:
                if not all(isinstance(x, int) and x >= 0 for x in d["wall"]) or not any(x > 0 for x in d["wall"]):
                    problems.append(f"{path}: wall needs non-negative integers with at least one > 0")
            else:
                for i, f_ in enumerate(m["file"].split(":")):
                    if not isinstance(d.get(f"{i}:{f_}"), list):
                        problems.append(f"{path}: no key {i}:{f_} (interference)")
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            problems.append(f"{path}: {type(e).__name__}: {e}")
    if opcodes_dir and os.path.isdir(opcodes_dir):
        for path in sorted(glob.glob(os.path.join(opcodes_dir, "**", "*"), recursive=True)):
            if os.path.isdir(path):
                continue
            try:
                with open(path) as f:
                    d = json.load(f)
                if len(d["opcodes"]) != 256 or not d["module"]["file"].startswith("wasm/"):
                    problems.append(f"{path}: opcodes must be 256 counts of a wasm/ module")
            except (OSError, ValueError, KeyError, TypeError) as e:
                problems.append(f"{path}: not an opcodes file ({type(e).__name__}: {e}); the opcodes tree must hold only those")
    return problems
