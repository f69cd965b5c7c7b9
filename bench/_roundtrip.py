#!/usr/bin/env python3
"""Round-trip probe for strace/perf (docs/performance.md, "Where the doorbell path's time goes"):
64 B ping-pong, parent <-> forked child, with the loop of bench/ipc.py; prints p50, CPU per round
trip (user/sys of both processes, getrusage around the loop) and context switches per round trip.
Not run by `make bench` (no --quick/--json): it is the thing to run under `strace -f -c` or
`perf stat` / `perf record`.

Usage: bench/_roundtrip.py ring|mq N [SPIN] [--place free|cross|same] [--root DIR]
  ring: ours (SPIN = the idle strategy's cap in seconds, 0 = always sleep; default 0.0002)
  mq:   a bare POSIX queue pair
  --place cross: parent on CPU 0, child on CPU 1; same: both on CPU 0; free: where the scheduler puts them
  --root DIR: import ipc/ from another checkout (e.g. an older commit) to compare
Example: strace -f -c python bench/_roundtrip.py ring 5000 0 --place cross
"""
from __future__ import annotations

import argparse
import os
import resource
import selectors
import statistics
import sys
import time

ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
ap.add_argument("variant", choices=["ring", "mq"])
ap.add_argument("n", type=int)
ap.add_argument("spin", type=float, nargs="?", default=200e-6)
ap.add_argument("--place", choices=["free", "cross", "same"], default="free")
ap.add_argument("--root", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
a = ap.parse_args()
sys.path.insert(0, a.root)


def pin(child: bool) -> None:
    if a.place == "same":
        os.sched_setaffinity(0, {0})
    elif a.place == "cross":
        os.sched_setaffinity(0, {1 if child else 0})


def usage(who: int) -> tuple[float, float, int]:
    r = resource.getrusage(who)
    return r.ru_utime, r.ru_stime, r.ru_nvcsw + r.ru_nivcsw


pin(False)
lat: list[float] = []
if a.variant == "mq":
    import posix_ipc  # type: ignore[import-not-found]  # PyPI posix-ipc ships no type information

    qa = posix_ipc.MessageQueue(f"/slrt.{os.getpid()}.a", posix_ipc.O_CREX, max_messages=10, max_message_size=72)
    qb = posix_ipc.MessageQueue(f"/slrt.{os.getpid()}.b", posix_ipc.O_CREX, max_messages=10, max_message_size=72)
    pid = os.fork()
    if pid == 0:
        pin(True)
        while True:
            m, _ = qa.receive()
            if m == b"q":
                os._exit(0)
            qb.send(m)
    t_start, r0 = time.perf_counter(), usage(resource.RUSAGE_SELF)
    for _ in range(a.n):
        t0 = time.perf_counter()
        qa.send(b"x" * 64)
        qb.receive()
        lat.append(time.perf_counter() - t0)
    qa.send(b"q")
    os.waitpid(pid, 0)
    for q in (qa, qb):
        q.close()
        q.unlink()
else:
    from ipc import NodeIPC, WorkerEndpoint

    node = NodeIPC(ring_capacity=1 << 20, spin=a.spin)
    ep = node.add_worker(0)
    sel = selectors.DefaultSelector()
    sel.register(node.fileno(), selectors.EVENT_READ)
    pid = os.fork()
    if pid == 0:
        pin(True)
        w = WorkerEndpoint.attach(node.sid, 0, spin=a.spin)
        node.close()
        while True:
            msg = w.recv(30)
            if msg is None or msg.payload == b"q":
                os._exit(0)
            w.send(0, 1, msg.payload)
    pending: list[bytes] = []
    t_start, r0 = time.perf_counter(), usage(resource.RUSAGE_SELF)
    for _ in range(a.n):
        t0 = time.perf_counter()
        ep.send(0, 1, b"x" * 64)
        while not pending:
            pending.extend(m.payload for m in ep.drain())
            if pending:
                break
            events = sel.select(0 if node.before_sleep() else 30)
            node.after_wake()
            if events:
                node.drain_doorbells()
        pending.pop()
        lat.append(time.perf_counter() - t0)
    ep.send(0, 1, b"q")
    os.waitpid(pid, 0)
    node.close()
r1, rc, t_end = usage(resource.RUSAGE_SELF), usage(resource.RUSAGE_CHILDREN), time.perf_counter()


def per(x: float) -> str:
    return f"{x / a.n * 1e6:.1f}"


print(f"{a.variant} place={a.place} spin={a.spin:g} root={a.root}: p50 {statistics.median(lat) * 1e6:.1f} us; "
      f"mean {per(t_end - t_start)} us; user us/rt parent {per(r1[0] - r0[0])} child {per(rc[0])}; "
      f"sys us/rt parent {per(r1[1] - r0[1])} child {per(rc[1])}; "
      f"context switches/rt parent {(r1[2] - r0[2]) / a.n:.2f} child {rc[2] / a.n:.2f}")
