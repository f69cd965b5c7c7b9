"""Collected records in the layout Pitot's preprocessing reads (and the original collector
writes): a session directory with `runtimes.json` and one JSON file per module, and the opcode
counts in a tree of their own (docs/compatibility.md, "Pitot's preprocessing").

Pitot names a platform ENGINE:DEVICE, DEVICE being the `name` of runtimes.json[module.parent],
and its platforms step makes one row per runtimes.json entry and engine: two entries with one
name make a platform twice and its dataset step fails (IndexError). So the session's
runtimes.json lists one runtime per device, and only devices with data in the session: the
device's runtime with the latest registration stands for it (its platform facts), and every
module of the device names it as parent (its own runtime stays in `module.runtime`). The opcodes
tree (Pitot's opcodes step, which does not read runtimes.json) holds one file per workload."""
from __future__ import annotations

import json
import os
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from benchmarking import layouts
from benchmarking.analysis.records import Record, latest_runtimes
from benchmarking.engines.catalog import resolve

TIMED_OURS = layouts.BENCHMARKING_V3
TIMED_SEED = layouts.TIMED_SEED
PITOT_MEM = ("l1d_size", "l1i_size", "l2_size", "l2_line", "l2_assoc", "l3_size")  # what its platforms step reads
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


@dataclass
class Exported:
    benchmarking: int = 0
    interference: int = 0
    opcodes: int = 0
    all_failed: list[str] = field(default_factory=list)  # modules left out: every run failed
    devices: dict[str, list[str]] = field(default_factory=dict)  # device -> runtime uuids (the first stands for it)
    notes: list[str] = field(default_factory=list)

    def written(self) -> int:
        return self.benchmarking + self.interference + self.opcodes


def device_of(rt: dict[str, Any], rtid: str, device_mode: str) -> str:
    name = str(rt.get("name") or rtid)
    return name.split(".")[0] if device_mode == "node" else name


def export(records: list[Record], out: str, opcodes_dir: str, root: str | None, device_mode: str,
           context: list[Record] | None = None) -> Exported:
    """Write the session `out` and the opcodes tree `opcodes_dir` from `records`. `context`
    (e.g. every record when `records` are one campaign's): where the registrations and the
    opcode counts of the session's workloads come from too."""
    res = Exported()
    latest = latest_runtimes(records + (context or []))
    by_module: dict[str, list[Record]] = defaultdict(list)
    mine = {id(r) for r in records}
    for rec in records + [r for r in context or [] if r["type"] == layouts.OPCODES and id(r) not in mine]:
        if rec.get("module"):
            by_module[str(rec["module"].get("uuid"))].append(rec)
    session: list[tuple[str, str, str, dict[str, Any]]] = []  # (device, rtid, path, body) to write
    opcodes: dict[str, tuple[float, str, dict[str, Any]]] = {}  # workload -> (received, device, body)
    for uuid, recs in sorted(by_module.items()):
        rtid = str((recs[0].get("runtime") or {}).get("uuid") or "unknown")
        device = device_of(latest.get(rtid, (0.0, recs[0].get("runtime") or {}))[1], rtid, device_mode)
        mod = recs[0]["module"]
        files = [pitot_file(f, root) for f in str(mod.get("file") or "").split(":")]
        module = {"uuid": uuid, "name": mod.get("name"), "parent": rtid, "runtime": rtid, "file": ":".join(files),
                  "args": dict(mod.get("args") or {})}
        module["args"].setdefault("argv", [])
        eng = module["args"].get("engine") or "wasmtime"
        module["args"]["engine"] = resolve(str(eng[0] if isinstance(eng, list) else eng))
        types = {r["type"] for r in recs}
        base = f"{_safe(str(mod.get('name') or uuid))}.{uuid}"
        if TIMED_OURS in types or types & set(TIMED_SEED):
            body: dict[str, Any] = _timed(recs, TIMED_OURS in types)
            kind = layouts.BENCHMARKING_SEED  # the original collector's type names
        elif types & {layouts.INTERFERENCE, layouts.INTERFERENCE_V2}:
            body = _interference(recs, files, layouts.INTERFERENCE_V2 in types)
            kind = layouts.INTERFERENCE
        else:
            body, kind = {}, ""
        samples = body.get("wall", []) if kind == layouts.BENCHMARKING_SEED else [x for v in body.values() for x in v]
        if kind and not any(x > 0 for x in samples):
            res.all_failed.append(f"{mod.get('name') or uuid} ({uuid}) on {rtid}")
        elif kind:
            session.append((device, rtid, os.path.join(out, device, f"{base}.{kind}.json"), {**body, "module": module}))
            if kind == layouts.INTERFERENCE:
                res.interference += 1
            else:
                res.benchmarking += 1
        ops = [r for r in recs if r["type"] == layouts.OPCODES]
        if ops:
            w = workload_name(module)
            when = max(float(r.get("received") or 0.0) for r in ops)
            if w not in opcodes or when >= opcodes[w][0]:
                opcodes[w] = (when, device, {"opcodes": ops[-1]["data"]["counts"], "module": module, "base": base})
    # one runtime per device: the one with the latest registration
    for device, rtid, _p, _b in session:
        ids = res.devices.setdefault(device, [])
        if rtid not in ids:
            ids.append(rtid)
    runtimes: dict[str, dict[str, Any]] = {}
    stand: dict[str, str] = {}
    for device, ids in sorted(res.devices.items()):
        ids.sort(key=lambda i: latest.get(i, (0.0, {}))[0], reverse=True)
        rt = latest.get(ids[0], (0.0, {}))[1]
        stand[device] = ids[0]
        runtimes[ids[0]] = {"uuid": ids[0], "name": device, "runtime_type": rt.get("runtime_type"), "platform": _platform(rt)}
        plats = {json.dumps(_platform(latest.get(i, (0.0, {}))[1]), sort_keys=True) for i in ids}
        if len(plats) > 1:
            res.notes.append(f"device {device!r}: runtimes {', '.join(ids)} registered different platforms; "
                             f"the latest registration's ({ids[0]}) stands for the device (--device runtime keeps them apart)")
    os.makedirs(out, exist_ok=True)
    for device, _rtid, path, body in session:
        body["module"]["parent"] = stand[device]
        _write(path, body)
    workloads = {workload_name(b["module"]) for _d, _r, _p, b in session}
    for w, (_when, device, body) in sorted(opcodes.items()):
        if context is not None and w not in workloads:
            continue  # another campaign's workload
        _write(os.path.join(opcodes_dir, device, f"{body.pop('base')}.{layouts.OPCODES}.json"), body)
        res.opcodes += 1
    if session:
        _write(os.path.join(out, "runtimes.json"), runtimes, indent=4)
    return res


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
