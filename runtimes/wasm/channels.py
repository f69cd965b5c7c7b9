"""A module's channels: the Bridge behind its `silverline` host calls, on the runtime's side.

Host calls arrive on the module's thread; inbound messages arrive on the runtime's loop thread
(`deliver`). One condition variable per module joins the two: receive/poll wait on it, deliver
and cancel notify it. What opening/publishing means (IPC to the supervisor) is the Outlet's job,
so the same class serves the linux runtime and in-process tests.

Access rules are checked before anything is sent: `Outlet.open` raises ChannelError for a topic
the create message did not grant (the runtime calls `Runtime.resolve_topic`), which the module
sees as SL_EACCES, and the runtime logs why. Inboxes are bounded: when a module does not read,
the oldest messages are dropped and counted, with one warning per burst (never silently).

Python 3.10 compatible.
"""
from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Deque, Dict, Optional, Protocol, Sequence, Union

from runtimes.engines import bridge as br
from common.topics import ChannelError

STDIO_FD = 255  # reserved for the runtime's own `$SL/proc/stdio` channel of the module


class Outlet(Protocol):
    """Where a module's channel operations go (the runtime's IPC helpers)."""

    def open(self, fd: int, flags: int, topic: str) -> None:
        """Open `fd` on `topic`; ChannelError when not allowed."""

    def close(self, fd: int) -> None: ...

    def publish(self, fd: int, data: bytes) -> None:
        """Raise when the message cannot be taken (e.g. the ring stayed full)."""


@dataclass
class _Channel:
    flags: int
    topic: str
    inbox: Deque[bytes] = field(default_factory=collections.deque)


class ModuleChannels:
    """The Bridge of one module: fd table, inboxes, grants (via the Outlet), counters."""

    def __init__(self, uuid: str, outlet: Outlet, log: Callable[[int, str], None],
                 max_inbox: int = 4096, reserved: Sequence[int] = (STDIO_FD,)) -> None:
        self.uuid = uuid
        self._outlet = outlet
        self._log = log
        self._max_inbox = max_inbox
        self._reserved = frozenset(reserved)
        self._cv = threading.Condition()
        self._channels: Dict[int, _Channel] = {}
        self._cancelled = False
        self.msgs_in = 0
        self.msgs_out = 0
        self.dropped = 0
        self._drop_warned = 0.0

    # ---------------------------------------------------------------- host side (module thread)
    def open(self, topic: str, flags: int) -> int:
        with self._cv:
            fd = next((i for i in range(br.MAX_FDS) if i not in self._channels and i not in self._reserved), -1)
            if fd < 0:
                return br.EMFILE
            self._channels[fd] = _Channel(flags, topic)  # reserve the fd while we ask
        try:
            self._outlet.open(fd, flags, topic)
        except ChannelError as e:
            self._forget(fd)
            self._log(30, f"channel refused: {e}")
            return br.EACCES
        except Exception as e:
            self._forget(fd)
            self._log(40, f"cannot open channel {topic!r}: {type(e).__name__}: {e}")
            return br.EAGAIN
        return fd

    def _forget(self, fd: int) -> None:
        with self._cv:
            self._channels.pop(fd, None)

    def close(self, fd: int) -> int:
        with self._cv:
            if self._channels.pop(fd, None) is None:
                return br.EBADF
        self._outlet.close(fd)
        return 0

    def publish(self, fd: int, data: bytes) -> int:
        ch = self._channels.get(fd)
        if ch is None or not ch.flags & br.WRITE:
            return br.EBADF
        try:
            self._outlet.publish(fd, data)
        except Exception as e:
            self._log(40, f"publish on {ch.topic!r} failed: {type(e).__name__}: {e}")
            return br.EAGAIN
        self.msgs_out += 1
        return 0

    def receive(self, fd: int, timeout: Optional[float]) -> Union[bytes, int]:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cv:
            while True:
                ch = self._channels.get(fd)
                if ch is None or not ch.flags & br.READ:
                    return br.EBADF
                if ch.inbox:
                    return ch.inbox.popleft()
                if self._cancelled:
                    return br.EINTR
                if not self._wait(deadline):
                    return br.ETIMEDOUT

    def poll(self, fds: Sequence[int], timeout: Optional[float]) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cv:
            while True:
                for fd in fds:
                    ch = self._channels.get(fd)
                    if ch is None or not ch.flags & br.READ:
                        return br.EBADF
                    if ch.inbox:
                        return fd
                if self._cancelled:
                    return br.EINTR
                if not self._wait(deadline):
                    return br.ETIMEDOUT

    def _wait(self, deadline: Optional[float]) -> bool:
        """Wait for a notify; False once the deadline passed. Called with the lock held."""
        if deadline is None:
            self._cv.wait()
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        self._cv.wait(left)
        return True

    def log(self, level: int, text: str) -> None:
        self._log(level, text)

    def cancel(self) -> None:
        with self._cv:
            self._cancelled = True
            self._cv.notify_all()

    # ---------------------------------------------------------------- runtime side (loop thread)
    def deliver(self, fd: int, payload: bytes) -> bool:
        """A message for channel `fd`; False when no readable channel has that fd (stale)."""
        with self._cv:
            ch = self._channels.get(fd)
            if ch is None or not ch.flags & br.READ:
                return False
            ch.inbox.append(payload)
            self.msgs_in += 1
            if len(ch.inbox) > self._max_inbox:
                ch.inbox.popleft()
                self.dropped += 1
                now = time.monotonic()
                if now - self._drop_warned > 5.0:
                    self._drop_warned = now
                    self._log(30, f"module is not reading {ch.topic!r}: dropped the oldest messages "
                                  f"beyond {self._max_inbox} ({self.dropped} so far)")
            self._cv.notify_all()
            return True

    def open_fds(self) -> Dict[int, str]:
        with self._cv:
            return {fd: ch.topic for fd, ch in self._channels.items()}
