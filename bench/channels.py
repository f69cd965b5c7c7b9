#!/usr/bin/env python3
"""Channels benchmark (issue 3 section 10): a real mosquitto, a real node (start.py) with the
`test/bench` and `test/echo` runtimes, and the baselines measured in the same run.

1. worker publish -> supervisor -> other worker: one-way latency p50/p99 (paced) and throughput
   (burst), against two bare POSIX-queue hops (sender -> relay -> receiver processes).
2. external MQTT client -> channel -> loopback echo worker -> client round trip, against a bare
   broker echo (client -> broker -> echo client process -> broker -> client).
3. sustained worker -> MQTT publish rate at QoS 0, counted by a raw-socket subscriber, with the
   rate of a bare paho publisher process as the baseline; lost = sent - received.
4. supervisor RSS with 8 runtimes, and the CPU a node of 8 runtimes uses without traffic
   (supervisor + workers, over 30 s; 10 s in --quick) with the supervisor's wake-ups a second.

Diagnostics beside the ratios: the supervisor's on-CPU time and scheduler slices per paced
loopback message (`/proc/PID/schedstat`, exact), which say how much of the loopback is its work.

The loopback latency and its two-hop baseline are measured in `--reps` interleaved
repetitions (default 3); `loopback_vs_twohop_p50` is the median of the per-repetition ratios,
with min/max in `spread`. The load average is printed with the figures.

Usage: bench/channels.py [--quick] [--json] [--spin SEC] [--reps N]
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import socket
import struct
import subprocess
import sys
import threading
import time
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import orjson  # noqa: E402
import paho.mqtt.client as mqtt  # noqa: E402
import posix_ipc  # type: ignore[import-not-found]  # noqa: E402  (PyPI posix-ipc ships no type information)
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

from bench._common import loadavg, machine, median_spread, pct, table  # noqa: E402
from testbed.broker import Mosquitto  # noqa: E402
from testbed.node import NodeProcess  # noqa: E402

HDR = struct.Struct("<IQ")
SIZE = 64
REALM = "realm"

# --------------------------------------------------------------------------- baseline 1: two queue hops

_HOPS = r"""
import os, sys, time, struct, posix_ipc
role, a, b, n, gap = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
H = struct.Struct("<IQ"); END = 0xFFFFFFFF; pad = b"x" * (64 - H.size)
if role == "send":
    q = posix_ipc.MessageQueue(a)
    sys.stdin.readline()
    for i in range(n):
        q.send(H.pack(i, time.monotonic_ns()) + pad)
        if gap: time.sleep(gap)
    q.send(H.pack(END, time.monotonic_ns()))
elif role == "relay":
    qa, qb = posix_ipc.MessageQueue(a), posix_ipc.MessageQueue(b)
    while True:
        m, _ = qa.receive()
        qb.send(m)
        if H.unpack_from(m)[0] == END: break
else:
    qb = posix_ipc.MessageQueue(b)
    lat = []; first = 0; last = 0
    while True:
        m, _ = qb.receive()
        now = time.monotonic_ns()
        i, t = H.unpack_from(m)
        if i == END: break
        if not first: first = t
        last = now
        lat.append((now - t) / 1000.0)
    sys.stdout.write(__import__("json").dumps({"lat_us": lat, "first_ns": first, "last_ns": last}))
