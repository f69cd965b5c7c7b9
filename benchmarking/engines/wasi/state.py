"""The state of our WASI layer: the module's args and environ, its descriptor table (stdio and the
preopened directories), access to its linear memory, and the confinement of paths.

Confinement: a module sees only its preopened dirs (fds 3, 4, ...). Paths are walked one
component at a time from the directory fd with O_NOFOLLOW: `..` may not climb above the preopen
(ENOTCAPABLE), absolute paths are refused, and a symlink is followed only by splicing its target
into the walk (an absolute target is refused; a relative one is confined like any path).
"""
from __future__ import annotations

import os
import stat
import struct
from collections import deque
from typing import Any, Callable

from benchmarking.engines.wasi.abi import E, FT_CHAR, FT_DIR, MAX_SYMLINKS, Fd, WasiError, errno_of, filetype
from common.preopen import preopen_pair


class WasiState:
    """WASI preview1 over a linear memory given by `memory()` (a writable buffer); the calls are
    the mixins of layer.Wasi."""

    def __init__(self, argv: list[str], env: dict[str, str], dirs: list[str],
                 memory: Callable[[], Any] | None = None) -> None:
        self.argv = [a.encode() + b"\0" for a in argv]
        self.env = [f"{k}={v}".encode() + b"\0" for k, v in env.items()]
        self.memory: Callable[[], Any] = memory or (lambda: bytearray())
        self.fds: dict[int, Fd] = {0: Fd(0, FT_CHAR), 1: Fd(1, FT_CHAR), 2: Fd(2, FT_CHAR)}
        for d in dirs:  # HOST or HOST::GUEST (common.preopen.preopen_pair)
            host, guest = preopen_pair(d)
            self.fds[len(self.fds)] = Fd(os.open(host, os.O_RDONLY | os.O_DIRECTORY), FT_DIR, preopen=guest)
        self.exit_code: int | None = None

    # -- memory helpers
    def _u32(self, ptr: int, v: int) -> None:
        struct.pack_into("<I", self.memory(), ptr, v & 0xFFFFFFFF)

    def _u64(self, ptr: int, v: int) -> None:
        struct.pack_into("<Q", self.memory(), ptr, v & 0xFFFFFFFFFFFFFFFF)

    def _bytes(self, ptr: int, n: int) -> bytes:
        mem = self.memory()
        if ptr < 0 or n < 0 or ptr + n > len(mem):
            raise WasiError(E["EFAULT"])
        return bytes(mem[ptr:ptr + n])

    def _put(self, ptr: int, data: bytes) -> None:
        mem = self.memory()
        if ptr < 0 or ptr + len(data) > len(mem):
            raise WasiError(E["EFAULT"])
        mem[ptr:ptr + len(data)] = data

    def _iovs(self, iovs: int, n: int) -> list[tuple[int, int]]:
        mem = self.memory()
        return [struct.unpack_from("<II", mem, iovs + 8 * i) for i in range(n)]

    def _fd(self, fd: int) -> Fd:
        f = self.fds.get(fd)
        if f is None:
            raise WasiError(E["EBADF"])
        return f

    def _path(self, ptr: int, n: int) -> str:
        try:
            return self._bytes(ptr, n).decode()
        except UnicodeDecodeError:
            raise WasiError(E["EILSEQ"]) from None

    # -- confinement
    def resolve(self, dirfd: int, path: str, follow: bool) -> tuple[int, str]:
        """(host fd of the parent dir, last name) for `path` under `dirfd`; the caller closes the fd."""
        base = self._fd(dirfd)
        if base.kind != FT_DIR:
            raise WasiError(E["ENOTDIR"])
        if path.startswith("/"):
            raise WasiError(E["ENOTCAPABLE"])
        parts = deque(path.split("/"))
        stack = [os.dup(base.host)]
        links = 0
        try:
            while parts:
                name = parts.popleft()
                last = not parts
                if name in ("", "."):
                    if last:
                        return stack.pop(), "."
                    continue
                if name == "..":
                    if len(stack) == 1:
                        raise WasiError(E["ENOTCAPABLE"])
                    os.close(stack.pop())
                    if last:
                        return stack.pop(), "."
                    continue
                try:
                    st = os.lstat(name, dir_fd=stack[-1])
                except FileNotFoundError:
                    if last:
                        return stack.pop(), name
                    raise WasiError(E["ENOENT"]) from None
                if stat.S_ISLNK(st.st_mode) and (not last or follow):
                    links += 1
                    if links > MAX_SYMLINKS:
                        raise WasiError(E["ELOOP"])
                    target = os.readlink(name, dir_fd=stack[-1])
                    if target.startswith("/"):
                        raise WasiError(E["ENOTCAPABLE"])
                    parts.extendleft(reversed(target.split("/")))
                    continue
                if last:
                    return stack.pop(), name
                if not stat.S_ISDIR(st.st_mode):
                    raise WasiError(E["ENOTDIR"])
                stack.append(os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=stack[-1]))
            return stack.pop(), "."
        except OSError as e:
            raise WasiError(errno_of(e)) from None
        finally:
            for fd in stack:
                os.close(fd)

    def _filestat(self, st: os.stat_result, out: int) -> None:
        struct.pack_into("<QQBxxxxxxxQQQQQ", self.memory(), out, st.st_dev, st.st_ino, filetype(st.st_mode),
                         st.st_nlink, st.st_size, st.st_atime_ns, st.st_mtime_ns, st.st_ctime_ns)


    def close(self) -> None:
        for fd, f in list(self.fds.items()):
            if fd >= 3:
                os.close(f.host)
        self.fds = {}

