"""The process calls of our WASI layer: args, environ, clocks, random, sched_yield, poll_oneoff on
clocks (sleep), proc_exit and proc_raise."""
from __future__ import annotations

import os
import secrets
import struct
import time

from benchmarking.engines.wasi.abi import E, WasiExit
from benchmarking.engines.wasi.state import WasiState


class ProcCalls(WasiState):
    def args_sizes_get(self, argc: int, size: int) -> int:
        return self._sizes(self.argv, argc, size)

    def args_get(self, argv: int, buf: int) -> int:
        return self._strings(self.argv, argv, buf)

    def environ_sizes_get(self, count: int, size: int) -> int:
        return self._sizes(self.env, count, size)

    def environ_get(self, environ: int, buf: int) -> int:
        return self._strings(self.env, environ, buf)

    def _sizes(self, items: list[bytes], count: int, size: int) -> int:
        """How many strings (args or environ) and their bytes, NULs included."""
        self._u32(count, len(items))
        self._u32(size, sum(len(a) for a in items))
        return 0

    def _strings(self, items: list[bytes], ptrs: int, buf: int) -> int:
        for i, s in enumerate(items):
            self._u32(ptrs + 4 * i, buf)
            self._put(buf, s)
            buf += len(s)
        return 0

    _CLOCKS = {0: time.CLOCK_REALTIME, 1: time.CLOCK_MONOTONIC, 2: time.CLOCK_PROCESS_CPUTIME_ID,
               3: time.CLOCK_THREAD_CPUTIME_ID}

    def clock_res_get(self, clock: int, out: int) -> int:
        if clock not in self._CLOCKS:
            return E["EINVAL"]
        self._u64(out, int(time.clock_getres(self._CLOCKS[clock]) * 1e9) or 1)
        return 0

    def clock_time_get(self, clock: int, _precision: int, out: int) -> int:
        if clock not in self._CLOCKS:
            return E["EINVAL"]
        self._u64(out, time.clock_gettime_ns(self._CLOCKS[clock]))
        return 0

    def random_get(self, buf: int, n: int) -> int:
        self._put(buf, secrets.token_bytes(n))
        return 0

    def sched_yield(self) -> int:
        os.sched_yield()
        return 0

    def poll_oneoff(self, subs: int, events: int, n: int, nevents: int) -> int:
        """Clock subscriptions only (sleep): wait for the earliest, report every clock event."""
        mem = self.memory()
        waits = []
        for i in range(n):
            base = subs + 48 * i
            userdata, tag = struct.unpack_from("<QB", mem, base)
            if tag != 0:
                return E["ENOTSUP"]
            clock, timeout, _prec, flags = struct.unpack_from("<IQQH", mem, base + 8)
            if flags & 1:  # absolute
                timeout = max(0, timeout - time.clock_gettime_ns(self._CLOCKS.get(clock, time.CLOCK_MONOTONIC)))
            waits.append((timeout, userdata))
        if waits:
            time.sleep(min(w for w, _ in waits) / 1e9)
        for i, (_, userdata) in enumerate(waits):
            struct.pack_into("<QHBxxxxx16x", self.memory(), events + 32 * i, userdata, 0, 0)
        self._u32(nevents, len(waits))
        return 0

    def proc_exit(self, code: int) -> None:
        self.exit_code = code
        raise WasiExit(code)

    def proc_raise(self, _sig: int) -> int:
        return E["ENOSYS"]
