"""Single-producer single-consumer ring of records in shared memory.

Layout (all integers native-endian; every u64 on its own 64-byte line, so the producer's
and the consumer's hot words never share a cache line):

    0    magic u32 'SLR1', version u32, capacity u64 (bytes of the data area)
    64   head u64       written by the consumer only: bytes consumed since creation
    128  tail u64       written by the producer only: bytes committed since creation
    160  rung_seq u64   written by the producer only: the sleep_seq it last sent a doorbell for
    192  sleep_seq u64  written by the consumer only: odd = "I am about to sleep"
    200  cpu u64        written by the consumer only: 1 + the CPU it last idled on (0: unknown)
    256  data area, `capacity` bytes (a multiple of 8)

A record at `pos % capacity` is `[len:u32][h1:u8][h2:u8][payload]`, padded to 8 bytes.
When a record does not fit before the end, the producer writes a padding record
(`len = 0xFFFFFFFF`) that fills the rest, and the record starts at offset 0. head and
tail only grow (2^64 bytes never wrap in practice), so `tail - head` is the fill level.

Commit order: the producer writes the payload and the record header, and only then
stores the new tail. A consumer reads records only below the tail it loaded, so it never
sees a half-written record, also when the producer is killed mid-write.

Memory order. u64 words are read and written through `memoryview.cast('Q')`, which
CPython implements as an aligned 8-byte memcpy: one store/load on x86-64 and aarch64,
so they never tear. On x86-64 (TSO) stores become visible in program order and loads are
not reordered with older loads, so "payload, then tail" and "tail, then payload" are
enough. TSO does reorder a store with a *later load* (store buffer): the doorbell
handshake below is Dekker's pattern (producer: store tail, load sleep_seq; consumer:
store sleep_seq, load tail) and needs a full barrier on both sides. `_full_barrier()`
acquires and releases a private lock: glibc does that with a `lock`-prefixed
instruction, a full barrier on x86, for ~60 ns.
Weakly ordered CPUs (ARM, POWER, RISC-V) do not keep store order, so there `STRONG_ORDER`
is False and the endpoints switch to doorbell mode: every record is announced by its own
doorbell and the consumer reads only as many records as doorbells it has received; the
kernel's queue lock orders payload before doorbell before read.

Doorbells: the consumer marks itself asleep (`sleep_seq` odd) before blocking on its
queue and awake after; a producer that commits while the consumer is asleep returns True
from `write()` (once per sleep episode), the endpoint rings the doorbell and then calls
`rung()`, which stores that sleep_seq in `rung_seq`. So a consumer that wakes (or gives up
sleeping because a record came meanwhile) knows from `mark_awake()` whether a doorbell of
this episode sits in its queue, and takes exactly that one: no stale doorbells (each would
cost a spurious wake-up later) and no "receive until EAGAIN" (a wasted syscall per wake-up).
rung_seq is stored after the send, so True always means "it is in the queue"; in the one race
where the consumer reads rung_seq just before the producer stores it, a doorbell is left over
and costs one spurious wake-up, nothing else. A busy consumer drains without any syscall.
When to sleep at all is `ipc/idle.py`'s job.

Two implementations of the hot path, one layout: this module (pure Python) and `ipc/_ringc.c`,
a C extension built by `pip install -e .` / `make env` (release/acquire atomics and a seq_cst
fence for the Dekker pairs, so it is correct on weakly ordered CPUs too; every index and
length read from shared memory is bounds-checked, with the same BadMessage errors as here).
A Ring uses the C core when it is importable, unless `SILVERLINE_RING=python` (or
`set_default_impl("python")`, or `Ring(..., impl="python")`); the two sides of one ring may
use different implementations. The process logs once which one runs.
"""
from __future__ import annotations

import logging
import os
import platform
import struct
import threading
import time
from typing import Any, Callable

from .errors import BadMessage, ClosedError, MessageTooLarge, RingFullError
from .messages import Message

