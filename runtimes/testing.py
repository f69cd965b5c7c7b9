"""Python test runtimes (no WebAssembly): they speak the worker side so the supervisor can be
tested, and benchmarked, before and without the wasm runtimes.

- `test/reg`: registers; modules are accepted and run nothing; delete reports `deleted`.
- `test/echo`: each module opens one channel per `channels[]` grant of its create message (fd = the
  grant's position, topic = the grant's `path`, read/write from its `mode`, QoS from `args.qos`),
  plus `args.open: [[fd, flags, topic], ...]`; every message read is published on all of the
  module's writable channels, prefixed by `args.prefix`. Commands in a message or in `args.argv[0]`:
  `!crash` (SIGKILL the worker), `!exit [code]` (module exits), `!log TEXT`, `!profile`, `!close`,
  `!hang` (blocks the worker's loop).
- `test/single`: `test/echo` with `max_nmodules` 1.
- `test/bootfail`: setup() raises (exit code 3), to test FATAL.
- `test/exec`: `test/echo` exec'd in a fresh interpreter (the hook the wasmer runtime uses).
"""
from __future__ import annotations

import logging
import os
import signal
import sys
from typing import Any

from ipc import messages
from runtimes.base import ChannelError, Module, Runtime


class RegRuntime(Runtime):
    RUNTIME_TYPE = "debug/none"  # what the original's test/reg registers
    MAX_NMODULES = 128
    APIS = []
    DESCRIPTION = "registers and runs nothing"


class EchoRuntime(Runtime):
    RUNTIME_TYPE = "test"
    MAX_NMODULES = 128
    APIS = ["channels", "loopback"]
    DESCRIPTION = "echo over channels, crash on demand"

    def setup(self) -> None:
        self.writers: dict[int, list[int]] = {}
        self.fds: dict[int, list[int]] = {}
        self.prefix: dict[int, bytes] = {}

    def on_create(self, index: int, module: Module) -> None:
        args: dict[str, Any] = module.create.args or {}
        qos = int(args.get("qos", 0))
        qflag = messages.FLAG_QOS2 if qos == 2 else messages.FLAG_QOS1 if qos == 1 else 0
        self.writers[index] = []
        self.fds[index] = []
        self.prefix[index] = str(args.get("prefix", "")).encode()
        opens: list[tuple[int, int, str]] = []
        for fd, g in enumerate(module.grants):
            flags = (messages.FLAG_READ if "r" in g.mode else 0) | (messages.FLAG_WRITE if "w" in g.mode else 0) | qflag
            opens.append((fd, flags, g.path))
        for item in args.get("open", []):
            opens.append((int(item[0]), int(item[1]), str(item[2])))
        for fd, flags, topic in opens:
            try:
                # check=False: let the supervisor judge (tests exercise its refusals too)
                self.open_channel(index, fd, flags, topic, check=bool(args.get("check", False)))
            except ChannelError as e:
                self.module_log(index, logging.ERROR, f"channel {fd} refused: {e}")
                continue
            self.fds[index].append(fd)
            if flags & messages.FLAG_WRITE:
                self.writers[index].append(fd)
        argv = (args.get("argv") or [])
        if argv:
            self.command(index, " ".join(str(a) for a in argv).encode())

    def command(self, index: int, payload: bytes) -> bool:
        """Run a `!command`; False when the payload is not one."""
        if not payload.startswith(b"!"):
            return False
        word, _, rest = payload[1:].partition(b" ")
        if word == b"crash":
            os.kill(os.getpid(), signal.SIGKILL)
        elif word == b"exit":
            self._forget(index)
            self.send_exited(index, "exited", int(rest) if rest.strip() else 0)
        elif word == b"log":
            self.module_log(index, logging.INFO, rest.decode(errors="replace"))
        elif word == b"profile":
            self.send_profile(index, "test", rest or b"\x01\x02\x03\x04")
        elif word == b"hang":
            import time

            time.sleep(3600)  # blocks the loop: the supervisor's --worker-timeout must notice
        elif word == b"close":
            for fd in self.fds.get(index, []):
                self.close_channel(index, fd)
            self.fds[index] = []
            self.writers[index] = []
        else:
            return False
        return True

    def on_channel_message(self, index: int, fd: int, payload: bytes) -> None:
        if self.command(index, payload):
            return
        out = self.prefix.get(index, b"") + payload
        for w in self.writers.get(index, []):
            self.publish(index, w, out)

    def on_delete(self, index: int) -> None:
        self._forget(index)
        self.send_exited(index, "deleted")

    def _forget(self, index: int) -> None:
        self.writers.pop(index, None)
        self.fds.pop(index, None)
        self.prefix.pop(index, None)


