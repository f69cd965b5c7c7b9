#!/usr/bin/env python3
"""IPC benchmark: our ring + doorbell (adaptive idle strategy, and with idle = sleep) against
the floor (the same rings with both sides spinning, no doorbells), a bare POSIX queue, the
original design's framing over an AF_UNIX stream socket, and multiprocessing.Queue. "Ours" and
the floor use the ring implementation a node uses (the C core of ipc/_ringc.c when it is built);
the same two with the pure-Python ring are measured too, for the C-vs-Python speedup, and the
CPU cost of one ring write + read in one process for each implementation. Measured
in one run: ping-pong latency p50/p99 and one-way throughput (consumer drains in batches), 64 B
and 4 KiB payloads, parent <-> forked child. Every transport is measured once per repetition,
the repetitions interleaved (load moves all of them alike); each ratio is computed inside a
repetition, and the figure is the median over the repetitions with its min/max as the spread.
The load average is printed with the figures: on a loaded machine they move.

Usage: bench/ipc.py [--quick] [--json] [--reps N]
(SILVERLINE_RING=python: ours and the floor on the pure-Python ring too.) The issue's figures:
ring_vs_floor_throughput_64, ring_vs_socket_throughput_64, ring_vs_mq_p50_64 (the last line of
the table output; JSON keys of the same names, with their min-max under "spread").
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import socket
import struct
import sys
import time
from typing import Any, Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import posix_ipc  # type: ignore[import-not-found]  # noqa: E402  (PyPI posix-ipc ships no type information)

from bench._common import finish, loadavg, machine, median_spread, pct, table  # noqa: E402
from ipc import NodeIPC, WorkerEndpoint, ring  # noqa: E402
from ipc.idle import DEFAULT_MAX_SPIN, IdleStrategy  # noqa: E402

STOP = b"\xff"


class Transport:
    """A pair of ends; `child_*` run in the forked child, `parent_*` in the parent."""

    name = ""

    def setup(self) -> None: ...
    def in_child(self) -> None: ...
    def in_parent(self) -> None: ...
    def parent_send(self, payload: bytes) -> None: ...
    def child_send(self, payload: bytes) -> None: ...
    def child_exit(self) -> None: ...
    def close(self) -> None: ...

    def parent_recv(self) -> bytes:
        raise NotImplementedError

    def child_recv_batch(self) -> list[bytes]:
        raise NotImplementedError


class RingImpl:
    """Rings made by setup() and in_child() use `impl` ("c", "python"; None: the node's default)."""

    impl: str | None = None

    def _with_impl(self, fn: Callable[[], None]) -> None:
        before = ring.default_impl()
        ring.set_default_impl(self.impl or before)
        try:
            fn()
        finally:
            ring.set_default_impl(before)

    @staticmethod
    def label(impl: str | None) -> str:
        return "pure-Python ring" if (impl or ring.default_impl()) == "python" else "C ring"


class RingTransport(RingImpl, Transport):
    """Ours: ring + doorbell with an idle strategy (default: the adaptive one of ipc/idle.py)."""

    def __init__(self, spin: float = DEFAULT_MAX_SPIN, fixed: bool = False, impl: str | None = None) -> None:
        self.spin, self.fixed, self.impl = spin, fixed, impl
        what = "adaptive idle"
        if spin == 0:
            what = "idle = sleep"
        elif fixed:
            what = f"fixed spin {spin * 1e6:.0f} us"
        self.name = f"ring+doorbell, {what}, {self.label(impl)}" + ("" if impl else " (ours)")

    def _idle(self) -> IdleStrategy:
        return IdleStrategy(self.spin, fixed=self.fixed)

    def setup(self) -> None:
        self._with_impl(self._setup)

    def _setup(self) -> None:
        self.node = NodeIPC(ring_capacity=1 << 22, idle=self._idle())
        self.ep = self.node.add_worker(0)
        import selectors

        self.sel = selectors.DefaultSelector()
        self.sel.register(self.node.fileno(), selectors.EVENT_READ)
        self.pending: list[bytes] = []

    def in_child(self) -> None:
        self._with_impl(self._in_child)

    def _in_child(self) -> None:
        self.w = WorkerEndpoint.attach(self.node.sid, 0, idle=self._idle())
        self.node.close()

    def parent_send(self, payload: bytes) -> None:
        self.ep.send(0, 1, payload, 30)  # positional, as the floor calls write()

    def parent_recv(self) -> bytes:
        # the supervisor's loop, reduced: drain, idle (spin or sleep in the selector), wake
        while not self.pending:
            self.pending.extend(m.payload for m in self.ep.drain())
            if self.pending:
                break
            events = self.sel.select(0 if self.node.before_sleep() else 30)
            self.node.after_wake()
            if events:
                self.node.drain_doorbells()
        return self.pending.pop(0)

    def child_send(self, payload: bytes) -> None:
        self.w.send(0, 1, payload, 30)

    def child_recv_batch(self) -> list[bytes]:
        first = self.w.recv(30)
        assert first is not None, "ring: child timed out"
        return [first.payload] + [m.payload for m in self.w.drain()]

    def close(self) -> None:
        self.node.close()


class FloorTransport(RingImpl, Transport):
    """The floor: the same rings, both sides spinning on them, no doorbells, no idle logic."""

    def __init__(self, impl: str | None = None) -> None:
        self.impl = impl
        self.name = f"floor: {self.label(impl)}, both sides spin"

    def setup(self) -> None:
        self._with_impl(self._setup)

    def _setup(self) -> None:
        self.node = NodeIPC(ring_capacity=1 << 22, spin=0)
        self.ep = self.node.add_worker(0)
        self.tx, self.rx = self.ep.tx, self.ep.rx

    def in_child(self) -> None:
        self._with_impl(self._in_child)

    def _in_child(self) -> None:
        self.w = WorkerEndpoint.attach(self.node.sid, 0, spin=0)
        self.node.close()
        self.inbox, self.outbox = self.w.inbox, self.w.outbox

    def parent_send(self, payload: bytes) -> None:
        self.tx.write(0, 1, payload, 30)

    def parent_recv(self) -> bytes:
        read = self.rx.read
        while True:
            msgs = read(1)
            if msgs:
                return msgs[0].payload

    def child_send(self, payload: bytes) -> None:
        self.outbox.write(0, 1, payload, 30)

    def child_recv_batch(self) -> list[bytes]:
        read = self.inbox.read
        while True:
            msgs = read()
            if msgs:
                return [m.payload for m in msgs]

    def close(self) -> None:
        self.node.close()


class MqTransport(Transport):
    name = "bare POSIX queue"

    def __init__(self, size: int) -> None:
        self.size = size

    def setup(self) -> None:
        tag = f"/slbench.{os.getpid()}"
        self.names = (tag + ".down", tag + ".up")
        self.down = posix_ipc.MessageQueue(self.names[0], posix_ipc.O_CREX, max_messages=10, max_message_size=self.size + 8)
        self.up = posix_ipc.MessageQueue(self.names[1], posix_ipc.O_CREX, max_messages=10, max_message_size=self.size + 8)

    def parent_send(self, payload: bytes) -> None:
        self.down.send(payload)

    def parent_recv(self) -> bytes:
        msg: bytes = self.up.receive()[0]
        return msg

    def child_send(self, payload: bytes) -> None:
        self.up.send(payload)

    def child_recv_batch(self) -> list[bytes]:
        out = [self.down.receive(30)[0]]
        while True:
            try:
                out.append(self.down.receive(0)[0])
            except posix_ipc.BusyError:
                return out

    def close(self) -> None:
        for q in (self.down, self.up):
            q.close()
        for n in self.names:
            posix_ipc.unlink_message_queue(n)


HDR = struct.Struct("=IBB")


class SocketTransport(Transport):
    name = "socket [len][h1][h2] (original)"

    def setup(self) -> None:
        self.a, self.b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.buf = b""

    def _send(self, s: socket.socket, payload: bytes) -> None:
        s.sendall(HDR.pack(len(payload), 0, 1) + payload)

    def _recv_frames(self, s: socket.socket, at_least_one: bool = True) -> list[bytes]:
        out: list[bytes] = []
        while True:
            while len(self.buf) >= HDR.size:
                n = HDR.unpack_from(self.buf)[0]
                if len(self.buf) < HDR.size + n:
                    break
                out.append(self.buf[HDR.size : HDR.size + n])
                self.buf = self.buf[HDR.size + n :]
            if out:
                return out
            chunk = s.recv(1 << 16)
            if not chunk:
                raise EOFError
            self.buf += chunk

    def parent_send(self, payload: bytes) -> None:
        self._send(self.a, payload)

    def parent_recv(self) -> bytes:
        return self._recv_frames(self.a)[0]

    def child_send(self, payload: bytes) -> None:
        self._send(self.b, payload)

    def child_recv_batch(self) -> list[bytes]:
        return self._recv_frames(self.b)

    def close(self) -> None:
        self.a.close()
        self.b.close()


class MpQueueTransport(Transport):
    name = "multiprocessing.Queue"

    def setup(self) -> None:
        ctx = mp.get_context("fork")
        self.down: "mp.Queue[bytes]" = ctx.Queue()
        self.up: "mp.Queue[bytes]" = ctx.Queue()

    def parent_send(self, payload: bytes) -> None:
        self.down.put(payload)

    def parent_recv(self) -> bytes:
        return self.up.get()

    def child_send(self, payload: bytes) -> None:
        self.up.put(payload)

    def child_recv_batch(self) -> list[bytes]:
        import queue

        out = [self.down.get(timeout=30)]
        while True:
            try:
                out.append(self.down.get_nowait())
            except queue.Empty:
                return out

    def child_exit(self) -> None:
        self.up.close()
        self.up.join_thread()  # flush the feeder thread before os._exit

    def close(self) -> None:
        self.down.close()
        self.up.close()


def run_child(fn: Callable[[], None]) -> int:
    pid = os.fork()
    if pid == 0:
        try:
            fn()
            os._exit(0)
        except BaseException:
            import traceback

            traceback.print_exc()
            os._exit(1)
    return pid


def pingpong(t: Transport, size: int, n: int) -> tuple[float, float]:
    t.setup()
    payload = b"p" * size

    def child() -> None:
        t.in_child()
        while True:
            for m in t.child_recv_batch():
                if m == STOP:
                    t.child_exit()
                    return
                t.child_send(m)

    pid = run_child(child)
    t.in_parent()
    lat: list[float] = []
    try:
        for i in range(n + n // 10):
            t0 = time.perf_counter()
            t.parent_send(payload)
            got = t.parent_recv()
            dt = time.perf_counter() - t0
            assert len(got) == size
            if i >= n // 10:  # warm-up excluded
                lat.append(dt * 1e6)
        t.parent_send(STOP)
    finally:
        os.waitpid(pid, 0)
        t.close()
    return pct(lat, 50), pct(lat, 99)


def throughput(t: Transport, size: int, n: int) -> float:
    t.setup()
    payload = b"t" * size

    def child() -> None:
        t.in_child()
        count = 0
        while True:
            for m in t.child_recv_batch():
                if m == STOP:
                    t.child_send(struct.pack("=Q", count))
                    t.child_exit()
                    return
                count += 1

    pid = run_child(child)
    t.in_parent()
    try:
        t0 = time.perf_counter()
        for _ in range(n):
            t.parent_send(payload)
        t.parent_send(STOP)
        count = struct.unpack("=Q", t.parent_recv())[0]
        dt = time.perf_counter() - t0
        assert count == n, f"{t.name}: {count} of {n} arrived"
    finally:
        os.waitpid(pid, 0)
        t.close()
    return n / dt


TRANSPORTS: dict[str, Callable[[int], Transport]] = {
    "ring": lambda size: RingTransport(),
    "ringsleep": lambda size: RingTransport(spin=0),
    "floor": lambda size: FloorTransport(),
    "ringpy": lambda size: RingTransport(impl="python"),
    "floorpy": lambda size: FloorTransport(impl="python"),
    "mq": lambda size: MqTransport(size),
    "socket": lambda size: SocketTransport(),
    "mpqueue": lambda size: MpQueueTransport(),
}
# (name of the JSON key, numerator, denominator, figure): figure p50_us or msgs_per_s
RATIOS = [
    ("ring_vs_floor_throughput", "ring", "floor", "msgs_per_s"),
    ("ring_vs_socket_throughput", "ring", "socket", "msgs_per_s"),
    ("ring_vs_mq_throughput", "ring", "mq", "msgs_per_s"),
    ("ring_vs_mq_p50", "ring", "mq", "p50_us"),
    ("ring_vs_socket_p50", "ring", "socket", "p50_us"),
    ("ring_vs_floor_p50", "ring", "floor", "p50_us"),
    ("ringsleep_vs_mq_p50", "ringsleep", "mq", "p50_us"),
    ("ringsleep_vs_socket_throughput", "ringsleep", "socket", "msgs_per_s"),
    ("floor_vs_socket_throughput", "floor", "socket", "msgs_per_s"),
    ("ring_c_vs_python_throughput", "ring", "ringpy", "msgs_per_s"),
    ("floor_c_vs_python_throughput", "floor", "floorpy", "msgs_per_s"),
    ("ring_c_vs_python_p50", "ring", "ringpy", "p50_us"),
    ("ringpy_vs_socket_throughput", "ringpy", "socket", "msgs_per_s"),
    ("ringpy_vs_floorpy_throughput", "ringpy", "floorpy", "msgs_per_s"),
]
TARGETS = {"ring_vs_floor_throughput_64": ">= 0.8", "ring_vs_socket_throughput_64": ">= 2",
           "ring_vs_mq_p50_64": "<= 1.0"}


def write_cost(impl: str, size: int, n: int) -> float:
    """CPU microseconds of one ring write + its share of a batch read, one process, no peer."""
    import mmap

    from ipc.ring import HEADER, Ring

    cap = 1 << 20
    mm = mmap.mmap(-1, HEADER + cap)
    prod = Ring(memoryview(mm), "bench", init=True, capacity=cap, impl=impl)
    cons = Ring(memoryview(mm), "bench", raw=mm, impl=impl)
    write, read, payload = prod.write, cons.read, b"w" * size
    batch = 100
    t0 = time.process_time()
    for _ in range(n // batch):
        for _ in range(batch):
            write(0, 1, payload)
        read()
    dt = time.process_time() - t0
    prod.close()
    cons.close()
    return dt / (n // batch * batch) * 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer iterations: done within 60 s")
    ap.add_argument("--json", action="store_true", help="print one JSON object with the figures last")
    ap.add_argument("--reps", type=int, default=None, help="repetitions inside the run (default 3 quick, 5 full; >= 3)")
    args = ap.parse_args()
    reps = args.reps if args.reps is not None else (3 if args.quick else 5)
    if reps < 1:
        ap.error(f"--reps must be >= 1, got {reps}")
    n_lat = 2000 if args.quick else 20000
    n_tp = 200000 if args.quick else 1000000
    impls = ["c", "python"] if ring.c_available() else ["python"]
    load_before = loadavg()
    runs: list[dict[str, dict[str, float]]] = []
    costs: list[dict[str, float]] = []
    for rep in range(reps):
        r: dict[str, dict[str, float]] = {}
        costs.append({f"{impl}_{size}": write_cost(impl, size, n_tp) for size in (64, 4096) for impl in impls})
        for size in (64, 4096):
            for key, make in TRANSPORTS.items():
                nt = n_tp if size == 64 else n_tp // 5
                p50, p99 = pingpong(make(size), size, n_lat)
                rate = throughput(make(size), size, nt)
                r[f"{key}_{size}"] = {"p50_us": p50, "p99_us": p99, "msgs_per_s": rate}
        runs.append(r)
        print(f"repetition {rep + 1}/{reps} done (load average {loadavg()[0]:.2f})", file=sys.stderr)
    load_after = loadavg()
    raw: dict[str, dict[str, float]] = {}
    spread: dict[str, list[float]] = {}
    for name in runs[0]:
        raw[name] = {}
        for fig in ("p50_us", "p99_us", "msgs_per_s"):
            med, lo, hi = median_spread([r[name][fig] for r in runs])
            raw[name][fig] = med
            spread[f"{name}.{fig}"] = [lo, hi]
    out: dict[str, Any] = {"machine": machine(), "quick": args.quick, "reps": reps, "ring_impl": ring.default_impl(),
                           "loadavg_before": load_before, "loadavg_after": load_after, "raw": raw}
    for key, num, den, fig in RATIOS:
        for size in (64, 4096):
            vals = [r[f"{num}_{size}"][fig] / r[f"{den}_{size}"][fig] for r in runs]
            med, lo, hi = median_spread(vals)
            out[f"{key}_{size}"] = med
            spread[f"{key}_{size}"] = [lo, hi]
    for size in (64, 4096):
        for impl in impls:
            med, lo, hi = median_spread([c[f"{impl}_{size}"] for c in costs])
            out[f"ring_write_cpu_us_{impl}_{size}"] = med
            spread[f"ring_write_cpu_us_{impl}_{size}"] = [lo, hi]
        if "c" in impls:
            med, lo, hi = median_spread([c[f"python_{size}"] / c[f"c_{size}"] for c in costs])
            out[f"ring_write_c_vs_python_speedup_{size}"] = med
            spread[f"ring_write_c_vs_python_speedup_{size}"] = [lo, hi]
    out["spread"] = spread
    print(f"machine: {out['machine']}")
    if ring.default_impl() == "c":
        print("ours and the floor: the C ring (ipc/_ringc); the pure-Python ring measured beside them")
    else:
        why = ring.C_UNAVAILABLE or f"{ring.ENV_IMPL}=python"
        print(f"ours and the floor: the pure-Python ring ({why}); the C-vs-Python ratios are then ~1")
    print(f"load average (1, 5, 15 min): before {load_before}, after {load_after}; {reps} repetitions, medians")
    rows = []
    for size in (64, 4096):
        for key, make in TRANSPORTS.items():
            f = raw[f"{key}_{size}"]
            lo, hi = spread[f"{key}_{size}.msgs_per_s"]
            rows.append([make(size).name, size, f["p50_us"], f["p99_us"], f["msgs_per_s"], f"{lo:.3g}-{hi:.3g}"])
    print(table(["transport", "bytes", "p50 us", "p99 us", "msg/s", "msg/s min-max"], rows))
    print()
    rrows = []
    for key, num, den, fig in RATIOS:
        k64, k4 = f"{key}_64", f"{key}_4096"
        lo, hi = spread[k64]
        rrows.append([key, out[k64], f"{lo:.3g}-{hi:.3g}", out[k4], TARGETS.get(k64, "")])
    print(table(["ratio (median of repetitions)", "64 B", "64 B min-max", "4 KiB", "target (64 B)"], rrows))
    print()
    crows = []
    for impl in impls:
        k = f"ring_write_cpu_us_{impl}_64"
        crows.append([k[:-3], out[k], "{:.3g}-{:.3g}".format(*spread[k]), out[k[:-3] + "_4096"]])
    if "c" in impls:
        k = "ring_write_c_vs_python_speedup_64"
        crows.append([k[:-3], out[k], "{:.3g}-{:.3g}".format(*spread[k]), out[k[:-3] + "_4096"]])
    print(table(["one write + read, one process (CPU us)", "64 B", "64 B min-max", "4 KiB"], crows))
    print("targets (issue 18): " + ", ".join(f"{k} {v}: {out[k]:.3g}" for k, v in TARGETS.items()))
    return finish(out, args.json)


if __name__ == "__main__":
    sys.exit(main())
