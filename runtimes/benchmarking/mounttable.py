"""The mount points the file policy checks (runtimes/files.py), read again only when they change.

Every cell's paths go through the policy, which refuses a path crossing a mount point below a
root; reading `/proc/self/mountinfo` for each path was ~0.5 ms, paid between two measured runs.
The kernel says when the table changed: poll() on an open `/proc/self/mountinfo` reports POLLPRI
(with POLLERR) after any mount or unmount in the namespace (proc(5)). The file is opened anew in
another process (fork) or another mount namespace (unshare, setns: `/proc/self/ns/mnt` names
it), and whenever anything about it fails, the table is read the plain way (files.mount_points).
"""
from __future__ import annotations

import os
import select
import threading

from runtimes.files import mount_points, parse_mountinfo

MOUNTINFO = "/proc/self/mountinfo"


class MountTable:
    """`points()`: the current mount points, cached until the kernel reports a change."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple[int, str] | None = None
        self._fd: int | None = None
        self._poll: select.poll | None = None
        self._points: list[str] = []

    def points(self) -> list[str]:
        with self._lock:
            try:
                key = (os.getpid(), os.readlink("/proc/self/ns/mnt"))
                if key != self._key or self._changed():
                    self._reload(key)
                return list(self._points)
            except OSError:
                self._drop()
                return mount_points()

    def _changed(self) -> bool:
        assert self._poll is not None
        return any(ev & (select.POLLPRI | select.POLLERR) for _fd, ev in self._poll.poll(0))

    def _reload(self, key: tuple[int, str]) -> None:
        self._drop()
        fd = os.open(MOUNTINFO, os.O_RDONLY | os.O_CLOEXEC)
        try:
            chunks = []
            while True:  # a changed table after this open is reported by poll(): nothing is missed
                b = os.read(fd, 65536)
                if not b:
                    break
                chunks.append(b)
            p = select.poll()
            p.register(fd, select.POLLPRI | select.POLLERR)
            # no poll(0) here: a change during the read is reported by the first poll, and read again then
        except BaseException:
            os.close(fd)
            raise
        self._fd, self._poll, self._key = fd, p, key
        self._points = parse_mountinfo(b"".join(chunks).decode("utf-8", "replace"))

    def _drop(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
        self._fd, self._poll, self._key = None, None, None

    def close(self) -> None:
        with self._lock:
            self._drop()
