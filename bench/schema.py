#!/usr/bin/env python3
"""Message schema benchmark (issue 23 item 2): decode + validate one message, per message type, with
msgspec (common/schema.py, one pass) against orjson plus the hand checks it replaced, in the same run.

The baseline is the hand-written path as it was before the schema: `orjson.loads`, then
`common.wire.require` and `isinstance` checks key by key (the supervisor's `parse_control` for a
create, the orchestrator's checks for a registration, a keepalive, an exited and a campaign plan),
kept here verbatim so the comparison survives the change. Each type is timed in `--reps`
interleaved repetitions (baseline, schema, baseline, ...); the table gives the median ns per message
of each, the ratio and its spread (min/max of the per-repetition ratios).

Usage: bench/schema.py [--quick] [--json] [--reps N]
  --quick  20,000 decodes per repetition instead of 100,000 (a few seconds)
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from typing import Any, Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import orjson  # noqa: E402

from common import schema  # noqa: E402
from common.wire import ProtocolError, decode, require  # noqa: E402

CREATE = {"object_id": "6c1e5a0e-7d0c-4b59-9b8e-1f0f3f1d2a11", "action": "create", "type": "req",
          "data": {"type": "module", "uuid": "0a5d2d9c-4d93-4c1b-8a53-ec2a4b2b6f10", "name": "2mm.wasmtime",
                   "file": "benchmarks/polybench/2mm.wasm", "parent": "8f6c6e0b-7a35-4c2a-bb64-3b1c35e8c0f2",
                   "apis": ["wasm", "wasi", "profile:benchmarking"],
                   "args": {"argv": ["-n", "100"], "env": ["A=1", "B=2"], "engine": "wasmtime", "repeat": 10,
                            "profile": "v3", "campaign": "c-1", "cell": 17},
                   "channels": [{"path": "/ch/in", "mode": "r", "topic": "realm/ch/in"}]}}
REG = {"object_id": "1", "action": "create", "type": "req",
       "data": {"type": "runtime", "uuid": "8f6c6e0b-7a35-4c2a-bb64-3b1c35e8c0f2", "name": "node1.bench",
                "runtime_type": "WASM", "max_nmodules": 128, "apis": ["wasm", "wasi", "stdio:out", "channels"],
                "platform": {"cpu": "x86_64", "system": "Linux", "cpus": 2},
                "metadata": {"runtime": "benchmarking", "host": "n1", "pid": 1234, "cpus": [0, 1]},
                "parent": "3d0f5e12-0c7e-4b55-9b43-0d84b6a1e6a2"}}
KEEPALIVE = {"object_id": "2", "action": "update", "type": "req",
             "data": {"type": "runtime", "uuid": "8f6c6e0b-7a35-4c2a-bb64-3b1c35e8c0f2", "name": "node1.bench",
                      "apis": ["wasm", "wasi"],
                      "children": [{"uuid": f"0a5d2d9c-4d93-4c1b-8a53-ec2a4b2b6f{i:02d}", "active": True,
                                    "cpu_usage_percent": 12.5, "mem_usage": 1 << 20} for i in range(8)]}}
EXITED = {"object_id": "3", "action": "exited", "type": "req",
          "data": {"type": "module", "uuid": "0a5d2d9c-4d93-4c1b-8a53-ec2a4b2b6f10",
                   "status": {"reason": "exited", "code": 0, "error": None}}}
PLAN = {"object_id": "4", "action": "create_campaign", "type": "req",
        "data": {"campaign": "c-1", "plan": {"runtimes": ["node1.bench"], "files": [f"bench/{i}.wasm" for i in range(100)],
                                              "engines": ["wasmtime", "wasmer", "wasm3"], "argsets": [["-n", "100"], ["-n", "200"]],
                                              "seed": 1, "order": "shuffle", "window": 4, "args": {"repeat": 5}}}}


# -- the hand checks as they were (supervisor/control.py, orchestrator/core.py, orchestrator/campaigns.py) --
def _str_list(d: dict[str, Any], key: str, where: str) -> list[str]:
    v = d.get(key, [])
    if v is None:
        return []
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise ProtocolError(f"{where}: key {key!r} must be a list of strings, got {v!r}")
    return v


def hand_create(p: bytes) -> Any:
    where = "m"
    msg = decode(p, where=where)
    require(msg, "action", str, where=where)
    object_id = msg.get("object_id")
    if object_id is not None and not isinstance(object_id, str):
        raise ProtocolError("object_id")
    data = require(msg, "data", dict, where=where)
    if data.get("type", "module") != "module":
        raise ProtocolError("type")
    require(data, "uuid", str, where=where)
    for key, typ in (("name", str), ("file", str), ("args", dict), ("apis", list), ("channels", list)):
        if key in data and data[key] is not None:
            require(data, key, typ, where=where)
    args = data.get("args") or {}
    for key, typ in (("argv", list), ("env", list), ("dirs", list)):
        if key in args and args[key] is not None:
            require(args, key, typ, where=where)
    for c in data.get("channels") or []:
        if not isinstance(c, dict):
            raise ProtocolError("channel")
        for key in ("path", "mode", "topic"):
            if not isinstance(c.get(key), str):
                raise ProtocolError("channel key")
        if c["mode"] not in ("r", "w", "rw"):
            raise ProtocolError("mode")
    return data


def hand_reg(p: bytes) -> Any:
    where = "m"
    msg = decode(p, where=where)
    require(msg, "action", str, where=where)
    data = require(msg, "data", dict, where=where)
    kind = require(data, "type", str, where=where)
    if kind not in ("manager", "runtime"):
        raise ProtocolError("type")
    if not isinstance(data.get("uuid"), str):
        raise ProtocolError("uuid")
    require(data, "name", str, where=where)
    parent = data.get("parent")
    if parent is not None and not isinstance(parent, str):
        raise ProtocolError("parent")
    mx = data.get("max_nmodules", 0)
    if not isinstance(mx, int) or isinstance(mx, bool) or mx < 0:
        raise ProtocolError("max_nmodules")
    _str_list(data, "apis", where)
    return data


def hand_keepalive(p: bytes) -> Any:
    where = "m"
    msg = decode(p, where=where)
    require(msg, "action", str, where=where)
    data = require(msg, "data", dict, where=where)
    children = data.get("children")
    if isinstance(children, list):
        return {c["uuid"]: c for c in children if isinstance(c, dict) and isinstance(c.get("uuid"), str)}
    return data


def hand_exited(p: bytes) -> Any:
    where = "m"
    msg = decode(p, where=where)
    require(msg, "action", str, where=where)
    data = require(msg, "data", dict, where=where)
    require(data, "uuid", str, where=where)
    return data


def hand_plan(p: bytes) -> Any:
    where = "m"
    msg = decode(p, where=where)
    require(msg, "action", str, where=where)
    data = require(msg, "data", dict, where=where)
    require(data, "campaign", str, where=where)
    spec = require(data, "plan", dict, where=where)
    if not isinstance(spec.get("args", {}), dict):
        raise ProtocolError("args")
    for key in ("runtimes", "files", "engines"):
        v = spec.get(key)
        if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v) or not v:
            raise ProtocolError(key)
    argsets = spec.get("argsets", [[]])
    if not isinstance(argsets, list) or not argsets or not all(
            isinstance(a, list) and all(isinstance(x, str) for x in a) for a in argsets):
        raise ProtocolError("argsets")
    seed = spec.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ProtocolError("seed")
    window = spec.get("window", 4)
    if isinstance(window, bool) or not isinstance(window, int) or not 1 <= window <= 1000:
        raise ProtocolError("window")
    if spec.get("order", "shuffle") not in ("shuffle", "plan"):
        raise ProtocolError("order")
    return spec


CASES: list[tuple[str, dict[str, Any], Callable[[bytes], Any], Callable[[bytes], Any]]] = [
    ("create (node edge)", CREATE, hand_create, lambda p: schema.decode_runtime_control(p, "m")),
    ("create (orchestrator edge)", CREATE, hand_create, lambda p: schema.decode_control(p, "m")),
    ("registration", REG, hand_reg, lambda p: schema.decode_reg(p, "m")),
    ("keepalive (8 children)", KEEPALIVE, hand_keepalive, lambda p: schema.decode_keepalive(p, "m")),
    ("exited (node edge)", EXITED, hand_exited, lambda p: schema.decode_runtime_control(p, "m")),
    ("exited (orchestrator, open)", EXITED, hand_exited, lambda p: schema.decode_exited(p, "m")),
    ("campaign plan (100 files)", PLAN, hand_plan, lambda p: schema.decode_control(p, "m")),
]


def per_msg_ns(fn: Callable[[bytes], Any], payload: bytes, n: int) -> float:
    t0 = time.perf_counter_ns()
    for _ in range(n):
        fn(payload)
    return (time.perf_counter_ns() - t0) / n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="20,000 decodes per repetition (default 100,000)")
    ap.add_argument("--json", action="store_true", help="one JSON object on the last line")
    ap.add_argument("--reps", type=int, default=5, help="interleaved repetitions (default 5)")
    a = ap.parse_args()
    n = 20_000 if a.quick else 100_000
    out: dict[str, Any] = {"quick": a.quick, "n": n, "reps": a.reps, "loadavg_before": list(os.getloadavg()),
                           "machine": f"{platform.machine()} {os.cpu_count()} CPUs, Python {platform.python_version()}"}
    types: dict[str, Any] = {}
    out["types"] = types
    print(f"{'message':30} {'orjson+hand ns':>15} {'msgspec ns':>11} {'ratio':>6}  spread")
    for name, msg, hand, typed in CASES:
        payload = orjson.dumps(msg)
        hand(payload), typed(payload)  # warm up, and both accept it
        hs, ts = [], []
        for _ in range(a.reps):
            hs.append(per_msg_ns(hand, payload, n))
            ts.append(per_msg_ns(typed, payload, n))
        ratios = [t / h for h, t in zip(hs, ts)]
        row: dict[str, Any] = {"bytes": len(payload), "hand_ns": statistics.median(hs), "schema_ns": statistics.median(ts),
               "ratio": statistics.median(ratios), "spread": [min(ratios), max(ratios)]}
        types[name] = row
        print(f"{name:30} {row['hand_ns']:15.0f} {row['schema_ns']:11.0f} {row['ratio']:6.2f}  "
              f"{row['spread'][0]:.2f}..{row['spread'][1]:.2f}  ({len(payload)} B)")
    out["loadavg_after"] = list(os.getloadavg())
    print("ratio < 1: the schema (decode + validate in one pass, typed result) is faster than orjson + hand checks")
    if a.json:
        print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
