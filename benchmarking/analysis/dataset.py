"""Collected records as series of run times: one Series per (module, engine, runtime, kind),
read by the layouts of benchmarking/layouts.py. A module that sent our layout also sent the
seed's copy of the same runs: it is read from ours only (layouts.NEWER). Failed runs are left
out and counted (by outcome where the layout has one); interference runs outside the window in
which every co-runner ran are left out and counted."""
from __future__ import annotations

import math
import os
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable

from benchmarking import layouts
from benchmarking.analysis.records import Record, margs
from benchmarking.engines.catalog import resolve

Key = tuple[str, str, str, str]  # (module, engine, runtime, kind)


@dataclass
class Series:
    module: str  # file base name(s), then ':'-joined arguments (Pitot's workload naming)
    engine: str
    runtime: str
    kind: str  # "alone" or "interference-N"
    walls_us: list[int] = field(default_factory=list)
    failed: int = 0
    outside: int = 0  # interference runs outside the window in which every co-runner ran (not counted)
    failures: dict[str, int] = field(default_factory=dict)  # outcome -> runs (benchmarking-v3)
    phases: dict[str, list[int]] = field(default_factory=dict)  # compile_ns/instantiate_ns/execute_ns


@dataclass
class Dataset:
    series: dict[Key, Series] = field(default_factory=dict)
    opcodes: list[dict[str, Any]] = field(default_factory=list)
    # campaign -> cell -> state from the data (`done`, or the first failed run's outcome)
    cells: dict[str, dict[int, str]] = field(default_factory=dict)

    def get(self, module: str, engine: str, runtime: str, kind: str) -> Series:
        engine = resolve(engine)  # `wasmtime` and `wasmtime-j` are one engine
        key = (module, engine, runtime, kind)
        if key not in self.series:
            self.series[key] = Series(module, engine, runtime, kind)
        return self.series[key]


def argv_tail(rec: Record) -> list[str]:
    argv = margs(rec).get("argv") or []
    return [str(a) for a in argv] if isinstance(argv, list) and all(isinstance(a, str) for a in argv) else []


def module_name(rec: Record, file: str | None = None) -> str:
    """`file` (default: the module's, each part of an interference tuple) by base name, then the arguments."""
    mod = rec.get("module") or {}
    f = file if file is not None else mod.get("file")
    if f:
        return ":".join([os.path.basename(x) for x in str(f).split(":")] + argv_tail(rec))
    return str(mod.get("name") or mod.get("uuid") or "?")


def engines_of(rec: Record) -> list[str]:
    e = margs(rec).get("engine")
    if isinstance(e, list) and e:
        return [str(x) for x in e]
    return [str(e)] if e else ["wasmtime"]


def runtime_namer(resolve: Callable[[str], str | None] | None) -> Callable[[Record], str]:
    """A record's runtime name: from the record, else `resolve(uuid)` (asked once per uuid), else the uuid."""
    cache: dict[str, str] = {}

    def name(rec: Record) -> str:
        rt = rec.get("runtime") or {}
        if rt.get("name"):
            return str(rt["name"])
        uuid = str(rt.get("uuid") or "?")
        if uuid not in cache:
            cache[uuid] = (resolve(uuid) if resolve is not None else None) or uuid
        return cache[uuid]
    return name


def load(records: list[Record], runtime_name: Callable[[Record], str]) -> Dataset:
    """The series (and opcode summaries, and cell states) of `records`."""
    ds = Dataset()
    types_of: dict[str, set[str]] = defaultdict(set)
    for rec in records:
        types_of[str((rec.get("module") or {}).get("uuid"))].add(str(rec.get("type")))
    for rec in records:
        ptype = str(rec.get("type"))
        if layouts.NEWER.get(ptype) in types_of[str((rec.get("module") or {}).get("uuid"))]:
            continue
        rt = runtime_name(rec)
        data = rec["data"]
        if ptype == layouts.BENCHMARKING_V3:
            _v3(ds, rec, data, rt)
        elif ptype == layouts.INTERFERENCE_V2:
            _if2(ds, rec, data, rt)
        elif ptype in layouts.TIMED_SEED:  # 0 = a failed run
            walls = list(data.get("wall_us") or [])
            engs = engines_of(rec)
            per = max(1, math.ceil(len(walls) / len(engs)))
            for i, w in enumerate(walls):
                s = ds.get(module_name(rec), engs[min(i // per, len(engs) - 1)], rt, "alone")
                if w:
                    s.walls_us.append(int(w))
                else:
                    s.failed += 1
        elif ptype == layouts.INTERFERENCE:
            engs = engines_of(rec)
            n = len(data)
            for key, walls in data.items():
                idx, _, file = key.partition(":")
                eng = engs[int(idx) % len(engs)] if idx.isdigit() else engs[0]
                s = ds.get(module_name(rec, file), eng, rt, f"interference-{n}")
                s.walls_us.extend(int(w) for w in walls if w)
                s.failed += sum(1 for w in walls if not w)
        elif ptype == layouts.OPCODES:
            ds.opcodes.append({"module": module_name(rec), "runtime": rt, "total": data.get("total"),
                               "top": sorted(((c, op) for op, c in enumerate(data.get("counts") or []) if c), reverse=True)[:5]})
    return ds


def _v3(ds: Dataset, rec: Record, data: dict[str, Any], rt: str) -> None:
    runs = data.get("runs") or {}
    args = margs(rec)
    if "campaign" in args and "cell" in args:
        bad_runs = [o for o in runs.get("outcome", []) if o != "ok"]
        seen = ds.cells.setdefault(str(args["campaign"]), {})
        if seen.get(int(args["cell"])) != "done":  # a resumed cell that succeeded later is done
            seen[int(args["cell"])] = bad_runs[0] if bad_runs else "done"
    for i, w in enumerate(runs.get("wall_ns") or []):
        s = ds.get(module_name(rec), str(runs["engine"][i]), rt, "alone")
        o = runs["outcome"][i]
        if o == "ok":
            s.walls_us.append(int(w) // 1000)
            for ph in ("compile_ns", "instantiate_ns", "execute_ns"):
                v = (runs.get(ph) or [None] * (i + 1))[i]
                if v is not None:
                    s.phases.setdefault(ph, []).append(int(v))
        else:
            s.failed += 1
            s.failures[o] = s.failures.get(o, 0) + 1


def _if2(ds: Dataset, rec: Record, data: dict[str, Any], rt: str) -> None:
    n = len(data.get("loops") or [])
    for lp in data.get("loops") or []:
        s = ds.get(module_name(rec, str(lp.get("file"))), str(lp.get("engine")), rt, f"interference-{n}")
        r = lp.get("runs") or {}
        for w, o, inside in zip(r.get("wall_ns", []), r.get("outcome", []), r.get("inside", [])):
            if o != "ok":
                s.failed += 1
                s.failures[o] = s.failures.get(o, 0) + 1
            elif inside:
                s.walls_us.append(int(w) // 1000)
            else:
                s.outside += 1
