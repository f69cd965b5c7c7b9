"""The orchestrator's memory (issue #26 item 3; where it goes: docs/performance.md,
"Fleet, issue #26 items 2, 3 and 5").

glibc gives every thread that allocates its own malloc arena (up to 8 per CPU) and keeps what is
freed in each for reuse. The orchestrator's REST threads build large short-lived answers (a full
list of 10,000 runtimes is ~10k dicts and a 3.7 MB JSON body), so every busy HTTP thread left its
own arena holding the last one's worth. Two arenas (the decision thread and paho share one with
the HTTP threads) keep the same work in less memory: `--quick` of bench/fleet.py, peak RSS 62 ->
51 MB in one session; no slower within the noise of the machine.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import logging

ARENA_MAX = 2
M_ARENA_MAX = -8  # glibc's mallopt parameter

log = logging.getLogger("orch")


def limit_malloc_arenas(n: int = ARENA_MAX) -> bool:
    """Call before any thread starts. False (and nothing done) where the C library is not glibc."""
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    ok = bool(mallopt(M_ARENA_MAX, n))
    log.debug("malloc arenas limited to %d: %s", n, ok)
    return ok