"""


def two_hops(n: int, gap: float) -> dict[str, Any]:
    a, b = f"/slbench.{os.getpid()}.a", f"/slbench.{os.getpid()}.b"
    qa = posix_ipc.MessageQueue(a, posix_ipc.O_CREX, max_messages=10, max_message_size=SIZE)
    qb = posix_ipc.MessageQueue(b, posix_ipc.O_CREX, max_messages=10, max_message_size=SIZE)
    procs: list[subprocess.Popen[str]] = []
    try:
        for role in ("recv", "relay", "send"):
            procs.append(subprocess.Popen([sys.executable, "-c", _HOPS, role, a, b, str(n), str(gap)],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True))
        time.sleep(0.3)
        assert procs[2].stdin is not None
        procs[2].stdin.write("go\n")
        procs[2].stdin.flush()
        out, _ = procs[0].communicate(timeout=120)
        res: dict[str, Any] = json.loads(out)
        return res
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        for q in (qa, qb):
            q.close()
            q.unlink()


# --------------------------------------------------------------------------- MQTT helpers


class SyncClient:
    """A paho client driven synchronously (no thread): publish, then read until the answer."""

    def __init__(self, port: int, sub: str) -> None:
        self.got: list[int] = []
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2)
        self.c.on_message = lambda c, u, m: self.got.append(time.perf_counter_ns())
        subacked: list[bool] = []
        self.c.on_subscribe = lambda *a: subacked.append(True)
        self.c.connect("127.0.0.1", port)
        self.c.subscribe(sub, 0)
        self._until(lambda: bool(subacked), 10)

    def _until(self, cond: Any, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        sock = self.c.socket()
        if not isinstance(sock, socket.socket):
            raise ConnectionError(f"bench/channels.py: the MQTT client has no TCP socket ({sock!r}): not connected?")
        while not cond():
            if self.c.want_write():
                self.c.loop_write()
            r, _, _ = select.select([sock], [], [], 0.2)
            if r:
                self.c.loop_read()
            if time.monotonic() > deadline:
                raise TimeoutError("no answer")

    def rtt(self, topic: str, n: int) -> list[float]:
        pad = b"x" * SIZE
        out: list[float] = []
        for i in range(n):
            before = len(self.got)
            t0 = time.perf_counter_ns()
            self.c.publish(topic, pad, qos=0)
            self._until(lambda: len(self.got) > before, 10)
            out.append((self.got[-1] - t0) / 1000.0)
        return out

    def close(self) -> None:
        self.c.disconnect()


_ECHO = r"""
import sys, paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
port, src, dst = int(sys.argv[1]), sys.argv[2], sys.argv[3]
c = mqtt.Client(CallbackAPIVersion.VERSION2)
c.on_message = lambda cl, u, m: cl.publish(dst, m.payload, qos=0)
c.on_subscribe = lambda *a: print("ready", flush=True)
c.connect("127.0.0.1", port)
c.subscribe(src, 0)
c.loop_forever()
"""

_PUB = r"""
import sys, time, paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
port, topic, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
c = mqtt.Client(CallbackAPIVersion.VERSION2)
c.connect("127.0.0.1", port)
c.loop_write()
sys.stdin.readline()
pad = b"x" * 64
for i in range(n):
    c.publish(topic, pad, qos=0)
    while c.want_write(): c.loop_write()