MAGIC = 0x31524C53  # 'SLR1' little-endian
VERSION = 2  # 2: rung_seq
HEADER = 256
PAD = 0xFFFFFFFF
REC_HDR = struct.Struct("=IBB")  # len, h1, h2
REC_HDR_SIZE = 6
DEFAULT_CAPACITY = 1 << 20

# word indexes into the u64 view of the header
_W_CAP, _W_HEAD, _W_TAIL, _W_RUNG, _W_SLEEP, _W_CPU = 1, 8, 16, 20, 24, 25

STRONG_ORDER = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686", "x86")

_barrier_lock = threading.Lock()
_barrier_acquire = _barrier_lock.acquire
_barrier_release = _barrier_lock.release
_pack_hdr = struct.Struct("=IBB").pack_into
_unpack_hdr = REC_HDR.unpack_from
# record packers by payload size ("=IBB{n}s"): the sizes a node sends repeat, so a few are cached
_record_packers: dict[int, Any] = {}
_PACKER_MAX_SIZE = 4096
_PACKER_MAX_COUNT = 64
_new_tuple = tuple.__new__  # builds a Message without the namedtuple's Python-level __new__

log = logging.getLogger("mgr")

IMPLS = ("c", "python")
ENV_IMPL = "SILVERLINE_RING"  # c | python | auto (default: c when importable)
try:
    from . import _ringc  # type: ignore[attr-defined]

    _ringc.setup(BadMessage, ClosedError, MessageTooLarge, RingFullError, Message)
    C_UNAVAILABLE = ""
except ImportError as e:  # no compiler on this machine, or not built for this interpreter
    _ringc = None
    C_UNAVAILABLE = f"ipc._ringc not importable ({e}); run `make env` to build it"


def _resolve(impl: str | None) -> str:
    """"c" or "python" for a requested implementation (None/"auto": c when importable)."""
    if impl in (None, "", "auto"):
        return "c" if _ringc is not None else "python"
    if impl not in IMPLS:
        raise ValueError(f"ring implementation must be c, python or auto, got {impl!r}")
    if impl == "c" and _ringc is None:
        raise RuntimeError(f"the C ring was asked for, but {C_UNAVAILABLE}")
    return impl


_default_impl: str | None = None  # from SILVERLINE_RING on first use
_logged = False


def default_impl() -> str:
    """The implementation new Rings use: "c" or "python"."""
    global _default_impl
    if _default_impl is None:
        asked = os.environ.get(ENV_IMPL, "").strip().lower()
        try:
            _default_impl = _resolve(asked or None)
        except (ValueError, RuntimeError) as e:
            raise type(e)(f"{ENV_IMPL}={asked}: {e}") from None
    return _default_impl


def set_default_impl(impl: str | None) -> str:
    """Choose the implementation of Rings made from now on ("c", "python", None/"auto"); returns it."""
    global _default_impl
    _default_impl = _resolve(impl)
    return _default_impl


def c_available() -> bool:
    return _ringc is not None


def _log_impl(impl: str) -> None:
    global _logged
    if _logged:
        return
    _logged = True
    if impl == "c":
        log.info("ring: C hot path (ipc/_ringc)")
    elif _ringc is None:
        log.info("ring: pure Python (%s)", C_UNAVAILABLE)
    else:
        log.info("ring: pure Python (%s=python or asked for)", ENV_IMPL)


def _full_barrier() -> None:
    """A full memory barrier (see the module docstring)."""
    _barrier_lock.acquire()
    _barrier_lock.release()


def _align8(n: int) -> int:
    return (n + 7) & ~7


def ring_size(capacity: int) -> int:
    """Bytes of shared memory a ring of `capacity` needs."""
    return HEADER + capacity


