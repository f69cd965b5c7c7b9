"""Kernel objects behind the IPC layer: a small message queue and a shared-memory block.

Two backends with the same interface:
- `posix` (Linux): posix_ipc message queues, whose descriptor is pollable, and POSIX shm.
- `sysv` (systems without POSIX queues, e.g. macOS): sysv_ipc queues and shm. A SysV queue
  has no descriptor, so a helper thread moves its messages into a pipe; `fileno()` is that
  pipe. The thread starts on first use: use the queue after forking (threads do not fork).
"""
from __future__ import annotations

import mmap
import os
import select
import threading
import time
import zlib
from typing import Any, Protocol

import posix_ipc  # type: ignore[import-not-found]

from .errors import BackendUnavailable, ClosedError, IPCError

try:  # optional: only the sysv backend needs it
    import sysv_ipc  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover
    sysv_ipc = None


class Queue(Protocol):
    name: str

    def send(self, data: bytes, timeout: float = 0.0) -> bool:
        """Send; False when the queue stayed full for `timeout` seconds (0: do not wait)."""

    def receive(self, timeout: float | None) -> bytes | None:
        """One message, or None after `timeout` seconds (None: wait forever)."""

    def fileno(self) -> int: ...

    def close(self) -> None: ...


class SharedBlock(Protocol):
    name: str
    buf: memoryview
    raw: object  # an object whose slices are bytes (an mmap), or None

    def close(self) -> None: ...


class Backend(Protocol):
    name: str

    def create_queue(self, name: str, max_messages: int, message_size: int) -> Queue: ...
    def open_queue(self, name: str) -> Queue: ...
    def unlink_queue(self, name: str) -> None: ...
    def create_shm(self, name: str, size: int) -> SharedBlock: ...
    def open_shm(self, name: str) -> SharedBlock: ...
    def unlink_shm(self, name: str) -> None: ...


# --------------------------------------------------------------------------- POSIX


class PosixQueue:
    def __init__(self, name: str, mq: posix_ipc.MessageQueue) -> None:
        self.name = name
        self._mq: posix_ipc.MessageQueue | None = mq

    def _q(self) -> posix_ipc.MessageQueue:
        if self._mq is None:
            raise ClosedError(f"queue {self.name} is closed")
        return self._mq

    def send(self, data: bytes, timeout: float = 0.0) -> bool:
        try:
            self._q().send(data, timeout=timeout)
            return True
        except posix_ipc.BusyError:
            return False

    def receive(self, timeout: float | None) -> bytes | None:
        q = self._q()
        try:
            if timeout == 0:
                # non-blocking, not a timed receive: posix_ipc turns timeout 0 into mq_timedreceive
                # with "now", which costs ~45 us on an empty queue (0.9 us non-blocking)
                q.block = False
                try:
                    msg, _prio = q.receive()
                finally:
                    q.block = True
            else:
                msg, _prio = q.receive(timeout=timeout)
            return bytes(msg)
        except posix_ipc.BusyError:
            return None

    def fileno(self) -> int:
        return int(self._q().mqd)

    def close(self) -> None:
        if self._mq is not None:
            try:
                self._mq.close()
            except posix_ipc.Error:
                pass
            self._mq = None


class PosixBlock:
    def __init__(self, name: str, size: int, fd: int) -> None:
        self.name = name
        self._mm: mmap.mmap | None = mmap.mmap(fd, size)
        os.close(fd)
        self.buf = memoryview(self._mm)
        self.raw: object = self._mm  # slicing it yields bytes (faster than memoryview -> bytes)

    def close(self) -> None:
        if self._mm is not None:
            self.buf.release()
            self.raw = None
            try:
                self._mm.close()
            except BufferError:  # a view is still exported; the mapping goes with the process
                pass
            self._mm = None


