"""One preopened directory entry of a module: `HOST`, preopened at its own path, or `HOST::GUEST`
(wasmtime's `--dir` syntax). Shared by the in-process engines (runtimes/), the benchmark engines
(benchmarking/) and the module file checks (runtimes/files.py). Python 3.10 compatible."""
from __future__ import annotations

from typing import Tuple

PREOPEN_SEP = "::"  # HOST::GUEST, as wasmtime's `--dir`


def preopen_pair(entry: str) -> Tuple[str, str]:
    """(host dir, guest path) of one preopen entry: `HOST::GUEST`, or `HOST` preopened at its own path."""
    host, sep, guest = entry.partition(PREOPEN_SEP)
    return (host, guest) if sep else (entry, entry)