class Ring:
    """One side (producer or consumer) of a ring over a shared buffer.

    The same class serves both sides; each side only calls its own methods.
    """

    def __init__(self, buf: memoryview, name: str = "ring", *, init: bool = False, capacity: int | None = None,
                 raw: Any = None, impl: str | None = None) -> None:
        """`raw`: optionally the object under `buf` when slicing it yields bytes (an mmap);
        `impl`: "c", "python" or None (the default implementation, see the module docstring)."""
        self.name = name
        self._raw = raw
        self._buf: memoryview | None = buf
        self._q = buf[:HEADER].cast("Q")
        self._u32 = buf[:8].cast("I")
        if init:
            if capacity is None or capacity % 8 or capacity < 64:
                raise ValueError(f"ring capacity must be a multiple of 8 and >= 64, got {capacity}")
            if len(buf) < HEADER + capacity:
                raise ValueError(f"buffer of {len(buf)} bytes too small for a ring of {capacity}")
            self._q[_W_HEAD] = 0
            self._q[_W_TAIL] = 0
            self._q[_W_SLEEP] = 0
            self._q[_W_RUNG] = 0
            self._q[_W_CPU] = 0
            self._q[_W_CAP] = capacity
            self._u32[1] = VERSION
            self._u32[0] = MAGIC
        else:
            if self._u32[0] != MAGIC or self._u32[1] != VERSION:
                raise BadMessage(f"{name}: not a ring of version {VERSION} (magic {self._u32[0]:#x})")
        self.capacity = int(self._q[_W_CAP])
        if len(buf) < HEADER + self.capacity or self.capacity % 8 or self.capacity < 64:
            raise BadMessage(f"{name}: header says capacity {self.capacity} but the block has {len(buf) - HEADER}")
        self.data = buf[HEADER : HEADER + self.capacity]
        self.max_payload = self.capacity // 2 - 8
        # local copies of the words this side owns
        self._tail = int(self._q[_W_TAIL])
        self._head = int(self._q[_W_HEAD])
        self._head_seen = self._head  # producer: last head it read (room estimate)
        self._last_rung = -1
        self._sleep_seq = 0  # consumer: the odd sleep_seq of the current sleep episode (0: awake)
        self.impl = _resolve(impl) if impl is not None else default_impl()
        self._core: Any = None
        if self.impl == "c":
            # the C core holds its own view (a slice: the caller's `buf` can still be released);
            # its methods shadow the Python ones on this instance: one C call per record, no frame
            core = self._core = _ringc.Core(buf[: HEADER + self.capacity], name)
            self.__dict__.update(write=core.write, rung=core.rung, read=core.read, pending=core.pending,
                                 mark_sleeping=core.mark_sleeping, mark_awake=core.mark_awake)
        _log_impl(self.impl)

    # ------------------------------------------------------------ producer side

    def write(self, h1: int, h2: int, payload: bytes | bytearray | memoryview = b"", timeout: float = 5.0) -> bool:
        """Commit one record; True when the consumer sleeps and must get a doorbell.

        Waits up to `timeout` seconds for room, then raises RingFullError.
        """
        q = self._q
        if q is None:
            raise ClosedError(f"{self.name} is closed")
        n = len(payload)
        need = (n + REC_HDR_SIZE + 7) & ~7
        tail = self._tail
        cap = self.capacity
        off = tail % cap
        # fast path: no wrap, and room known from the cached head (the head only grows, so a
        # stale copy can only underestimate the room; re-read it only when that is not enough)
        if off + need > cap or tail + need - self._head_seen > cap or n > self.max_payload:
            return self._write_slow(h1, h2, payload, timeout)
        data = self.data
        pack = _record_packers.get(n) if type(payload) is bytes else None
        if pack is not None:  # header and payload in one C call (~100 ns less than two steps)
            pack(data, off, n, h1, h2, payload)
        else:
            if n:
                data[off + REC_HDR_SIZE : off + REC_HDR_SIZE + n] = payload
            _pack_hdr(data, off, n, h1, h2)
            if n <= _PACKER_MAX_SIZE and len(_record_packers) < _PACKER_MAX_COUNT and type(payload) is bytes:
                _record_packers[n] = struct.Struct(f"=IBB{n}s").pack_into
        tail += need
        self._tail = tail
        q[_W_TAIL] = tail  # commit: the record becomes visible here
        _barrier_acquire()  # full barrier: store tail -> load sleep_seq (Dekker)
        _barrier_release()
        s = q[_W_SLEEP]
        if s & 1 and s != self._last_rung:
            self._last_rung = s
            return True
        return False

    def _write_slow(self, h1: int, h2: int, payload: bytes | bytearray | memoryview, timeout: float) -> bool:
        q = self._q
        n = len(payload)
        if n > self.max_payload:
            raise MessageTooLarge(f"{self.name}: message of {n} bytes is larger than half the ring ({self.max_payload} bytes max)")
        need = _align8(REC_HDR_SIZE + n)
        cap = self.capacity
        tail = self._tail
        off = tail % cap
        pad = cap - off if off + need > cap else 0
        total = pad + need
        self._head_seen = q[_W_HEAD]
        if cap - (tail - self._head_seen) < total:
            self._wait_room(total, timeout)
        data = self.data
        if pad:
            REC_HDR.pack_into(data, off, PAD, 0, 0)
            off = 0
        if n:
            data[off + REC_HDR_SIZE : off + REC_HDR_SIZE + n] = payload
        REC_HDR.pack_into(data, off, n, h1, h2)
        tail += total
        self._tail = tail
        q[_W_TAIL] = tail  # commit: the record becomes visible here
        _full_barrier()  # store tail -> load sleep_seq (Dekker)
        s = q[_W_SLEEP]
        if s & 1 and s != self._last_rung:
            self._last_rung = s
            return True
        return False

    def rung(self) -> None:
        """After the doorbell that `write()` asked for was sent: say so to the consumer."""
        self._q[_W_RUNG] = self._last_rung

    def sender(self, doorbell: Callable[[bytes], bool], bell: bytes, closed_message: str) -> Callable[..., None]:
        """An endpoint's `send(h1, h2, payload=b"", timeout=5.0)` over this ring (strong order):
        `write()`, then, when the consumer sleeps, `doorbell(bell)` and, when that queued it,
        `rung()`; ClosedError(closed_message) once the ring is closed. With the C core it is one
        C call (no Python frame per message)."""
        core = self._core
        if core is not None:
            core.set_doorbell(doorbell, bell, closed_message)
            return core.send  # type: ignore[no-any-return]
        write, rung = self.write, self.rung

        def send(h1: int, h2: int, payload: bytes | bytearray | memoryview = b"", timeout: float = 5.0) -> None:
            if self._q is None:
                raise ClosedError(closed_message)
            if write(h1, h2, payload, timeout) and doorbell(bell):
                rung()
        return send

    def consumer_busy(self) -> bool:
        """The consumer has unread records or is awake (may answer soon); producer side."""
        q = self._q
        return q[_W_TAIL] != q[_W_HEAD] or not q[_W_SLEEP] & 1

    def consumer_cpu(self) -> int:
        """The CPU the consumer last idled on, -1 when unknown; producer side."""
        return int(self._q[_W_CPU]) - 1

    def _wait_room(self, total: int, timeout: float) -> None:
        q = self._q
        deadline = time.monotonic() + timeout
        delay = 20e-6
        while self.capacity - (self._tail - q[_W_HEAD]) < total:
            now = time.monotonic()
            if now >= deadline:
                used = self._tail - q[_W_HEAD]
                raise RingFullError(
                    f"{self.name}: full for {timeout:g}s ({used} of {self.capacity} bytes unread, "
                    f"need {total}); the consumer is stuck or gone; message not sent"
                )
            time.sleep(min(delay, deadline - now))
            delay = min(delay * 2, 0.002)
        self._head_seen = q[_W_HEAD]

    # ------------------------------------------------------------ consumer side

    def pending(self) -> bool:
        return self._q[_W_TAIL] != self._head

    def read(self, limit: int | None = None) -> list[Message]:
        """Every committed record (at most `limit`), in order; frees their space."""
        q = self._q
        if q is None:
            raise ClosedError(f"{self.name} is closed")
        tail = q[_W_TAIL]
        head = self._head
        if tail == head:
            return []
        if tail - head > self.capacity or tail < head or head & 7:
            raise BadMessage(f"{self.name}: corrupt indexes head={head} tail={tail} capacity={self.capacity}")
        if limit is not None or self._raw is None:
            return self._read_limited(head, tail, limit)
        out: list[Message] = []
        append = out.append
        src = self._raw  # absolute positions in the mapping; HEADER is 8-aligned, so are records
        cap = self.capacity
        unpack = _unpack_hdr
        new = _new_tuple
        while head < tail:
            # one contiguous segment: from head to the tail or to the end of the data area
            start = HEADER + head % cap
            pos = start
            end = start + min(cap - (pos - HEADER), tail - head)
            while pos < end:
                n, h1, h2 = unpack(src, pos)
                if n == PAD:
                    if HEADER + cap > start + tail - head:
                        raise BadMessage(f"{self.name}: padding at {pos - HEADER} crosses the tail")
                    pos = HEADER + cap  # the rest of the data area is padding
                    break
                s = pos + REC_HDR_SIZE
                e = s + n
                if (e + 7) & ~7 > end:
                    raise BadMessage(f"{self.name}: record of {n} bytes at {pos - HEADER} crosses the end of the ring or the tail")
                append(new(Message, (h1, h2, src[s:e])))
                pos = (e + 7) & ~7
            head += pos - start
        self._head = head
        self._q[_W_HEAD] = head  # release the space (after the payload copies above)
        return out

    def _read_limited(self, head: int, tail: int, limit: int | None) -> list[Message]:
        """read() for at most `limit` records, or over a buffer without an mmap (sysv)."""
        q = self._q
        out: list[Message] = []
        append = out.append
        data = self.data
        raw = self._raw
        cap = self.capacity
        unpack = REC_HDR.unpack_from
        left = limit if limit is not None else 1 << 62
        while head < tail and left:
            off = head % cap
            n, h1, h2 = unpack(data, off)
            if n == PAD:
                if head + cap - off > tail:
                    raise BadMessage(f"{self.name}: padding at {off} crosses the tail")
                head += cap - off
                continue
            size = (n + REC_HDR_SIZE + 7) & ~7
            if off + size > cap or head + size > tail:
                raise BadMessage(f"{self.name}: record of {n} bytes at {off} crosses the end of the ring or the tail")
            start = off + REC_HDR_SIZE
            if raw is not None:  # slicing the mmap makes the bytes in one step
                payload = raw[HEADER + start : HEADER + start + n]
            else:
                payload = bytes(data[start : start + n])
            append(_new_tuple(Message, (h1, h2, payload)))
            head += size
            left -= 1
        self._head = head
        q[_W_HEAD] = head  # release the space (after the payload copies above)
        return out

    def set_cpu(self, cpu: int) -> None:
        """Consumer side: publish the CPU this consumer idles on (read by the idle strategy of
        the producer, which is this consumer's peer)."""
        self._q[_W_CPU] = cpu + 1

    def mark_sleeping(self) -> bool:
        """Say "I sleep"; True when a record arrived meanwhile (then do not block: mark_awake())."""
        q = self._q
        s = q[_W_SLEEP]
        if not s & 1:
            s += 1
            q[_W_SLEEP] = s
        self._sleep_seq = s
        _full_barrier()  # store sleep_seq -> load tail (Dekker)
        return q[_W_TAIL] != self._head

    def mark_awake(self) -> bool:
        """Say "I am awake"; True when the producer sent a doorbell in this sleep episode
        (then exactly one doorbell of this ring is in the queue: take it)."""
        q = self._q
        s = self._sleep_seq
        if not s:
            return False
        self._sleep_seq = 0
        q[_W_SLEEP] = s + 1
        return bool(q[_W_RUNG] == s)

    # ------------------------------------------------------------ both

    def used(self) -> int:
        return int(self._q[_W_TAIL] - self._q[_W_HEAD])

    def close(self) -> None:
        if self._buf is None:
            return
        if self._core is not None:
            self._core.close()  # later calls of its methods raise ClosedError
        self._raw = None
        self.data.release()
        self._q.release()
        self._u32.release()
        self._buf = None
        self._q = None  # type: ignore[assignment]
