"""The `silverline` host functions, independent of the engine.

Each engine wraps these in its own import mechanism and passes a `Memory` accessor for the
calling instance. Bad pointers, bad flags and bridge failures come back as negative codes;
nothing here raises into the module (a host call must never crash the runtime).

Signatures (all i32), as in include/silverline.h:
  open(topic_ptr, topic_len, flags) -> fd | -err
  close(fd) -> 0 | -err
  publish(fd, buf_ptr, len) -> 0 | -err
  receive(fd, buf_ptr, cap, timeout_ms) -> full message length | -err   (copy truncated to cap)
  poll(fds_ptr, nfds, timeout_ms) -> ready fd | -err
  get_uuid(buf_ptr, cap) -> 36 | -err
  log(level, text_ptr, len) -> 0 | -err

Python 3.10 compatible.
"""
from __future__ import annotations

import logging
import struct
from typing import Callable, List, Optional, Protocol, Tuple

from runtimes.engines import bridge as br
from runtimes.engines.api import RunControl

MAX_MESSAGE = 1 << 20      # larger publishes are refused with EINVAL
MAX_LOG = 4096             # log text is cut here
MAX_POLL_FDS = br.MAX_FDS

log = logging.getLogger("rt.hostapi")

# (name, number of i32 params); every function returns one i32
SIGNATURES: List[Tuple[str, int]] = [
    ("open", 3), ("close", 1), ("publish", 3), ("receive", 4),
    ("poll", 3), ("get_uuid", 2), ("log", 3),
]


class Memory(Protocol):
    """Bounds-checked access to the calling instance's linear memory."""

    def read(self, ptr: int, length: int) -> bytes:
        """Raise IndexError when [ptr, ptr+length) is outside memory."""

    def write(self, ptr: int, data: bytes) -> None:
        """Raise IndexError when the range is outside memory."""


def _timeout(ms: int) -> Optional[float]:
    return None if ms < 0 else ms / 1000.0


class HostCalls:
    """The host functions of one module: a Bridge plus the run's control (for stop + stats)."""

    def __init__(self, bridge: br.Bridge, control: RunControl) -> None:
        self.bridge = bridge
        self.control = control

    def _guard(self, name: str, fn: Callable[[], int]) -> int:
        if self.control.stop_reason is not None:
            return br.EINTR
        self.control.touch()
        try:
            return fn()
        except IndexError:
            return br.EINVAL
        except Exception:  # a bridge bug must not take the module (or the runtime) down
            log.exception("host call %s of module %s failed", name, self.bridge.uuid)
            return br.EINVAL

    def open(self, mem: Memory, ptr: int, length: int, flags: int) -> int:
        def do() -> int:
            if length < 0 or length > 4096 or flags & ~br.ALL_FLAGS or not flags & (br.READ | br.WRITE):
                return br.EINVAL
            try:
                topic = mem.read(ptr, length).decode("utf-8")
            except UnicodeDecodeError:
                return br.EINVAL
            return self.bridge.open(topic, flags)
        return self._guard("open", do)

    def close(self, mem: Memory, fd: int) -> int:
        return self._guard("close", lambda: self.bridge.close(fd))

    def publish(self, mem: Memory, fd: int, ptr: int, length: int) -> int:
        def do() -> int:
            if length < 0 or length > MAX_MESSAGE:
                return br.EINVAL
            return self.bridge.publish(fd, mem.read(ptr, length))
        return self._guard("publish", do)

    def receive(self, mem: Memory, fd: int, ptr: int, cap: int, timeout_ms: int) -> int:
        def do() -> int:
            if cap < 0:
                return br.EINVAL
            mem.read(ptr, cap)  # check the buffer before taking a message off the channel
            msg = self.bridge.receive(fd, _timeout(timeout_ms))
            if isinstance(msg, int):
                return msg
            self.control.touch()
            if msg:
                mem.write(ptr, msg[:cap])
            return len(msg)
        return self._guard("receive", do)

    def poll(self, mem: Memory, fds_ptr: int, nfds: int, timeout_ms: int) -> int:
        def do() -> int:
            if nfds <= 0 or nfds > MAX_POLL_FDS:
                return br.EINVAL
            fds = list(struct.unpack(f"<{nfds}i", mem.read(fds_ptr, 4 * nfds)))
            return self.bridge.poll(fds, _timeout(timeout_ms))
        return self._guard("poll", do)

    def get_uuid(self, mem: Memory, ptr: int, cap: int) -> int:
        def do() -> int:
            raw = self.bridge.uuid.encode()
            if cap < len(raw):
                return br.EINVAL
            mem.write(ptr, raw + b"\0" if cap > len(raw) else raw)
            return len(raw)
        return self._guard("get_uuid", do)

    def log(self, mem: Memory, level: int, ptr: int, length: int) -> int:
        def do() -> int:
            if length < 0:
                return br.EINVAL
            text = mem.read(ptr, min(length, MAX_LOG)).decode("utf-8", "replace")
            self.bridge.log(level if 0 < level <= 50 else logging.INFO, text)
            return 0
        return self._guard("log", do)
