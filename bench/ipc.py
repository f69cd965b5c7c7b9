#!/usr/bin/env python3
"""IPC benchmark: our ring + doorbell against a bare POSIX queue, the original design's
framing over an AF_UNIX stream socket, and multiprocessing.Queue. Measured in one run:
ping-pong latency p50/p99 and one-way throughput (consumer drains in batches), 64 B and
4 KiB payloads, parent <-> forked child.

Usage: bench/ipc.py [--quick] [--json]
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import socket
import struct
import sys
import time
from typing import Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import posix_ipc  # noqa: E402

from bench._common import machine, pct, table  # noqa: E402
from ipc import NodeIPC, WorkerEndpoint  # noqa: E402

STOP = b"\xff"


class Transport:
    """A pair of ends; `child_*` run in the forked child, `parent_*` in the parent."""

    name = ""

    def setup(self) -> None: ...
    def in_child(self) -> None: ...
    def in_parent(self) -> None: ...
    def parent_send(self, payload: bytes) -> None: ...
    def parent_recv(self) -> bytes: ...
    def child_send(self, payload: bytes) -> None: ...
    def child_recv_batch(self) -> list[bytes]: ...
    def child_exit(self) -> None: ...
    def close(self) -> None: ...


class RingTransport(Transport):
    name = "ring+doorbell (ours)"

    def __init__(self, spin: float = 0.0) -> None:
        self.spin = spin
        if spin:
            self.name = f"ring+doorbell, spin {spin * 1e6:.0f} us (ours)"

    def setup(self) -> None:
        self.node = NodeIPC(ring_capacity=1 << 22, spin=self.spin)
        self.ep = self.node.add_worker(0)
        import selectors

        self.sel = selectors.DefaultSelector()
        self.sel.register(self.node.fileno(), selectors.EVENT_READ)
        self.pending: list[bytes] = []

    def in_child(self) -> None:
        self.w = WorkerEndpoint.attach(self.node.sid, 0, spin=self.spin)
        self.node.close()

    def parent_send(self, payload: bytes) -> None:
        self.ep.send(0, 1, payload, timeout=30)

    def parent_recv(self) -> bytes:
        while not self.pending:
            self.pending.extend(m.payload for m in self.ep.drain())
            if self.pending:
                break
            if not self.node.before_sleep():
                self.sel.select(30)
            self.node.after_wake()
            self.node.drain_doorbells()
        return self.pending.pop(0)

    def child_send(self, payload: bytes) -> None:
        self.w.send(0, 1, payload, timeout=30)

    def child_recv_batch(self) -> list[bytes]:
        first = self.w.recv(30)
        assert first is not None, "ring: child timed out"
        return [first.payload] + [m.payload for m in self.w.drain()]

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
        return self.up.receive()[0]

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
        self.down = ctx.Queue()
        self.up = ctx.Queue()

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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer iterations: done within 60 s")
    ap.add_argument("--json", action="store_true", help="print one JSON object with the figures last")
    args = ap.parse_args()
    n_lat = 2000 if args.quick else 20000
    n_tp = 50000 if args.quick else 500000
    results: dict[str, dict[str, float]] = {}
    keys = {"ring": RingTransport, "ringspin": lambda: RingTransport(spin=50e-6), "mq": None, "socket": SocketTransport, "mpqueue": MpQueueTransport}
    rows = []
    for size in (64, 4096):
        for key, cls in keys.items():
            make = (lambda: MqTransport(size)) if key == "mq" else cls  # type: ignore[misc]
            nt = n_tp if size == 64 else n_tp // 5
            p50, p99 = pingpong(make(), size, n_lat)
            rate = throughput(make(), size, nt)
            results[f"{key}_{size}"] = {"p50_us": p50, "p99_us": p99, "msgs_per_s": rate}
            rows.append([make().name, size, p50, p99, rate, rate * size / 1e6])
    out = {"machine": machine(), "quick": args.quick, "raw": results}
    for size in (64, 4096):
        r = results
        out[f"ring_vs_socket_throughput_{size}"] = r[f"ring_{size}"]["msgs_per_s"] / r[f"socket_{size}"]["msgs_per_s"]
        out[f"ring_vs_mq_throughput_{size}"] = r[f"ring_{size}"]["msgs_per_s"] / r[f"mq_{size}"]["msgs_per_s"]
        out[f"ring_vs_mq_p50_{size}"] = r[f"ring_{size}"]["p50_us"] / r[f"mq_{size}"]["p50_us"]
        out[f"ring_vs_socket_p50_{size}"] = r[f"ring_{size}"]["p50_us"] / r[f"socket_{size}"]["p50_us"]
        out[f"ringspin_vs_socket_throughput_{size}"] = r[f"ringspin_{size}"]["msgs_per_s"] / r[f"socket_{size}"]["msgs_per_s"]
        out[f"ringspin_vs_mq_p50_{size}"] = r[f"ringspin_{size}"]["p50_us"] / r[f"mq_{size}"]["p50_us"]
    print(f"machine: {out['machine']}")
    print(table(["transport", "bytes", "p50 us", "p99 us", "msg/s", "MB/s"], rows))
    print()
    print(table(["ratio (ours / baseline)", "64 B", "4 KiB"], [
        ["throughput vs socket (c)", out["ring_vs_socket_throughput_64"], out["ring_vs_socket_throughput_4096"]],
        ["throughput vs POSIX queue (b)", out["ring_vs_mq_throughput_64"], out["ring_vs_mq_throughput_4096"]],
        ["p50 latency vs POSIX queue (b)", out["ring_vs_mq_p50_64"], out["ring_vs_mq_p50_4096"]],
        ["p50 latency vs socket (c)", out["ring_vs_socket_p50_64"], out["ring_vs_socket_p50_4096"]],
        ["spin 50 us: throughput vs socket (c)", out["ringspin_vs_socket_throughput_64"], out["ringspin_vs_socket_throughput_4096"]],
        ["spin 50 us: p50 latency vs POSIX queue (b)", out["ringspin_vs_mq_p50_64"], out["ringspin_vs_mq_p50_4096"]],
    ]))
    if args.json:
        print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
