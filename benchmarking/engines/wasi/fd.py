"""The descriptor calls of our WASI layer: read/write (positional too), seek/tell, close, sync,
fdstat, prestat, filestat and readdir."""
from __future__ import annotations

import os
import struct

from benchmarking.engines.wasi.abi import ALL_RIGHTS, E, FDFLAG_APPEND, FDFLAG_NONBLOCK, FT_CHAR, FT_DIR, FT_UNKNOWN, \
    errno_of, filetype
from benchmarking.engines.wasi.state import WasiState


class FdCalls(WasiState):
    def fd_write(self, fd: int, iovs: int, n: int, nwritten: int) -> int:
        f = self._fd(fd)
        data = b"".join(self._bytes(p, ln) for p, ln in self._iovs(iovs, n))
        try:
            if f.append:
                os.lseek(f.host, 0, os.SEEK_END)
            view = memoryview(data)
            while view:
                view = view[os.write(f.host, view):]
        except OSError as e:
            return errno_of(e)
        self._u32(nwritten, len(data))
        return 0

    def fd_read(self, fd: int, iovs: int, n: int, nread: int) -> int:
        return self._read(fd, iovs, n, nread, None)

    def fd_pread(self, fd: int, iovs: int, n: int, offset: int, nread: int) -> int:
        return self._read(fd, iovs, n, nread, offset)

    def _read(self, fd: int, iovs: int, n: int, nread: int, offset: int | None) -> int:
        """fd_read (offset None: at the file position) and fd_pread (at `offset`)."""
        f = self._fd(fd)
        total = 0
        try:
            for p, ln in self._iovs(iovs, n):
                chunk = os.read(f.host, ln) if offset is None else os.pread(f.host, ln, offset + total)
                self._put(p, chunk)
                total += len(chunk)
                if len(chunk) < ln:
                    break
        except OSError as e:
            return errno_of(e)
        self._u32(nread, total)
        return 0

    def fd_pwrite(self, fd: int, iovs: int, n: int, offset: int, nwritten: int) -> int:
        f = self._fd(fd)
        data = b"".join(self._bytes(p, ln) for p, ln in self._iovs(iovs, n))
        try:
            written = os.pwrite(f.host, data, offset)
        except OSError as e:
            return errno_of(e)
        self._u32(nwritten, written)
        return 0

    def fd_seek(self, fd: int, offset: int, whence: int, out: int) -> int:
        f = self._fd(fd)
        if whence not in (0, 1, 2):
            return E["EINVAL"]
        if f.kind == FT_CHAR:
            return E["ESPIPE"]
        if offset >= 1 << 63:
            offset -= 1 << 64  # i64 arrives unsigned
        try:
            self._u64(out, os.lseek(f.host, offset, whence))
        except OSError as e:
            return errno_of(e)
        return 0

    def fd_tell(self, fd: int, out: int) -> int:
        return self.fd_seek(fd, 0, 1, out)

    def fd_close(self, fd: int) -> int:
        f = self._fd(fd)
        del self.fds[fd]
        if fd >= 3:
            os.close(f.host)
        return 0

    def fd_sync(self, fd: int) -> int:
        try:
            os.fsync(self._fd(fd).host)
        except OSError as e:
            return errno_of(e)
        return 0

    fd_datasync = fd_sync

    def fd_fdstat_get(self, fd: int, out: int) -> int:
        f = self._fd(fd)
        flags = FDFLAG_APPEND if f.append else 0
        struct.pack_into("<BxHxxxxQQ", self.memory(), out, f.kind, flags, ALL_RIGHTS, ALL_RIGHTS)
        return 0

    def fd_fdstat_set_flags(self, fd: int, flags: int) -> int:
        f = self._fd(fd)
        f.append = bool(flags & FDFLAG_APPEND)
        if fd >= 3:
            os.set_blocking(f.host, not flags & FDFLAG_NONBLOCK)
        return 0

    def fd_prestat_get(self, fd: int, out: int) -> int:
        f = self.fds.get(fd)
        if f is None or f.preopen is None:
            return E["EBADF"]
        struct.pack_into("<BxxxI", self.memory(), out, 0, len(f.preopen.encode()))
        return 0

    def fd_prestat_dir_name(self, fd: int, buf: int, n: int) -> int:
        f = self.fds.get(fd)
        if f is None or f.preopen is None:
            return E["EBADF"]
        name = f.preopen.encode()
        if n < len(name):
            return E["ENAMETOOLONG"]
        self._put(buf, name)
        return 0
    def fd_filestat_get(self, fd: int, out: int) -> int:
        try:
            self._filestat(os.fstat(self._fd(fd).host), out)
        except OSError as e:
            return errno_of(e)
        return 0

    def fd_filestat_set_size(self, fd: int, size: int) -> int:
        try:
            os.ftruncate(self._fd(fd).host, size)
        except OSError as e:
            return errno_of(e)
        return 0

    def fd_readdir(self, fd: int, buf: int, n: int, cookie: int, used: int) -> int:
        f = self._fd(fd)
        if f.kind != FT_DIR:
            return E["ENOTDIR"]
        try:
            names = [".", ".."] + sorted(os.listdir(f.host))
        except OSError as e:
            return errno_of(e)
        out = bytearray()
        for i in range(cookie, len(names)):
            name = names[i].encode()
            try:
                st = os.lstat(names[i], dir_fd=f.host)
                ino, kind = st.st_ino, filetype(st.st_mode)
            except OSError:
                ino, kind = 0, FT_UNKNOWN
            out += struct.pack("<QQIBxxx", i + 1, ino, len(name), kind) + name
            if len(out) >= n:
                break
        data = bytes(out[:n])
        self._put(buf, data)
        self._u32(used, len(data))
        return 0
