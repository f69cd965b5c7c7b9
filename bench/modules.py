#!/usr/bin/env python3
"""Modules benchmark (issue 4 section 5): a real mosquitto, a real node (start.py, `linux`
runtime), real wasm; the process-per-module baseline measured in the same run.

1. module start latency = create message published -> first stdout byte received on
   `{realm}/proc/stdio/{uuid}`, p50/p99: warm (module already compiled, same file) and cold
   (first compile: every sample is a new module, helloworld.wasm plus a unique custom section);
2. the baseline: the seed's minimal runtime spawned an engine per module; here a fresh
   `python -m runtimes.engines.run helloworld.wasm` process per module (wasmtime, with a warm
   disk compile cache, so it pays only the process + engine start), spawn -> first stdout byte;
3. 1,000 hello modules created back to back (at most max_nmodules = 128 outstanding, as an
   orchestrator would queue them): how many complete (stdout + exited), none may be lost;
4. delete latency of a running infinite loop (delete published -> exited received);
5. warm start again against a broker with mosquitto's default `set_tcp_nodelay false` (the main
   runs use `set_tcp_nodelay true`, as a deployment should: see docs/modules.md).

Usage: bench/modules.py [--quick] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid as uuidlib
from typing import Any, Dict, List, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import orjson  # noqa: E402
import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from bench._common import finish, machine, pct, table  # noqa: E402
from testbed.broker import Mosquitto  # noqa: E402
from testbed.node import NodeProcess  # noqa: E402

REALM = "realm"
MODULES = os.path.join(ROOT, "build", "modules")
HELLO = os.path.join(MODULES, "helloworld.wasm")


class Watcher:
    """One MQTT client that timestamps the first stdout message and the exited message per module."""

    def __init__(self, port: int) -> None:
        self.cv = threading.Condition()
        self.first_out: Dict[str, float] = {}
        self.out: Dict[str, bytes] = {}
        self.exited: Dict[str, Dict[str, Any]] = {}
        self.exited_at: Dict[str, float] = {}
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.c.on_message = self._on_message
        ready = threading.Event()
        self.c.on_subscribe = lambda *a: ready.set()
        self.c.connect("127.0.0.1", port)
        self.c.subscribe([(f"{REALM}/proc/stdio/#", 0), (f"{REALM}/proc/control/#", 0)])
        self.c.loop_start()
        if not ready.wait(10):
            raise RuntimeError("cannot subscribe")

    def _on_message(self, c: Any, u: Any, msg: mqtt.MQTTMessage) -> None:
        now = time.perf_counter()
        parts = msg.topic.split("/")
        with self.cv:
            if parts[1] == "proc" and parts[2] == "stdio":
                uid = parts[3]
                self.first_out.setdefault(uid, now)
                self.out[uid] = self.out.get(uid, b"") + msg.payload
            else:
                try:
                    m = orjson.loads(msg.payload)
                except orjson.JSONDecodeError:
                    return
                if m.get("action") == "exited":
                    uid = m["data"]["uuid"]
                    self.exited[uid] = m["data"]
                    self.exited_at[uid] = now
            self.cv.notify_all()

    def publish(self, topic: str, obj: Any) -> None:
        self.c.publish(topic, orjson.dumps(obj), qos=1)

    def wait(self, pred: Any, timeout: float) -> bool:
        with self.cv:
            return bool(self.cv.wait_for(pred, timeout))

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


def create(w: Watcher, rt: str, file: str, uid: str, **args: Any) -> None:
    w.publish(f"{REALM}/proc/control/{rt}", {"object_id": str(uuidlib.uuid4()), "action": "create", "type": "req",
                                              "data": {"type": "module", "uuid": uid, "name": f"b-{uid[:8]}", "parent": rt,
                                                       "file": file, "apis": [], "args": args, "channels": []}})


def start_latency(w: Watcher, rt: str, file: str) -> float:
    """Seconds from create published to the first stdout byte; waits for exited too."""
    uid = str(uuidlib.uuid4())
    t0 = time.perf_counter()
    create(w, rt, file, uid)
    if not w.wait(lambda: uid in w.first_out and uid in w.exited, 30):
        raise RuntimeError(f"module {file} did not print and exit in 30 s: {w.exited.get(uid)}")
    return w.first_out[uid] - t0


def cold_files(directory: str, n: int) -> List[str]:
    """n distinct modules: helloworld.wasm + a custom section with unique bytes (a new compile each)."""
    with open(HELLO, "rb") as f:
        base = f.read()
    names = []
    for i in range(n):
        tag = uuidlib.uuid4().bytes
        section = b"\x05bench" + tag
        name = f"cold-{i}.wasm"
        with open(os.path.join(directory, name), "wb") as f:
            f.write(base + b"\x00" + bytes([len(section)]) + section)
        names.append(name)
    return names


def spawn_latency(cache_dir: str) -> float:
    """Seconds from spawning a fresh engine process to its first stdout byte (then it is reaped)."""
    t0 = time.perf_counter()
    p = subprocess.Popen([sys.executable, "-m", "runtimes.engines.run", "--cache-dir", cache_dir, HELLO],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=ROOT)
    assert p.stdout is not None
    first = p.stdout.read(1)
    t1 = time.perf_counter()
    p.stdout.read()
    p.wait(30)
    if not first:
        raise RuntimeError("the spawned engine printed nothing")
    return t1 - t0


def thousand(w: Watcher, rt: str, n: int, window: int, timeout: float) -> Dict[str, Any]:
    uids = [str(uuidlib.uuid4()) for _ in range(n)]
    t0 = time.perf_counter()
    sent = 0
    deadline = time.monotonic() + timeout
    while sent < n and time.monotonic() < deadline:
        with w.cv:
            done = sum(1 for u in uids[:sent] if u in w.exited)
        while sent < n and sent - done < window:
            create(w, rt, "helloworld.wasm", uids[sent])
            sent += 1
        w.wait(lambda: sum(1 for u in uids[:sent] if u in w.exited) > done or sent == n, 1.0)
    w.wait(lambda: all(u in w.exited for u in uids), max(0.1, deadline - time.monotonic()))
    elapsed = time.perf_counter() - t0
    with w.cv:
        ok = sum(1 for u in uids if w.exited.get(u, {}).get("status", {}).get("reason") == "exited"
                 and w.out.get(u) == b"Hello, World!\n")
        reasons: Dict[str, int] = {}
        for u in uids:
            r = w.exited.get(u, {}).get("status", {}).get("reason", "missing")
            reasons[r] = reasons.get(r, 0) + 1
    return {"created": sent, "completed": ok, "lost": n - ok, "seconds": elapsed, "per_s": ok / elapsed,
            "reasons": reasons}


def delete_latency(w: Watcher, rt: str) -> float:
    uid = str(uuidlib.uuid4())
    create(w, rt, "loop.wasm", uid)
    if not w.wait(lambda: uid in w.first_out, 30):
        raise RuntimeError("loop.wasm did not start")
    time.sleep(0.05)
    t0 = time.perf_counter()
    w.publish(f"{REALM}/proc/control/{rt}", {"object_id": str(uuidlib.uuid4()), "action": "delete", "type": "req",
                                              "data": {"type": "module", "uuid": uid}})
    if not w.wait(lambda: uid in w.exited, 30):
        raise RuntimeError("delete did not end loop.wasm")
    if w.exited[uid]["status"]["reason"] != "deleted":
        raise RuntimeError(f"unexpected exit {w.exited[uid]}")
    return w.exited_at[uid] - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer samples (done within 60 s)")
    ap.add_argument("--json", action="store_true", help="print one JSON object on the last line")
    a = ap.parse_args()
    n_warm, n_cold, n_spawn, n_del = (30, 8, 10, 5) if a.quick else (300, 40, 40, 30)
    if not os.path.exists(HELLO):
        subprocess.run(["make", "-s", "-C", os.path.join(ROOT, "modules")], check=True)
    tmp = tempfile.mkdtemp(prefix="sl-bench-modules-")
    try:
        cold_dir = os.path.join(tmp, "cold")
        os.makedirs(cold_dir)
        cfg = os.path.join(tmp, "config.json")
        with open(cfg, "w") as f:
            # memory_total null: 128 outstanding hello modules reserve 128 x 256 MiB, past the default aggregate
            # bound (half the RAM, issue #25); this bench measures start-up and throughput, not that bound
            json.dump({"runtimes": {"linux": {"module_root": [MODULES, cold_dir], "memory_total": None,
                                              "cache_dir": os.path.join(tmp, "cache")}}}, f)
        cold = cold_files(cold_dir, n_cold)
        spawn_cache = os.path.join(tmp, "spawn-cache")
        with Mosquitto(extra_conf="set_tcp_nodelay true") as broker:
            node = NodeProcess(broker.port, name="bench", runtimes=["linux"], reg_timeout=0.3, log_level="INF",
                               extra_args=["-c", cfg])
            with node:
                rt = node.runtime_uuid()
                w = Watcher(broker.port)
                try:
                    start_latency(w, rt, "helloworld.wasm")  # compile once: the warm samples reuse it
                    warm = [start_latency(w, rt, "helloworld.wasm") for _ in range(n_warm)]
                    cold_s = [start_latency(w, rt, name) for name in cold]
                    dels = [delete_latency(w, rt) for _ in range(n_del)]
                    many = thousand(w, rt, 1000, 128, 50.0 if a.quick else 120.0)
                finally:
                    w.close()
            # the same warm start against a broker with mosquitto's default `set_tcp_nodelay false`:
            # Nagle on the broker's sockets meets delayed ACKs and costs ~40 ms per hop
        with Mosquitto() as broker2:
            with NodeProcess(broker2.port, name="bench2", runtimes=["linux"], reg_timeout=0.3, log_level="INF",
                             extra_args=["-c", cfg]) as node2:
                rt2 = node2.runtime_uuid()
                w = Watcher(broker2.port)
                try:
                    start_latency(w, rt2, "helloworld.wasm")
                    warm_nagle = [start_latency(w, rt2, "helloworld.wasm") for _ in range(n_del * 2)]
                finally:
                    w.close()
        spawn_latency(spawn_cache)  # fill the baseline's disk cache
        spawn = [spawn_latency(spawn_cache) for _ in range(n_spawn)]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    def ms(xs: List[float], p: float) -> float:
        return round(pct(xs, p) * 1000, 3)

    res = {
        "warm_start_p50_ms": ms(warm, 50), "warm_start_p99_ms": ms(warm, 99),
        "cold_start_p50_ms": ms(cold_s, 50), "cold_start_p99_ms": ms(cold_s, 99),
        "spawn_start_p50_ms": ms(spawn, 50), "spawn_start_p99_ms": ms(spawn, 99),
        "warm_vs_spawn_speedup": round(pct(spawn, 50) / pct(warm, 50), 1),
        "cold_vs_spawn_speedup": round(pct(spawn, 50) / pct(cold_s, 50), 1),
        "warm_start_default_broker_p50_ms": ms(warm_nagle, 50),
        "delete_p50_ms": ms(dels, 50), "delete_max_ms": round(max(dels) * 1000, 3),
        "lost_of_1000": many["lost"], "thousand_seconds": round(many["seconds"], 2),
        "thousand_per_s": round(many["per_s"], 1), "thousand_reasons": many["reasons"],
        "samples": {"warm": len(warm), "cold": len(cold_s), "spawn": len(spawn), "delete": len(dels), "warm_default_broker": len(warm_nagle)},
        "raw_ms": {"warm": [round(x * 1000, 3) for x in warm], "cold": [round(x * 1000, 3) for x in cold_s],
                   "spawn": [round(x * 1000, 3) for x in spawn], "delete": [round(x * 1000, 3) for x in dels]},
        "machine": machine(), "quick": a.quick,
    }
    print(f"Modules benchmark ({'quick' if a.quick else 'full'}), {res['machine']}")
    print(table(["figure", "p50 ms", "p99 ms", "samples"], [
        ["warm start (create -> first stdout byte)", res["warm_start_p50_ms"], res["warm_start_p99_ms"], len(warm)],
        ["cold start (first compile)", res["cold_start_p50_ms"], res["cold_start_p99_ms"], len(cold_s)],
        ["baseline: spawn an engine process per module", res["spawn_start_p50_ms"], res["spawn_start_p99_ms"], len(spawn)],
        ["delete of a running loop -> exited (p99 = max)", res["delete_p50_ms"], res["delete_max_ms"], len(dels)],
        ["warm start, broker without set_tcp_nodelay", res["warm_start_default_broker_p50_ms"],
         ms(warm_nagle, 99), len(warm_nagle)],
    ]))
    print(f"warm vs spawn: {res['warm_vs_spawn_speedup']}x faster (target >= 10x); cold vs spawn: "
          f"{res['cold_vs_spawn_speedup']}x")
    print(f"1,000 hello modules back to back (<= 128 outstanding): {many['completed']} completed, "
          f"{many['lost']} lost, {many['seconds']:.2f} s ({many['per_s']:.0f}/s), exits {many['reasons']}")
    return finish(res, a.json)


if __name__ == "__main__":
    sys.exit(main())