class SingleEchoRuntime(EchoRuntime):
    MAX_NMODULES = 1
    DESCRIPTION = "test/echo with room for one module (tests max_nmodules)"


class BootFailRuntime(Runtime):
    RUNTIME_TYPE = "test"
    DESCRIPTION = "always fails to boot"

    def setup(self) -> None:
        raise RuntimeError("test/bootfail fails in setup() on purpose")


class ExecEchoRuntime(EchoRuntime):
    DESCRIPTION = "test/echo in an exec'd interpreter"

    @classmethod
    def exec_command(cls, settings: dict[str, Any]) -> list[str] | None:
        return [settings.get("python") or sys.executable, "-m", "runtimes.worker_main"]


class BenchRuntime(Runtime):
    """`test/bench` (bench/channels.py): modules with `args.role` "source" or "sink".

    source: grants `data` (w) and `ctl` (r). A ctl message `go N GAP_US SIZE` publishes N messages
    `[seq:u32][t_ns:u64][pad]` on `data` (GAP_US between them, 0 = burst), then an end marker.
    sink: grants `data` (r) and `res` (w). Records one-way latency (CLOCK_MONOTONIC is system wide)
    of every message; on the end marker publishes `{"n", "p50_us", "p99_us", "first_ns", "last_ns"}` on `res`.
    """

    RUNTIME_TYPE = "test"
    MAX_NMODULES = 8
    APIS = ["channels"]
    END = 0xFFFFFFFF

    def setup(self) -> None:
        import struct

        self.hdr = struct.Struct("<IQ")
        self.role: dict[int, str] = {}
        self.lat: dict[int, list[float]] = {}
        self.first: dict[int, int] = {}
        self._last = 0

    def on_create(self, index: int, module: Module) -> None:
        args = module.create.args or {}
        self.role[index] = str(args.get("role", "sink"))
        self.lat[index] = []
        for fd, g in enumerate(module.grants):
            flags = (messages.FLAG_READ if "r" in g.mode else 0) | (messages.FLAG_WRITE if "w" in g.mode else 0)
            self.open_channel(index, fd, flags, g.path)

    def on_channel_message(self, index: int, fd: int, payload: bytes) -> None:
        import time

        if self.role.get(index) == "source":
            parts = payload.split()
            if not parts or parts[0] != b"go":
                return
            n, gap_us, size = (int(x) for x in parts[1:4])
            pad = b"x" * max(0, size - self.hdr.size)
            gap = gap_us / 1e6
            for seq in range(n):
                self.publish(index, 0, self.hdr.pack(seq, time.monotonic_ns()) + pad)
                if gap:
                    time.sleep(gap)
            self.publish(index, 0, self.hdr.pack(self.END, time.monotonic_ns()))
            return
        now = time.monotonic_ns()
        seq, t = self.hdr.unpack_from(payload)
        if seq == self.END:
            import orjson

            lat = sorted(self.lat[index])

            def pct(p: float) -> float:  # nearest rank, as bench/_common.pct
                return lat[min(len(lat) - 1, max(0, int(round(p / 100 * (len(lat) - 1)))))] if lat else float("nan")

            self.publish(index, 1, orjson.dumps({"n": len(lat), "p50_us": pct(50), "p99_us": pct(99),
                                                 "first_ns": self.first.get(index, 0), "last_ns": self._last}))
            self.lat[index] = []
            self.first.pop(index, None)
            return
        if index not in self.first:
            self.first[index] = t
        self._last = now
        self.lat[index].append((now - t) / 1000.0)
