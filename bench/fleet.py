#!/usr/bin/env python3
"""Fleet scale of the orchestrator (issue #26 item 1): a simulated fleet of N nodes x 2 runtimes
(testbed/fleet.py: the real registration and keepalive messages over a few MQTT connections) on a
real mosquitto and a real orchestrator process, while REST clients hammer the runtime list and
the dashboard; and placement (creates without a target runtime) in process.

Figures:
- `false_deaths`: runtimes declared dead while every one of them kept sending keepalives;
- `rest_list_p50_ms` / `rest_list_p99_ms`: one page (100 runtimes) while keepalives flow;
  `rest_list_hammered_*` the same while `--hammers` other clients read full lists and the dashboard
  back to back (the GIL is shared with them); `rest_full_list_*` those full lists (all runtimes);
- `storm_s`: every manager and runtime registered (in chunks of 500, as testbed/fleet.py sends);
  `storm_resends`: registrations sent again for want of an answer (the node's backoff with jitter,
  supervisor/registrar.py), of `storm_registrations`;
- `broker_drops`: what mosquitto dropped over the whole run (its `$SYS` counter), with the
  documented broker settings (common/broker.py);
- `burst_*`: `--burst` creates without a target published back to back at QoS 1 by one client:
  per second, p50/p99 until the orchestrator sends each on to a runtime, `burst_creates_lost`
  (neither sent on nor refused);
- `placement_creates_per_s`: creates without `parent` through `Orchestrator.handle_batch` on a real
  SQLite (WAL) store with the fleet's runtimes registered (placement index, scheduler.py), and
  `placement_scan_creates_per_s`: the same with `scan_pick`, the one pass over every runtime that
  placement did before (the baseline, measured in the same run on the same fleet);
- `peak_rss_mb` / `cpu_pct`: the orchestrator process (VmHWM over the whole run; CPU over the hammer phase).
The baseline for false deaths and lists is the issue's measurement of the code before (10k
runtimes: 9,126 declared dead 16 s into 200 back-to-back lists; a full list ~230 ms under the lock).

Usage: bench/fleet.py [--quick] [--json] [--nodes N] [--ka S] [--hammers H] [--seconds S] [--burst N]
  --quick  1,000 nodes (2,000 runtimes), ka 1 s, 8 s of hammering, a burst of 2,000: within 60 s here
  --json   one JSON object on the last line
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
import urllib.request
from typing import Any

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench._common import finish, loadavg, machine, pct  # noqa: E402
from common.broker import SYS_INTERVAL  # noqa: E402
from common.wire import envelope  # noqa: E402
from orchestrator.core import Orchestrator  # noqa: E402
from orchestrator.model import Node  # noqa: E402
from orchestrator.scheduler import Scheduler, scan_pick  # noqa: E402
from orchestrator.service import BATCH  # noqa: E402
from orchestrator.store import Store  # noqa: E402
from testbed.broker import Mosquitto  # noqa: E402
from testbed.fleet import SimFleet  # noqa: E402
from testbed.orchestrator import OrchestratorProc  # noqa: E402

R = "realm"


class ScanScheduler(Scheduler):
    """What placement was before the index: a scan of every runtime per create (the baseline)."""

    def __init__(self, o: Orchestrator) -> None:
        super().__init__()
        self.o = o

    def pick(self, apis: frozenset[str], kind: str | None = None) -> Node | None:
        best = scan_pick(self.o.nodes.values(), apis, kind)
        if best is not None:
            self._stamp += 1
            best.last_pick = self._stamp
        return best


def placement(runtimes: int, creates: int, scan: bool) -> float:
    """Creates/s without a target runtime at `runtimes` runtimes (half plain, half benchmarking), fed
    as the service feeds them: `Orchestrator.handle_batch` with up to BATCH messages (one commit each)."""
    tmp = tempfile.mkdtemp(prefix="sl-bench-fleet-")
    try:
        store = Store(os.path.join(tmp, "o.db"))
        o = Orchestrator(store, lambda t, p: None, realm=R, ka_interval=0)
        if scan:
            o.scheduler = ScanScheduler(o)
        regs: list[tuple[str, bytes, float]] = []
        for i in range(runtimes // 2):
            m = f"m-{i:08d}"
            regs.append((f"{R}/proc/reg/{m}", orjson.dumps(envelope("create", {"type": "manager", "uuid": m, "name": f"n{i}"})), 0.0))
            for k, apis in enumerate((["wasm", "wasi"], ["wasm", "wasi", "benchmarking"])):
                u = f"r-{i:08d}-{k}"
                regs.append((f"{R}/proc/reg/{u}", orjson.dumps(envelope("create", {
                    "type": "runtime", "uuid": u, "name": f"n{i}.{k}", "max_nmodules": 4, "apis": apis, "parent": m})), 0.0))
        for j in range(0, len(regs), BATCH):
            o.handle_batch(regs[j:j + BATCH])
        msgs = [(f"{R}/proc/control", orjson.dumps(envelope("create", {"type": "module", "uuid": f"mod-{j:08d}", "name": f"job{j}",
                                                                       "file": "job.wasm", "apis": [], "args": {"argv": []}})), 0.0)
                for j in range(creates)]
        t0 = time.perf_counter()
        for j in range(0, len(msgs), BATCH):
            o.handle_batch(msgs[j:j + BATCH])
        dt = time.perf_counter() - t0
        placed = sum(len(n.children) + len(n.queue) for n in o.nodes.values())
        if placed != creates:
            raise RuntimeError(f"placement bench: {placed} of {creates} creates placed")
        store.close()
        return creates / dt
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _proc_stat(pid: int) -> tuple[float, float]:
    """(CPU seconds, peak RSS MB) of a process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    hwm = 0.0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1]) / 1024
    return cpu, hwm


