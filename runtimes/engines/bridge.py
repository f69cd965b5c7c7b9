"""The `silverline` host API seen from the engine: the Bridge a runtime provides per module.

The engine's host functions (see `hostcalls.py`) only move bytes between linear memory and a
Bridge; what a channel is (IPC to the supervisor, loopback, grants) is the runtime's business.
Codes and flags match `include/silverline.h` and docs/protocol.md, "Channels".

Python 3.10 compatible.
"""
from __future__ import annotations

import logging
from typing import Optional, Protocol, Sequence, Union

HOST_MODULE = "silverline"

# channel flags
READ = 0x1
WRITE = 0x2
QOS1 = 0x4
QOS2 = 0x8
ALL_FLAGS = READ | WRITE | QOS1 | QOS2

# error codes (negative return values)
EBADF = -1
EACCES = -2
EINVAL = -3
ETIMEDOUT = -4
EMFILE = -5
EAGAIN = -6
EINTR = -7

ERROR_NAMES = {EBADF: "EBADF", EACCES: "EACCES", EINVAL: "EINVAL", ETIMEDOUT: "ETIMEDOUT",
               EMFILE: "EMFILE", EAGAIN: "EAGAIN", EINTR: "EINTR"}

MAX_FDS = 256  # fd is a u8 on the wire


class Bridge(Protocol):
    """What a module's host calls reach. Timeouts are seconds; None waits forever."""

    uuid: str

    def open(self, topic: str, flags: int) -> int:
        """Open a channel; fd >= 0 or a negative code."""

    def close(self, fd: int) -> int:
        """Close a channel; 0 or a negative code."""

    def publish(self, fd: int, data: bytes) -> int:
        """Publish on a writable channel; 0 or a negative code."""

    def receive(self, fd: int, timeout: Optional[float]) -> Union[bytes, int]:
        """Next message of a readable channel, or a negative code (ETIMEDOUT, EINTR...)."""

    def poll(self, fds: Sequence[int], timeout: Optional[float]) -> int:
        """First fd of `fds` with a message waiting, or a negative code."""

    def log(self, level: int, text: str) -> None:
        """A log line from the module."""

    def cancel(self) -> None:
        """Wake every blocked receive/poll with EINTR, now and from now on (module stopping)."""


class NullBridge:
    """A bridge with no channels: open() is refused, get_uuid and log work.

    Used where a runtime offers no channels (the minimal runtimes) and in engine tests.
    """

    def __init__(self, uuid: str = "00000000-0000-0000-0000-000000000000",
                 logger: Optional[logging.Logger] = None) -> None:
        self.uuid = uuid
        self._log = logger or logging.getLogger("rt.module")

    def open(self, topic: str, flags: int) -> int:
        self._log.warning("module %s: channels are not available in this runtime (open %r)",
                          self.uuid, topic)
        return EACCES

    def close(self, fd: int) -> int:
        return EBADF

    def publish(self, fd: int, data: bytes) -> int:
        return EBADF

    def receive(self, fd: int, timeout: Optional[float]) -> Union[bytes, int]:
        return EBADF

    def poll(self, fds: Sequence[int], timeout: Optional[float]) -> int:
        return EBADF

    def log(self, level: int, text: str) -> None:
        self._log.log(level, "[%s] %s", self.uuid, text)

    def cancel(self) -> None:
        pass
