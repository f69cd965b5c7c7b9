"""The path calls of our WASI layer: path_open and create/remove directory, unlink, filestat,
readlink and rename, each on a path confined to its directory fd (state.WasiState.resolve)."""
from __future__ import annotations

import errno
import os
import stat
from typing import Callable

from benchmarking.engines.wasi.abi import E, FDFLAG_APPEND, LOOKUP_SYMLINK_FOLLOW, O_CREAT, O_DIRECTORY, O_EXCL, \
    O_TRUNC, RIGHT_FD_READ, RIGHT_FD_WRITE, Fd, WasiError, errno_of, filetype
from benchmarking.engines.wasi.state import WasiState


class PathCalls(WasiState):
    def path_open(self, dirfd: int, lookup: int, path: int, path_len: int, oflags: int, rights: int,
                  _inheriting: int, fdflags: int, out: int) -> int:
        try:
            parent, name = self.resolve(dirfd, self._path(path, path_len), bool(lookup & LOOKUP_SYMLINK_FOLLOW))
        except WasiError as e:
            return e.code
        try:
            flags = os.O_NOFOLLOW | os.O_CLOEXEC
            write = bool(rights & RIGHT_FD_WRITE) or bool(oflags & (O_TRUNC | O_CREAT)) and not oflags & O_DIRECTORY
            read = bool(rights & RIGHT_FD_READ) or not write
            if oflags & O_DIRECTORY:
                flags |= os.O_RDONLY | os.O_DIRECTORY
            else:
                flags |= os.O_RDWR if read and write else os.O_WRONLY if write else os.O_RDONLY
            if oflags & O_CREAT:
                flags |= os.O_CREAT
            if oflags & O_EXCL:
                flags |= os.O_EXCL
            if oflags & O_TRUNC:
                flags |= os.O_TRUNC
            try:
                host = os.open(name, flags, 0o644, dir_fd=parent)
            except IsADirectoryError:  # a directory asked for without O_DIRECTORY (opendir does that)
                host = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
        except OSError as e:
            return E["ENOTCAPABLE"] if e.errno == errno.ELOOP else errno_of(e)
        finally:
            os.close(parent)
        kind = filetype(os.fstat(host).st_mode)
        fd = max(self.fds) + 1
        self.fds[fd] = Fd(host, kind, append=bool(fdflags & FDFLAG_APPEND))
        self._u32(out, fd)
        return 0

    def _at(self, dirfd: int, path: int, n: int, op: Callable[[int, str], None], follow: bool = False) -> int:
        try:
            parent, name = self.resolve(dirfd, self._path(path, n), follow)
        except WasiError as e:
            return e.code
        try:
            op(parent, name)
        except WasiError as e:
            return e.code
        except OSError as e:
            return errno_of(e)
        finally:
            os.close(parent)
        return 0

    def path_create_directory(self, dirfd: int, path: int, n: int) -> int:
        return self._at(dirfd, path, n, lambda d, name: os.mkdir(name, 0o755, dir_fd=d))

    def path_remove_directory(self, dirfd: int, path: int, n: int) -> int:
        return self._at(dirfd, path, n, lambda d, name: os.rmdir(name, dir_fd=d))

    def path_unlink_file(self, dirfd: int, path: int, n: int) -> int:
        def unlink(d: int, name: str) -> None:
            if stat.S_ISDIR(os.lstat(name, dir_fd=d).st_mode):
                raise WasiError(E["EISDIR"])
            os.unlink(name, dir_fd=d)
        return self._at(dirfd, path, n, unlink)

    def path_filestat_get(self, dirfd: int, lookup: int, path: int, n: int, out: int) -> int:
        return self._at(dirfd, path, n, lambda d, name: self._filestat(os.lstat(name, dir_fd=d), out),
                        follow=bool(lookup & LOOKUP_SYMLINK_FOLLOW))

    def path_readlink(self, dirfd: int, path: int, n: int, buf: int, cap: int, used: int) -> int:
        def readlink(d: int, name: str) -> None:
            target = os.readlink(name, dir_fd=d).encode()[:cap]
            self._put(buf, target)
            self._u32(used, len(target))
        return self._at(dirfd, path, n, readlink)

    def path_rename(self, fd1: int, p1: int, n1: int, fd2: int, p2: int, n2: int) -> int:
        try:
            d1, name1 = self.resolve(fd1, self._path(p1, n1), False)
        except WasiError as e:
            return e.code
        try:
            d2, name2 = self.resolve(fd2, self._path(p2, n2), False)
        except WasiError as e:
            os.close(d1)
            return e.code
        try:
            os.rename(name1, name2, src_dir_fd=d1, dst_dir_fd=d2)
        except OSError as e:
            return errno_of(e)
        finally:
            os.close(d1)
            os.close(d2)
        return 0
