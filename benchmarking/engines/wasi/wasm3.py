"""wasm3-i: the wasm3 interpreter (PyPI `pywasm3` 0.5.0, which has no WASI) under our own WASI
preview1 layer, written here.

`Wasi` implements the calls a wasi-libc program uses: args, environ, clocks, random, fd
read/write/seek/tell/close/sync/fdstat/filestat/prestat/readdir, path_open and the path calls
(create/remove directory, unlink, rename, filestat, readlink), poll_oneoff on clocks (sleep),
sched_yield and proc_exit. It works on a memory *getter* (wasm3's memory moves when it grows), so
its logic is tested without wasm3 (tests/runtimes/benchmarking/test_wasm3_wasi.py) and then on real modules.

Confinement: a module sees only its preopened dirs (fds 3, 4, ...). Paths are walked one
component at a time from the directory fd with O_NOFOLLOW: `..` may not climb above the preopen
(ENOTCAPABLE), absolute paths are refused, and a symlink is followed only by splicing its target
into the walk (an absolute target is refused; a relative one is confined like any path). Host
errors become WASI errno values (`errno_of`). A trap leaves with exit status 134.

Why the name section is stripped before loading: with it, pywasm3 0.5.0 can resolve `_start` to
the wrong function.
"""
from __future__ import annotations

import errno
import os
import secrets
import stat
import struct
import sys
import time
from collections import deque
from typing import Any, Callable

from benchmarking.engines.invocation import write_phases
from common.preopen import preopen_pair

TRAP_EXIT = 134
NS = "wasi_snapshot_preview1"

# WASI errno values, in order (value = index)
_WASI_ERRNO = ("SUCCESS E2BIG EACCES EADDRINUSE EADDRNOTAVAIL EAFNOSUPPORT EAGAIN EALREADY EBADF EBADMSG EBUSY "
               "ECANCELED ECHILD ECONNABORTED ECONNREFUSED ECONNRESET EDEADLK EDESTADDRREQ EDOM EDQUOT EEXIST EFAULT "
               "EFBIG EHOSTUNREACH EIDRM EILSEQ EINPROGRESS EINTR EINVAL EIO EISCONN EISDIR ELOOP EMFILE EMLINK EMSGSIZE "
               "EMULTIHOP ENAMETOOLONG ENETDOWN ENETRESET ENETUNREACH ENFILE ENOBUFS ENODEV ENOENT ENOEXEC ENOLCK ENOLINK "
               "ENOMEM ENOMSG ENOPROTOOPT ENOSPC ENOSYS ENOTCONN ENOTDIR ENOTEMPTY ENOTRECOVERABLE ENOTSOCK ENOTSUP ENOTTY "
               "ENXIO EOVERFLOW EOWNERDEAD EPERM EPIPE EPROTO EPROTONOSUPPORT EPROTOTYPE ERANGE EROFS ESPIPE ESRCH ESTALE "
               "ETIMEDOUT ETXTBSY EXDEV ENOTCAPABLE").split()
E = {name: i for i, name in enumerate(_WASI_ERRNO)}
_FROM_HOST = {getattr(errno, n): v for n, v in E.items() if hasattr(errno, n)}
_FROM_HOST[errno.EWOULDBLOCK] = E["EAGAIN"]
_FROM_HOST[errno.EOPNOTSUPP] = E["ENOTSUP"]

# file types
FT_UNKNOWN, FT_CHAR, FT_DIR, FT_FILE, FT_LINK = 0, 2, 3, 4, 7
# oflags, fdflags, lookup flags, rights
O_CREAT, O_DIRECTORY, O_EXCL, O_TRUNC = 1, 2, 4, 8
FDFLAG_APPEND, FDFLAG_NONBLOCK = 1, 4
LOOKUP_SYMLINK_FOLLOW = 1
RIGHT_FD_READ, RIGHT_FD_WRITE = 1 << 1, 1 << 6
ALL_RIGHTS = (1 << 30) - 1
MAX_SYMLINKS = 32


class WasiError(Exception):
    """A WASI call fails with this errno value."""

    def __init__(self, code: int) -> None:
        super().__init__(_WASI_ERRNO[code])
        self.code = code


