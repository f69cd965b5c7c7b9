"""Limits of the WebAssembly runtimes' modules (issue #25, docs/security.md "Limits of the linux runtime").

Modules run as threads of one worker process, so:
- **File size** (`file_bytes`, default FILE_BYTES): RLIMIT_FSIZE on the worker process, SIGXFSZ ignored,
  so a write past the limit fails with EFBIG (the module sees "File too large") and the worker, the
  other modules and the node go on. It bounds every file any module of the runtime writes.
- **Aggregate memory** (`memory_total`, default half the RAM): every module reserves its
  `memory_limit` of linear memory at create; a create that would take the reservations past
  `memory_total` is refused (exited `error`, naming both settings). No memory cgroup: that needs a
  delegated cgroup v2 subtree (docs/security.md, "The unit").
Python 3.10 compatible; standard library only.
"""
from __future__ import annotations

import os
import resource
import signal
from typing import Any, Dict, Optional

FILE_BYTES = 256 << 20


def half_the_ram() -> int:
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")) // 2
    except (ValueError, OSError):
        return 4 << 30


def _setting(s: Dict[str, Any], key: str, default: int) -> Optional[int]:
    v = s.get(key, default)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
        raise ValueError(f"setting {key!r} must be a positive number of bytes or null, got {v!r}")
    return v


class Limits:
    """The two limits of one runtime, from its settings (`file_bytes`, `memory_total`; null = none)."""

    def __init__(self, settings: Dict[str, Any], memory_limit: Optional[int]) -> None:
        self.file_bytes = _setting(settings, "file_bytes", FILE_BYTES)
        self.memory_total = _setting(settings, "memory_total", half_the_ram())
        self.memory_limit = memory_limit

    def apply_file_size(self) -> None:
        """RLIMIT_FSIZE on this (worker) process; SIGXFSZ ignored so the write fails instead."""
        if self.file_bytes is None:
            return
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        limit = self.file_bytes if hard == resource.RLIM_INFINITY else min(self.file_bytes, hard)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
        try:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        except ValueError:  # not the main thread: the default would kill the worker, so say so
            raise RuntimeError("file_bytes needs SIGXFSZ ignored, which only the main thread can do") from None

    def refuse(self, running: int) -> Optional[str]:
        """Why one more module (with `running` already reserved) does not fit; None when it does."""
        if self.memory_total is None or self.memory_limit is None:
            return None
        if (running + 1) * self.memory_limit <= self.memory_total:
            return None
        return (f"{running} modules already reserve {running * self.memory_limit} bytes of linear memory "
                f"(memory_limit {self.memory_limit} each); one more would pass memory_total {self.memory_total}: "
                f"refused (raise the runtime's memory_total or lower memory_limit)")