class PosixBackend:
    name = "posix"

    def __init__(self) -> None:
        if not posix_ipc.MESSAGE_QUEUES_SUPPORTED:
            raise BackendUnavailable("POSIX message queues are not supported here; use backend 'sysv'")

    def create_queue(self, name: str, max_messages: int, message_size: int) -> PosixQueue:
        try:
            mq = posix_ipc.MessageQueue(name, posix_ipc.O_CREX, mode=0o600, max_messages=max_messages, max_message_size=message_size)
        except posix_ipc.ExistentialError as e:
            raise IPCError(f"queue {name} already exists (another supervisor with the same id?): {e}") from e
        except OSError as e:
            raise IPCError(
                f"cannot create queue {name} ({max_messages} x {message_size} B): {e}; "
                "the per-user RLIMIT_MSGQUEUE may be exhausted by stale queues (see /dev/mqueue)"
            ) from e
        return PosixQueue(name, mq)

    def open_queue(self, name: str) -> PosixQueue:
        try:
            return PosixQueue(name, posix_ipc.MessageQueue(name))
        except posix_ipc.ExistentialError as e:
            raise IPCError(f"queue {name} does not exist (supervisor gone?)") from e

    def unlink_queue(self, name: str) -> None:
        try:
            posix_ipc.unlink_message_queue(name)
        except posix_ipc.ExistentialError:
            pass

    def create_shm(self, name: str, size: int) -> PosixBlock:
        try:
            shm = posix_ipc.SharedMemory(name, posix_ipc.O_CREX, mode=0o600, size=size)
        except posix_ipc.ExistentialError as e:
            raise IPCError(f"shared memory {name} already exists: {e}") from e
        return PosixBlock(name, size, shm.fd)

    def open_shm(self, name: str) -> PosixBlock:
        try:
            shm = posix_ipc.SharedMemory(name)
        except posix_ipc.ExistentialError as e:
            raise IPCError(f"shared memory {name} does not exist (supervisor gone?)") from e
        return PosixBlock(name, shm.size, shm.fd)

    def unlink_shm(self, name: str) -> None:
        try:
            posix_ipc.unlink_shared_memory(name)
        except posix_ipc.ExistentialError:
            pass


# --------------------------------------------------------------------------- SysV


def sysv_key(name: str) -> int:
    """A stable 31-bit key for an object name (never IPC_PRIVATE = 0)."""
    return (zlib.crc32(name.encode()) & 0x7FFFFFFF) or 1


_WAKE_TYPE = 2  # message type used only to wake this process's own pump thread at close


class SysvQueue:
    """A SysV queue made pollable by a pump thread that copies messages into a pipe.

    Pipe framing: [len:u8][bytes] (queue messages are tiny doorbells: <= 255 bytes).
    """

    def __init__(self, name: str, mq: "sysv_ipc.MessageQueue") -> None:
        self.name = name
        self._mq = mq
        self._closed = False
        self._rfd = -1
        self._wfd = -1
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._pending = b""

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._rfd, self._wfd = os.pipe()
            os.set_blocking(self._rfd, False)
            self._thread = threading.Thread(target=self._pump, name=f"sysv-pump {self.name}", daemon=True)
            self._thread.start()

    def _pump(self) -> None:
        while not self._closed:
            try:
                msg, mtype = self._mq.receive(block=True)
            except (sysv_ipc.ExistentialError, sysv_ipc.Error, OSError):
                return
            if mtype == _WAKE_TYPE and self._closed:
                return
            if mtype == _WAKE_TYPE:
                continue
            try:
                os.write(self._wfd, bytes([len(msg)]) + msg[:255])
            except OSError:
                return

    def send(self, data: bytes, timeout: float = 0.0) -> bool:
        if self._closed:
            raise ClosedError(f"queue {self.name} is closed")
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._mq.send(data, block=False, type=1)
                return True
            except sysv_ipc.BusyError:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(0.0005)
            except sysv_ipc.ExistentialError as e:
                raise IPCError(f"queue {self.name} is gone: {e}") from e

    def receive(self, timeout: float | None) -> bytes | None:
        if self._closed:
            raise ClosedError(f"queue {self.name} is closed")
        self._start()
        while True:
            if self._pending and len(self._pending) >= 1 + self._pending[0]:
                n = self._pending[0]
                msg, self._pending = self._pending[1 : 1 + n], self._pending[1 + n :]
                return msg
            r, _, _ = select.select([self._rfd], [], [], timeout)
            if not r:
                return None
            try:
                chunk = os.read(self._rfd, 4096)
            except BlockingIOError:
                continue
            if not chunk:
                return None
            self._pending += chunk
            timeout = 0 if timeout is not None else None

    def fileno(self) -> int:
        self._start()
        return self._rfd

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._thread is not None:
            try:
                self._mq.send(b"", block=False, type=_WAKE_TYPE)
            except Exception:
                pass
            self._thread.join(1.0)
        for fd in (self._rfd, self._wfd):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass


