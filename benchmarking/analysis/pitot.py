"""Collected records in the layout Pitot's preprocessing reads (and the original collector
writes): a session directory with `runtimes.json` and one JSON file per module, and the opcode
counts in a tree of their own (docs/compatibility.md, "Pitot's preprocessing")."""
from __future__ import annotations

import json
import os
from collections import defaultdict
from typing import Any

from benchmarking import layouts
from benchmarking.analysis.records import Record

TIMED_OURS = layouts.BENCHMARKING_V3
TIMED_SEED = layouts.TIMED_SEED
PITOT_MEM = ("l1d_size", "l1i_size", "l2_size", "l2_line", "l3_size")
WORKLOAD_PATTERNS = ((".wasm", ""), ("wasm/", ""), ("data/apps/python/", ""), ("apps/wasi-python3.13", "python"),
                     ("apps/python", "python"))


def workload_name(module: dict[str, Any]) -> str:
    """The workload name Pitot derives from a module record (docs/compatibility.md, "Pitot's preprocessing")."""
    name = ":".join([module["file"]] + list((module.get("args") or {}).get("argv", [])))
    for k, v in WORKLOAD_PATTERNS:
        name = name.replace(k, v)
    return name


def pitot_file(path: str, root: str | None) -> str:
    """`wasm/...` for a module path on the node."""
    if root:
        rel = os.path.relpath(path, root)
        if not rel.startswith(".."):
            return rel
    i = path.rfind("wasm/")
    if i > 0 and path[i - 1] == "/":
        return path[i:]
    return path.lstrip("/") if i != 0 else path


def _platform(rt: dict[str, Any]) -> dict[str, Any]:
    plat = dict(rt.get("platform") or {})
    given = plat.get("cpu")
    cpu = dict(given) if isinstance(given, dict) else {}
    if not cpu.get("cpu") and cpu.get("model"):
        cpu["cpu"] = cpu["model"]
    if not cpu.get("cpufreq") and cpu.get("mhz"):
        cpu["cpufreq"] = int(float(cpu["mhz"]) * 1e6)
    plat["cpu"] = cpu
    plat["mem"] = dict(plat.get("mem") or {})
    return plat


def export(records: list[Record], out: str, opcodes_dir: str, root: str | None, device_mode: str) -> dict[str, int]:
    """Write the layout; returns counts of files written by kind."""
    by_module: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for rec in records:
        if not rec.get("module"):
            continue
        by_module[str(rec["module"].get("uuid"))].append(rec)
    runtimes: dict[str, dict[str, Any]] = {}
    counts = {"benchmarking": 0, "interference": 0, "opcodes": 0}
    os.makedirs(out, exist_ok=True)
    for uuid, recs in sorted(by_module.items()):
        rt = recs[0].get("runtime") or {}
        rtid = str(rt.get("uuid") or "unknown")
        name = str(rt.get("name") or rtid)
        device = name.split(".")[0] if device_mode == "node" else name
        runtimes[rtid] = {"uuid": rtid, "name": device, "runtime_type": rt.get("runtime_type"), "platform": _platform(rt)}
        mod = recs[0]["module"]
        files = [pitot_file(f, root) for f in str(mod.get("file") or "").split(":")]
        module = {"uuid": uuid, "name": mod.get("name"), "parent": rtid, "file": ":".join(files),
                  "args": dict(mod.get("args") or {})}
        module["args"].setdefault("argv", [])
        if isinstance(module["args"].get("engine"), list):
            module["args"]["engine"] = module["args"]["engine"][0]
        types = {r["type"] for r in recs}
        base = f"{_safe(str(mod.get('name') or uuid))}.{uuid}"
        if TIMED_OURS in types or types & set(TIMED_SEED):
            body = _timed(recs, TIMED_OURS in types)
            _write(os.path.join(out, device, f"{base}.benchmarking.json"), {**body, "module": module})
            counts["benchmarking"] += 1
        if types & {layouts.INTERFERENCE, layouts.INTERFERENCE_V2}:
            body = _interference(recs, files, layouts.INTERFERENCE_V2 in types)
            _write(os.path.join(out, device, f"{base}.interference.json"), {**body, "module": module})
            counts["interference"] += 1
        ops = [r for r in recs if r["type"] == layouts.OPCODES]
        if ops:
            _write(os.path.join(opcodes_dir, device, f"{base}.opcodes.json"),
                   {"opcodes": ops[0]["data"]["counts"], "module": module})
            counts["opcodes"] += 1
    _write(os.path.join(out, "runtimes.json"), runtimes, indent=4)
    return counts


def _timed(recs: list[dict[str, Any]], ours: bool) -> dict[str, list[int]]:
    wall: list[int] = []
    ut: list[int] = []
    st: list[int] = []
    if ours:
        parts = sorted((r for r in recs if r["type"] == TIMED_OURS), key=lambda r: r["data"].get("first_run", 0))
        for r in parts:
            runs = r["data"]["runs"]
            for w, u, s, o in zip(runs["wall_ns"], runs["utime_us"], runs["stime_us"], runs["outcome"]):
                ok = o == "ok"
                wall.append(max(1, w // 1000) if ok else 0)
                ut.append(u if ok else 0)
                st.append(s if ok else 0)
    else:
        for r in sorted((r for r in recs if r["type"] in TIMED_SEED), key=lambda r: r.get("received", 0)):
            d = r["data"]
            wall += d.get("wall_us", [])
            ut += d.get("utime_us", [])
            st += d.get("stime_us", [])
    return {"wall": wall, "utime": ut, "stime": st}


def _interference(recs: list[dict[str, Any]], files: list[str], ours: bool) -> dict[str, list[int]]:
    if ours:
        data = next(r["data"] for r in recs if r["type"] == layouts.INTERFERENCE_V2)
        out: dict[str, list[int]] = {}
        for lp in data["loops"]:
            r = lp["runs"]
            inside = [i for i, x in enumerate(r["inside"]) if x] or list(range(len(r["wall_ns"])))
            out[f"{lp['index']}:{files[lp['index']]}"] = [
                max(1, r["wall_ns"][i] // 1000) if r["outcome"][i] == "ok" else 0 for i in inside]
        return out
    data = next(r["data"] for r in recs if r["type"] == layouts.INTERFERENCE)
    return {f"{k.partition(':')[0]}:{files[int(k.partition(':')[0])]}": v for k, v in data.items()}


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-@+=" else "_" for c in name)[:64] or "unnamed"


def _write(path: str, obj: Any, indent: int | None = None) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f, indent=indent)