class WasiExit(Exception):
    """proc_exit(code): unwinds out of the module."""

    def __init__(self, code: int) -> None:
        super().__init__(f"exit {code}")
        self.code = code


def errno_of(e: OSError) -> int:
    return _FROM_HOST.get(e.errno or 0, E["EIO"])


def _filetype(mode: int) -> int:
    if stat.S_ISDIR(mode):
        return FT_DIR
    if stat.S_ISREG(mode):
        return FT_FILE
    if stat.S_ISLNK(mode):
        return FT_LINK
    if stat.S_ISCHR(mode):
        return FT_CHAR
    return FT_UNKNOWN


class _Fd:
    __slots__ = ("host", "kind", "preopen", "append")

    def __init__(self, host: int, kind: int, preopen: str | None = None, append: bool = False) -> None:
        self.host, self.kind, self.preopen, self.append = host, kind, preopen, append


class Wasi:
    """WASI preview1 over a linear memory given by `memory()` (a writable buffer)."""

    def __init__(self, argv: list[str], env: dict[str, str], dirs: list[str],
                 memory: Callable[[], Any] | None = None) -> None:
        self.argv = [a.encode() + b"\0" for a in argv]
        self.env = [f"{k}={v}".encode() + b"\0" for k, v in env.items()]
        self.memory: Callable[[], Any] = memory or (lambda: bytearray())
        self.fds: dict[int, _Fd] = {0: _Fd(0, FT_CHAR), 1: _Fd(1, FT_CHAR), 2: _Fd(2, FT_CHAR)}
        for d in dirs:  # HOST or HOST::GUEST (common.preopen.preopen_pair)
            host, guest = preopen_pair(d)
            self.fds[len(self.fds)] = _Fd(os.open(host, os.O_RDONLY | os.O_DIRECTORY), FT_DIR, preopen=guest)
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

    def _fd(self, fd: int) -> _Fd:
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

    # -- args, environ, clocks, random
    def args_sizes_get(self, argc: int, size: int) -> int:
        self._u32(argc, len(self.argv))
        self._u32(size, sum(len(a) for a in self.argv))
        return 0

    def args_get(self, argv: int, buf: int) -> int:
        return self._strings(self.argv, argv, buf)

    def environ_sizes_get(self, count: int, size: int) -> int:
        self._u32(count, len(self.env))
        self._u32(size, sum(len(a) for a in self.env))
        return 0

    def environ_get(self, environ: int, buf: int) -> int:
        return self._strings(self.env, environ, buf)

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

    # -- fds
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

    def _filestat(self, st: os.stat_result, out: int) -> None:
        struct.pack_into("<QQBxxxxxxxQQQQQ", self.memory(), out, st.st_dev, st.st_ino, _filetype(st.st_mode),
                         st.st_nlink, st.st_size, st.st_atime_ns, st.st_mtime_ns, st.st_ctime_ns)

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
                ino, kind = st.st_ino, _filetype(st.st_mode)
            except OSError:
                ino, kind = 0, FT_UNKNOWN
            out += struct.pack("<QQIBxxx", i + 1, ino, len(name), kind) + name
            if len(out) >= n:
                break
        data = bytes(out[:n])
        self._put(buf, data)
        self._u32(used, len(data))
        return 0

    # -- paths
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
        kind = _filetype(os.fstat(host).st_mode)
        fd = max(self.fds) + 1
        self.fds[fd] = _Fd(host, kind, append=bool(fdflags & FDFLAG_APPEND))
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

    def close(self) -> None:
        for fd, f in list(self.fds.items()):
            if fd >= 3:
                os.close(f.host)
        self.fds = {}