class Drops:
    """The broker's drop counter ($SYS, every sys_interval) as seen by a probe of the bench's own."""

    def __init__(self, port: int) -> None:
        self.values: list[int] = []
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-drops-{os.getpid()}", protocol=mqtt.MQTTv5)
        self.c.on_message = lambda c, u, m: self.values.append(int(m.payload))
        self.c.connect("127.0.0.1", port)
        self.c.subscribe("$SYS/broker/publish/messages/dropped", 0)
        self.c.loop_start()

    def now(self, wait: float = SYS_INTERVAL * 2.5) -> int:
        """The counter after the next update (what was dropped by now is in it)."""
        n = len(self.values)
        deadline = time.monotonic() + wait
        while len(self.values) <= n and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.values[-1] if self.values else 0

    def close(self) -> None:
        self.c.loop_stop()
        self.c.disconnect()


def burst(port: int, n: int) -> dict[str, Any]:
    """`n` creates without a target runtime published back to back (QoS 1, one client); each one's
    latency is until the orchestrator sends it to a runtime; lost: never sent on nor refused."""
    sent: dict[str, float] = {}
    out: dict[str, float] = {}
    refused: set[str] = set()
    lock = threading.Lock()

    def on_message(c: Any, u: Any, m: Any) -> None:
        t = time.perf_counter()
        try:
            msg = orjson.loads(m.payload)
        except orjson.JSONDecodeError:
            return
        data = msg.get("data") or {}
        with lock:
            if m.topic.startswith(f"{R}/proc/control/") and msg.get("action") == "create":
                out.setdefault(str(data.get("uuid")), t)
            elif m.topic == f"{R}/proc/log":
                inner = (data.get("data") or {}).get("data") or {}
                if isinstance(inner, dict) and str(inner.get("uuid", "")).startswith("burst-"):
                    refused.add(str(inner["uuid"]))

    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-burst-sub-{os.getpid()}", protocol=mqtt.MQTTv5)
    sub.on_message = on_message
    sub.connect("127.0.0.1", port)
    sub.subscribe([(f"{R}/proc/control/+", 1), (f"{R}/proc/log", 1)])
    sub.loop_start()
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-burst-pub-{os.getpid()}", protocol=mqtt.MQTTv5)
    pub.max_inflight_messages_set(1000)
    pub.max_queued_messages_set(0)
    pub.connect("127.0.0.1", port)
    pub.loop_start()
    try:
        time.sleep(0.5)  # the SUBACK (paho gives no wait on a bare client)
        msgs = [(f"burst-{j:08d}", orjson.dumps(envelope("create", {"type": "module", "uuid": f"burst-{j:08d}",
                                                                      "name": "burst", "file": "job.wasm"})))
                for j in range(n)]
        t0 = time.perf_counter()
        for u, body in msgs:
            sent[u] = time.perf_counter()
            pub.publish(f"{R}/proc/control", body, qos=1)
        last, seen = time.monotonic(), 0
        while time.monotonic() - last < 10.0:  # until nothing more comes for 10 s
            with lock:
                got = len(out) + len(refused)
            if got >= n:
                break
            if got != seen:
                seen, last = got, time.monotonic()
            time.sleep(0.05)
        with lock:
            lat = [(out[u] - sent[u]) * 1e3 for u in sent if u in out]
            end = max(out.values(), default=t0)
            lost = n - len([u for u in sent if u in out or u in refused])
            nref = len(refused)
    finally:
        for c in (pub, sub):
            c.loop_stop()
            c.disconnect()
    return {"burst_creates": n, "burst_creates_lost": lost, "burst_creates_refused": nref,
            "burst_creates_per_s": round(len(lat) / max(1e-9, end - t0)),
            "burst_create_p50_ms": round(pct(lat, 50), 1) if lat else None,
            "burst_create_p99_ms": round(pct(lat, 99), 1) if lat else None}