class SysvBlock:
    def __init__(self, name: str, shm: "sysv_ipc.SharedMemory") -> None:
        self.name = name
        self._shm: "sysv_ipc.SharedMemory | None" = shm
        self.buf = memoryview(shm)
        self.raw: object = None

    def close(self) -> None:
        if self._shm is not None:
            self.buf.release()
            try:
                self._shm.detach()
            except (sysv_ipc.Error, BufferError):
                pass
            self._shm = None


class SysvBackend:
    name = "sysv"

    def __init__(self) -> None:
        if sysv_ipc is None:
            raise BackendUnavailable("sysv_ipc is not installed")

    def create_queue(self, name: str, max_messages: int, message_size: int) -> SysvQueue:
        mq = _sysv_create("queue", name, sysv_ipc.MessageQueue, max_message_size=message_size)
        # bound the queue like the POSIX one: max_messages messages of message_size bytes
        try:
            mq.max_size = max(64, max_messages * message_size)
        except (sysv_ipc.Error, ValueError, OSError):
            pass
        return SysvQueue(name, mq)

    def open_queue(self, name: str) -> SysvQueue:
        return SysvQueue(name, _sysv_open("queue", name, sysv_ipc.MessageQueue))

    def unlink_queue(self, name: str) -> None:
        _sysv_unlink(name, sysv_ipc.MessageQueue)

    def create_shm(self, name: str, size: int) -> SysvBlock:
        return SysvBlock(name, _sysv_create("shared memory", name, sysv_ipc.SharedMemory, size=size))

    def open_shm(self, name: str) -> SysvBlock:
        return SysvBlock(name, _sysv_open("shared memory", name, sysv_ipc.SharedMemory))

    def unlink_shm(self, name: str) -> None:
        _sysv_unlink(name, sysv_ipc.SharedMemory)


# one SysV object (sysv_ipc.MessageQueue or SharedMemory) by the key of its name: created (a
# leftover of the same key is an error that names it), opened, removed (already gone is fine)
def _sysv_create(what: str, name: str, kind: Any, **size: int) -> Any:
    try:
        return kind(sysv_key(name), sysv_ipc.IPC_CREX, mode=0o600, **size)
    except sysv_ipc.ExistentialError as e:
        raise IPCError(f"{what} {name} (key {sysv_key(name):#x}) already exists: {e}") from e


def _sysv_open(what: str, name: str, kind: Any) -> Any:
    try:
        return kind(sysv_key(name))
    except sysv_ipc.ExistentialError as e:
        raise IPCError(f"{what} {name} does not exist (supervisor gone?)") from e


def _sysv_unlink(name: str, kind: Any) -> None:
    try:
        kind(sysv_key(name)).remove()
    except sysv_ipc.ExistentialError:
        pass


def get_backend(name: str = "posix") -> Backend:
    if name == "posix":
        return PosixBackend()
    if name == "sysv":
        return SysvBackend()
    raise BackendUnavailable(f"unknown IPC backend {name!r} (use 'posix' or 'sysv')")
