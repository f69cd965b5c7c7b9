"""Our WASI preview1 layer in Python, for engines whose binding has none (wasm3-i: wasm3.py).

`Wasi` implements the calls a wasi-libc program uses: args, environ, clocks, random, fd
read/write/seek/tell/close/sync/fdstat/filestat/prestat/readdir, path_open and the path calls
(create/remove directory, unlink, rename, filestat, readlink), poll_oneoff on clocks (sleep),
sched_yield and proc_exit (proc.py, fd.py, path.py over state.py). It works on a memory *getter*
(wasm3's memory moves when it grows), so its logic is tested without an engine
(tests/runtimes/benchmarking/test_wasm3_wasi.py) and then on real modules. Host errors become WASI
errno values (abi.errno_of); a call never raises into the module.
"""
from __future__ import annotations

import struct
from typing import Callable

from benchmarking.engines.wasi.abi import E, WasiError, errno_of
from benchmarking.engines.wasi.fd import FdCalls
from benchmarking.engines.wasi.path import PathCalls
from benchmarking.engines.wasi.proc import ProcCalls


class Wasi(ProcCalls, FdCalls, PathCalls):
    """WASI preview1 over a linear memory given by `memory()` (a writable buffer)."""


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
