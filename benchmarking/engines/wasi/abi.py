"""The WASI preview1 ABI as our Python layer uses it: errno values, file types, flags and rights,
the errors a call raises (`WasiError`, `WasiExit`) and an open descriptor (`Fd`)."""
from __future__ import annotations

import errno
import stat

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


def filetype(mode: int) -> int:
    if stat.S_ISDIR(mode):
        return FT_DIR
    if stat.S_ISREG(mode):
        return FT_FILE
    if stat.S_ISLNK(mode):
        return FT_LINK
    if stat.S_ISCHR(mode):
        return FT_CHAR
    return FT_UNKNOWN


class Fd:
    __slots__ = ("host", "kind", "preopen", "append")

    def __init__(self, host: int, kind: int, preopen: str | None = None, append: bool = False) -> None:
        self.host, self.kind, self.preopen, self.append = host, kind, preopen, append