def fleet(nodes: int, ka: float, hammers: int, seconds: float, burst_n: int) -> dict[str, Any]:
    tmp = tempfile.mkdtemp(prefix="sl-bench-fleet-")
    res: dict[str, Any] = {}
    try:
        # the documented broker settings (docs/orchestrator.md, "Broker settings"; common/broker.py)
        with Mosquitto(fleet=True) as broker, OrchestratorProc(broker.port, tmp, ka_interval=ka) as orch:
            assert orch.proc is not None
            pid = orch.proc.pid
            drops = Drops(broker.port)
            drops0 = drops.now()
            with SimFleet(broker.port, nodes=nodes) as sim:
                n = len(sim.runtimes)
                res["storm_s"] = round(sim.start(timeout=600), 2)
                res["storm_resends"] = sim.resends
                res["storm_registrations"] = sim.registrations
                while orch.get("/api/runtimes/?count=0")["count"] != n:
                    time.sleep(0.1)
                stop = threading.Event()
                page: list[float] = []
                full: list[float] = []
                reads = [0]

                def get(path: str) -> float:
                    t0 = time.perf_counter()
                    with urllib.request.urlopen(orch.url + path, timeout=60) as r:
                        r.read()
                    return (time.perf_counter() - t0) * 1e3

                def hammer(i: int) -> None:
                    k = 0
                    while not stop.is_set():
                        if k % 2 == 0:
                            full.append(get("/api/runtimes/?count=100000"))
                        else:
                            get("/api/dashboard/")
                        reads[0] += 1
                        k += 1

                def pager() -> None:
                    while not stop.is_set():
                        page.append(get(f"/api/runtimes/?start={(len(page) * 100) % max(1, n - 100)}&count=100"))
                        reads[0] += 1
                        time.sleep(0.01)

                # first the page alone while keepalives flow, then under the hammer
                quiet_t = threading.Thread(target=pager, daemon=True)
                quiet_t.start()
                time.sleep(min(5.0, seconds / 2))
                stop.set()
                quiet_t.join(60)
                quiet, page[:] = list(page), []
                stop.clear()
                threads = [threading.Thread(target=hammer, args=(i,), daemon=True) for i in range(hammers)]
                threads.append(threading.Thread(target=pager, daemon=True))
                cpu0, _ = _proc_stat(pid)
                t0 = time.monotonic()
                for t in threads:
                    t.start()
                time.sleep(seconds)
                stop.set()
                for t in threads:
                    t.join(60)
                wall = time.monotonic() - t0
                cpu1, hwm_hammer = _proc_stat(pid)
                time.sleep(ka)  # one more round: a death due now would be declared by now
                dead = orch.get("/api/runtimes/?status=D&count=0")["count"]
                res.update(burst(broker.port, burst_n))
                hwm = max(hwm_hammer, _proc_stat(pid)[1])
                res["broker_drops"] = drops.now() - drops0
                drops.close()
                status = orch.get("/api/status/")
                res.update({
                    "runtimes": n, "nodes": nodes, "ka_interval_s": ka, "hammers": hammers, "hammer_s": round(wall, 1),
                    "false_deaths": dead, "rest_reads": reads[0], "keepalives_sent": sim.sent_keepalives,
                    "rest_list_p50_ms": round(pct(quiet, 50), 2), "rest_list_p99_ms": round(pct(quiet, 99), 2),
                    "rest_list_hammered_p50_ms": round(pct(page, 50), 2), "rest_list_hammered_p99_ms": round(pct(page, 99), 2),
                    "rest_full_list_p50_ms": round(pct(full, 50), 1), "rest_full_list_p99_ms": round(pct(full, 99), 1),
                    "cpu_pct": round(100 * (cpu1 - cpu0) / wall, 1), "peak_rss_mb": round(hwm, 1),
                    "fences": status.get("fences"), "paused": status.get("paused"),
                    "register_requests": sum(sim.register_requests.values()),
                })
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="1,000 nodes, ka 1 s, 8 s of hammering (within 60 s)")
    ap.add_argument("--json", action="store_true", help="one JSON object on the last line")
    ap.add_argument("--nodes", type=int, help="simulated nodes, 2 runtimes each (default 5,000; --quick 1,000)")
    ap.add_argument("--ka", type=float, help="keepalive interval, s (default 5; --quick 1)")
    ap.add_argument("--hammers", type=int, default=4, help="clients reading full lists and the dashboard (default 4)")
    ap.add_argument("--seconds", type=float, help="hammer phase, s (default 8 intervals; --quick 8)")
    ap.add_argument("--burst", type=int, help="creates in the burst (default 10,000; --quick 2,000)")
    a = ap.parse_args()
    nodes = a.nodes or (1000 if a.quick else 5000)
    ka = a.ka or (1.0 if a.quick else 5.0)
    seconds = a.seconds or (8.0 if a.quick else 8 * ka)
    for bad, what in ((nodes < 1, "--nodes"), (ka <= 0, "--ka"), (a.hammers < 0, "--hammers"), (seconds <= 0, "--seconds")):
        if bad:
            print(f"bench/fleet.py: {what} must be positive", file=sys.stderr)
            return 2
    res: dict[str, Any] = {"machine": machine(), "loadavg_before": loadavg()}
    runtimes = 2 * nodes
    creates = 2000 if a.quick else 5000
    scan_creates = 300 if a.quick else 500
    res["placement_runtimes"] = runtimes
    res["placement_creates_per_s"] = round(placement(runtimes, creates, scan=False))
    res["placement_scan_creates_per_s"] = round(placement(runtimes, scan_creates, scan=True))
    res.update(fleet(nodes, ka, a.hammers, seconds, a.burst or (2000 if a.quick else 10000)))
    res["loadavg_after"] = loadavg()
    print(f"machine: {res['machine']}; load {res['loadavg_before']} -> {res['loadavg_after']}")
    print(f"fleet: {res['nodes']} nodes x 2 = {res['runtimes']} runtimes, keepalive {ka:g} s; registered in {res['storm_s']} s")
    print(f"hammer: {a.hammers} clients (full list + dashboard) + 1 pager for {res['hammer_s']} s, {res['rest_reads']} reads:"
          f" false deaths {res['false_deaths']} (baseline: 9,126 of 10,000)")
    print(f"REST page of 100 while keepalives flow: p50 {res['rest_list_p50_ms']} ms, p99 {res['rest_list_p99_ms']} ms;"
          f" under the hammer p50 {res['rest_list_hammered_p50_ms']} ms, p99 {res['rest_list_hammered_p99_ms']} ms;"
          f" full list p50 {res['rest_full_list_p50_ms']} ms, p99 {res['rest_full_list_p99_ms']} ms")
    print(f"orchestrator: CPU {res['cpu_pct']} % while hammered, peak RSS {res['peak_rss_mb']} MB, fences {res['fences']}")
    print(f"storm: {res['storm_registrations']} registrations sent, {res['storm_resends']} of them again (no answer in time);"
          f" broker drops over the run {res['broker_drops']} (baseline: 26.8k at 5,000 nodes, mosquitto's defaults)")
    print(f"burst of {res['burst_creates']} creates: {res['burst_creates_per_s']}/s, p50 {res['burst_create_p50_ms']} ms,"
          f" p99 {res['burst_create_p99_ms']} ms, lost {res['burst_creates_lost']} (baseline: 312-582 of 2,000 lost),"
          f" refused {res['burst_creates_refused']}")
    print(f"placement at {runtimes} runtimes: {res['placement_creates_per_s']} creates/s (index) vs"
          f" {res['placement_scan_creates_per_s']} (scan, baseline)")
    return finish(res, a.json)


if __name__ == "__main__":
    sys.exit(main())