c.publish(topic, b"END", qos=0)
while c.want_write(): c.loop_write()
time.sleep(0.5)
c.disconnect()
"""


class RawCounter(threading.Thread):
    """A minimal MQTT 3.1.1 subscriber on a raw socket: counts PUBLISH packets without paho's
    per-packet cost, so the counter is not the bottleneck of the rate measurement."""

    def __init__(self, port: int, topic: str) -> None:
        super().__init__(daemon=True)
        self.s = socket.create_connection(("127.0.0.1", port))
        cid = b"rawcounter%d" % os.getpid()
        var = b"\x00\x04MQTT\x04\x02\x00\x3c" + struct.pack(">H", len(cid)) + cid
        self.s.sendall(b"\x10" + self._len(len(var)) + var)
        t = topic.encode()
        sub = b"\x00\x01" + struct.pack(">H", len(t)) + t + b"\x00"
        self.s.sendall(b"\x82" + self._len(len(sub)) + sub)
        self.buf = b""
        self._need(4 + 5)  # CONNACK + SUBACK
        self.buf = self.buf[9:]
        self.count = 0
        self.first = 0.0
        self.last = 0.0
        self.end = threading.Event()

    @staticmethod
    def _len(n: int) -> bytes:
        out = bytearray()
        while True:
            b, n = n % 128, n // 128
            out.append(b | (0x80 if n else 0))
            if not n:
                return bytes(out)

    def _need(self, n: int) -> None:
        while len(self.buf) < n:
            chunk = self.s.recv(1 << 16)
            if not chunk:
                raise ConnectionError("broker closed")
            self.buf += chunk

    def run(self) -> None:
        buf = self.buf
        self.s.settimeout(60)
        try:
            while not self.end.is_set():
                chunk = self.s.recv(1 << 20)
                if not chunk:
                    return
                now = time.perf_counter()
                buf += chunk
                pos = 0
                ln = len(buf)
                while pos + 2 <= ln:
                    h = buf[pos]
                    mult, rem, k = 1, 0, pos + 1
                    while k < ln:
                        b = buf[k]
                        rem += (b & 0x7F) * mult
                        mult *= 128
                        k += 1
                        if not b & 0x80:
                            break
                    else:
                        break
                    if k + rem > ln:
                        break
                    if h >> 4 == 3:
                        body = buf[k:k + rem]
                        tl = struct.unpack_from(">H", body)[0]
                        payload = body[2 + tl:]
                        if payload == b"END" or (len(payload) >= HDR.size and HDR.unpack_from(payload)[0] == 0xFFFFFFFF):
                            self.last = now
                            self.end.set()
                        else:
                            if not self.count:
                                self.first = now
                            self.count += 1
                            self.last = now
                    pos = k + rem
                buf = buf[pos:]
        except OSError:
            return

    def close(self) -> None:
        self.end.set()
        with contextlib.suppress(OSError):
            self.s.close()


# --------------------------------------------------------------------------- the node


def control(probe: SyncClient, rt: str, uuid: str, channels: list[dict[str, str]], **args: Any) -> None:
    probe.c.publish(f"{REALM}/proc/control/{rt}", orjson.dumps({"object_id": uuid, "action": "create", "type": "req", "data": {
        "type": "module", "uuid": uuid, "name": uuid, "args": args, "channels": channels}}), qos=1)
    probe._until(lambda: not probe.c.want_write(), 5)


def wait_res(client: SyncClient, results: list[bytes], timeout: float) -> dict[str, Any]:
    client._until(lambda: bool(results), timeout)
    res: dict[str, Any] = orjson.loads(results.pop(0))
    return res


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def schedstat(pid: int) -> tuple[float, int]:
    """(seconds on a CPU, scheduler slices) of a process so far: exact, unlike the tick-sampled stat."""
    with open(f"/proc/{pid}/schedstat") as f:
        run_ns, _wait_ns, slices = f.read().split()
    return int(run_ns) / 1e9, int(slices)


def wakeups(pid: int) -> int:
    """Voluntary context switches so far (one per sleep that ended)."""
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("voluntary_ctxt_switches"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--spin", type=float, default=200e-6, help="the node's --spin: adaptive idle strategy cap, 0 = always sleep")
    ap.add_argument("--reps", type=int, default=3, help="interleaved repetitions of the loopback latency and its baseline")
    a = ap.parse_args()
    if a.reps < 1:
        ap.error(f"--reps must be >= 1, got {a.reps}")
    n_lat = 1000 if a.quick else 5000
    n_burst = 20000 if a.quick else 100000
    n_rtt = 500 if a.quick else 3000
    n_rate = 100000 if a.quick else 500000
    gap = 0.0003
    res: dict[str, Any] = {"quick": a.quick, "machine": machine(), "reps": a.reps, "loadavg_before": loadavg()}
    spread: dict[str, list[float]] = {}

    # baseline 1: two bare queue hops (latency: once per repetition, below)
    hop_burst = two_hops(n_burst, 0.0)
    res["twohop_rate_msgs"] = len(hop_burst["lat_us"]) / max(1e-9, (hop_burst["last_ns"] - hop_burst["first_ns"]) / 1e9)

    with Mosquitto() as broker:
        node = NodeProcess(broker.port, name="bench", runtimes=["test/bench", "test/bench", "test/echo"], reg_timeout=0.2,
                           log_level="WRN", extra_args=["--spin", str(a.spin)])
        node.start()
        try:
            r1, r2, r3 = node.runtime_uuid("bench.bench"), node.runtime_uuid("bench.bench2"), node.runtime_uuid("bench.echo")
            results: list[bytes] = []
            cl = SyncClient(broker.port, "bench/res")
            cl.c.on_message = lambda c, u, m: results.append(bytes(m.payload)) if m.topic == "bench/res" else cl.got.append(time.perf_counter_ns())
            control(cl, r1, "src", [{"path": "data", "mode": "w", "topic": "bench/lat"}, {"path": "ctl", "mode": "r", "topic": "bench/ctl"}], role="source")
            control(cl, r2, "sink", [{"path": "data", "mode": "r", "topic": "bench/lat"}, {"path": "res", "mode": "w", "topic": "bench/res"}], role="sink")
            control(cl, r1, "rate", [{"path": "data", "mode": "w", "topic": "bench/rate"}, {"path": "ctl", "mode": "r", "topic": "bench/ctl2"}], role="source")
            control(cl, r3, "echo", [{"path": "in", "mode": "r", "topic": "bench/echo/in"}, {"path": "out", "mode": "w", "topic": "bench/echo/out"}])
            time.sleep(1.0)
            # 1. worker -> supervisor -> worker, interleaved with its baseline
            reps: list[tuple[float, float, float, float]] = []
            sup_cpu: list[tuple[float, float]] = []  # per paced message: supervisor on-CPU us, slices
            for _ in range(a.reps):
                hop_lat = two_hops(n_lat, gap)
                (c0, s0) = schedstat(node.pid)
                cl.c.publish("bench/ctl", f"go {n_lat} {int(gap * 1e6)} {SIZE}".encode())
                lat = wait_res(cl, results, 120)
                (c1, s1) = schedstat(node.pid)
                sup_cpu.append(((c1 - c0) / n_lat * 1e6, (s1 - s0) / n_lat))
                reps.append((lat["p50_us"], lat["p99_us"], pct(hop_lat["lat_us"], 50), pct(hop_lat["lat_us"], 99)))
            cl.c.publish("bench/ctl", f"go {n_burst} 0 {SIZE}".encode())
            burst = wait_res(cl, results, 120)
            for i, key in enumerate(["loopback_p50_us", "loopback_p99_us", "twohop_p50_us", "twohop_p99_us"]):
                res[key], lo, hi = median_spread([r[i] for r in reps])
                spread[key] = [lo, hi]
            res["loopback_supervisor_cpu_us_per_msg"], lo, hi = median_spread([c for c, _ in sup_cpu])
            spread["loopback_supervisor_cpu_us_per_msg"] = [lo, hi]
            res["loopback_supervisor_slices_per_msg"] = median_spread([n for _, n in sup_cpu])[0]
            ratios = [r[0] / r[2] for r in reps]
            res["loopback_vs_twohop_p50"], lo, hi = median_spread(ratios)
            spread["loopback_vs_twohop_p50"] = [lo, hi]
            res["loopback_received"] = burst["n"]
            res["loopback_rate_msgs"] = burst["n"] / max(1e-9, (burst["last_ns"] - burst["first_ns"]) / 1e9)
            cl.close()
            # 2. MQTT client -> channel -> echo worker -> client
            ec = SyncClient(broker.port, "bench/echo/out")
            ec.rtt("bench/echo/in", 50)  # warm-up
            ours = ec.rtt("bench/echo/in", n_rtt)
            ec.close()
            # 3. sustained worker -> MQTT
            counter = RawCounter(broker.port, "bench/rate")
            counter.start()
            cc = SyncClient(broker.port, "bench/none")
            t0 = time.perf_counter()
            cc.c.publish("bench/ctl2", f"go {n_rate} 0 {SIZE}".encode())
            cc._until(lambda: not cc.c.want_write(), 5)
            counter.end.wait(120)
            counter.close()
            cc.close()
            res["publish_sent"] = n_rate
            res["publish_received"] = counter.count
            res["publish_lost"] = n_rate - counter.count
            res["publish_rate_msgs"] = counter.count / max(1e-9, counter.last - t0)
            res["supervisor_rss_mb"] = rss_mb(node.pid)
        finally:
            node.stop()
        # 2. baseline: bare broker echo through a paho echo client process
        echo = subprocess.Popen([sys.executable, "-c", _ECHO, str(broker.port), "bench/becho/in", "bench/becho/out"], stdout=subprocess.PIPE, text=True)
        try:
            assert echo.stdout is not None
            echo.stdout.readline()
            bc = SyncClient(broker.port, "bench/becho/out")
            bc.rtt("bench/becho/in", 50)
            base = bc.rtt("bench/becho/in", n_rtt)
            bc.close()
        finally:
            echo.kill()
            echo.wait()
        res["mqtt_echo_p50_us"], res["mqtt_echo_p99_us"] = pct(ours, 50), pct(ours, 99)
        res["broker_echo_p50_us"], res["broker_echo_p99_us"] = pct(base, 50), pct(base, 99)
        # 3. baseline: a bare paho publisher process
        counter = RawCounter(broker.port, "bench/prate")
        counter.start()
        pub = subprocess.Popen([sys.executable, "-c", _PUB, str(broker.port), "bench/prate", str(n_rate)], stdin=subprocess.PIPE, text=True)
        try:
            time.sleep(0.3)
            assert pub.stdin is not None
            t0 = time.perf_counter()
            pub.stdin.write("go\n")
            pub.stdin.flush()
            counter.end.wait(120)
            res["baseline_publish_rate_msgs"] = counter.count / max(1e-9, counter.last - t0)
            res["baseline_publish_received"] = counter.count
        finally:
            counter.close()
            pub.wait(30)
        # 4. RSS with 8 runtimes, and their CPU without traffic
        n8 = NodeProcess(broker.port, name="rss8", runtimes=["test/reg"] * 8, reg_timeout=0.2, log_level="WRN",
                         extra_args=["--spin", str(a.spin)])
        n8.start()
        try:
            time.sleep(1.0)
            res["supervisor_rss_mb_8rt"] = rss_mb(n8.pid)
            res["worker_rss_mb"] = rss_mb(n8.worker_pids()[0])
            pids = [n8.pid] + n8.worker_pids()
            window = 10.0 if a.quick else 30.0
            c0, t0, w0 = sum(cpu_seconds(p) for p in pids), time.monotonic(), wakeups(n8.pid)
            time.sleep(window)
            c1, t1, w1 = sum(cpu_seconds(p) for p in pids), time.monotonic(), wakeups(n8.pid)
            res["idle_cpu_percent_8rt"] = 100.0 * (c1 - c0) / (t1 - t0)
            res["idle_supervisor_wakeups_per_s"] = (w1 - w0) / (t1 - t0)
            res["idle_window_s"] = window
        finally:
            n8.stop()

    res["loadavg_after"] = loadavg()
    res["spread"] = spread
    res["mqtt_echo_vs_broker_p50"] = res["mqtt_echo_p50_us"] / res["broker_echo_p50_us"]
    if not a.json:
        print(f"channels benchmark ({'quick' if a.quick else 'full'}) on {res['machine']}")
        print(f"load average before {res['loadavg_before']}, after {res['loadavg_after']}; latency: medians of {a.reps} repetitions "
              f"(loopback/two-hop ratio min-max {spread['loopback_vs_twohop_p50'][0]:.2f}-{spread['loopback_vs_twohop_p50'][1]:.2f})")
        print(table(["path", "p50 us", "p99 us", "msg/s", "baseline", "b p50 us", "b p99 us", "b msg/s", "p50 ratio", "target"], [
            ["worker->sup->worker", res["loopback_p50_us"], res["loopback_p99_us"], round(res["loopback_rate_msgs"]),
             "2 queue hops", res["twohop_p50_us"], res["twohop_p99_us"], round(res["twohop_rate_msgs"]), res["loopback_vs_twohop_p50"], "<= 1.3"],
            ["mqtt->echo worker->mqtt", res["mqtt_echo_p50_us"], res["mqtt_echo_p99_us"], "", "broker echo", res["broker_echo_p50_us"],
             res["broker_echo_p99_us"], "", res["mqtt_echo_vs_broker_p50"], "<= 1.3"],
            ["worker->mqtt QoS0", "", "", round(res["publish_rate_msgs"]), "paho publisher", "", "", round(res["baseline_publish_rate_msgs"]),
             "", ">= 50000/s"],
        ]))
        print(f"publish: {res['publish_received']}/{res['publish_sent']} received, lost {res['publish_lost']}")
        print(f"supervisor RSS: {res['supervisor_rss_mb_8rt']:.1f} MB with 8 runtimes (target <= 60), "
              f"{res['supervisor_rss_mb']:.1f} MB after the run with 3; a worker: {res['worker_rss_mb']:.1f} MB")
        print(f"loopback: the supervisor is on a CPU {res['loopback_supervisor_cpu_us_per_msg']:.1f} us per paced message "
              f"({res['loopback_supervisor_slices_per_msg']:.2f} scheduler slices; /proc/PID/schedstat)")
        print(f"idle node of 8 runtimes: {res['idle_cpu_percent_8rt']:.2f} % of a CPU over {res['idle_window_s']:g} s (target <= 1); "
              f"the supervisor wakes {res['idle_supervisor_wakeups_per_s']:.1f} times a second")
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