# (name, wasm3 signature): i = i32, I = i64, v = no result
SIGNATURES = [
    ("args_get", "i(ii)"), ("args_sizes_get", "i(ii)"), ("environ_get", "i(ii)"), ("environ_sizes_get", "i(ii)"),
    ("clock_res_get", "i(ii)"), ("clock_time_get", "i(iIi)"), ("random_get", "i(ii)"), ("sched_yield", "i()"),
    ("poll_oneoff", "i(iiii)"), ("proc_exit", "v(i)"), ("proc_raise", "i(i)"),
    ("fd_write", "i(iiii)"), ("fd_read", "i(iiii)"), ("fd_pread", "i(iiiIi)"), ("fd_pwrite", "i(iiiIi)"),
    ("fd_seek", "i(iIii)"), ("fd_tell", "i(ii)"), ("fd_close", "i(i)"), ("fd_sync", "i(i)"), ("fd_datasync", "i(i)"),
    ("fd_fdstat_get", "i(ii)"), ("fd_fdstat_set_flags", "i(ii)"), ("fd_prestat_get", "i(ii)"),
    ("fd_prestat_dir_name", "i(iii)"), ("fd_filestat_get", "i(ii)"), ("fd_filestat_set_size", "i(iI)"),
    ("fd_readdir", "i(iiiIi)"), ("path_open", "i(iiiiiIIii)"), ("path_create_directory", "i(iii)"),
    ("path_remove_directory", "i(iii)"), ("path_unlink_file", "i(iii)"), ("path_filestat_get", "i(iiiii)"),
    ("path_readlink", "i(iiiiii)"), ("path_rename", "i(iiiiii)"),
]


def _errno_returning(fn: Callable[..., int]) -> Callable[..., int]:
    """A WASI call never raises into the module (that would be a trap): errors are errno values."""
    def call(self: Wasi, *args: int) -> int:
        try:
            return fn(self, *args)
        except WasiError as e:
            return e.code
        except OSError as e:
            return errno_of(e)
        except (struct.error, IndexError, ValueError):
            return E["EFAULT"]  # a pointer outside the module's memory
    call.__name__ = fn.__name__
    return call


for _name, _sig in SIGNATURES:
    if _name != "proc_exit":
        setattr(Wasi, _name, _errno_returning(getattr(Wasi, _name)))


def strip_custom_sections(data: bytes) -> bytes:
    """The module without custom sections (id 0: the name section among them)."""
    if data[:4] != b"\0asm":
        raise ValueError("not a WebAssembly binary module")
    out = bytearray(data[:8])
    i = 8
    while i < len(data):
        sid = data[i]
        size, shift, j = 0, 0, i + 1
        while True:
            b = data[j]
            size |= (b & 0x7F) << shift
            shift += 7
            j += 1
            if not b & 0x80:
                break
        if sid != 0:
            out += data[i:j + size]
        i = j + size
    return bytes(out)


def available() -> tuple[bool, str]:
    import importlib.util
    if importlib.util.find_spec("wasm3") is None:
        return False, "the pywasm3 package is not installed (run `make env`)"
    return True, "pywasm3 + benchmarking/engines/wasi/wasm3.py"


def run(path: str, argv: list[str], env: dict[str, str], dirs: list[str],
        phases: Callable[..., None] | None = None) -> int:
    """Run a WASI module on wasm3 in this process; the exit code (134 for a trap)."""
    import wasm3

    t0 = time.perf_counter_ns()
    with open(path, "rb") as f:
        data = strip_custom_sections(f.read())
    environment = wasm3.Environment()
    runtime = environment.new_runtime(1 << 20)
    module = environment.parse_module(data)
    runtime.load(module)
    t1 = time.perf_counter_ns()
    wasi = Wasi(argv, env, dirs, memory=lambda: runtime.get_memory(0))
    for name, sig in SIGNATURES:
        try:
            module.link_function(NS, name, sig, getattr(wasi, name))
        except RuntimeError:
            pass  # the module does not import it
    start = runtime.find_function("_start")
    t2 = time.perf_counter_ns()
    code = 0
    try:
        start()
    except Exception as e:  # wasm3 reports a host exception (proc_exit) or a trap as RuntimeError
        if wasi.exit_code is not None:
            code = wasi.exit_code
        else:
            sys.stdout.flush()
            sys.stderr.write(f"wasm3: trap: {e}\n")
            code = TRAP_EXIT
    t3 = time.perf_counter_ns()
    if wasi.exit_code is not None:
        code = wasi.exit_code
    if phases is not None:
        phases(compile=t1 - t0, instantiate=t2 - t1, execute=t3 - t2)
    return code


def child_target(path: str, argv: list[str], env: dict[str, str], dirs: list[str]) -> Callable[[int], int]:
    """A harness target: run in the forked child, phases on the result pipe."""
    def target(fd: int) -> int:
        return run(path, argv, env, dirs, phases=lambda **ns: write_phases(fd, **ns))
    return target
