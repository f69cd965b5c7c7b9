"""A module's stdout/stderr on its way to `{realm}/proc/stdio/{uuid}`: one way on every engine.

Engines hand output over in whatever pieces they get it: wasmtime calls back once per WASI
`fd_write` iovec (so one `printf("%d\\n")` arrives as the digits and then the newline), wasmer
pumps a pipe in reads of any size. Forwarded as is, a line could be cut in two messages on one
engine and not on another. `LineBuffer` makes it one way: complete lines go out at once (all
complete lines of a write in one message), a partial line waits for its end at most `delay`
seconds (then it goes out as it is: a prompt without a newline still shows), and nothing waits
beyond `max_bytes` or the module's end (`flush()` before the exited message).

Python 3.10 compatible (the wasmer runtime runs this under 3.10).
"""
from __future__ import annotations

import threading
from typing import Callable, Optional

FLUSH_DELAY = 0.05  # s: the longest a partial line waits for its newline
MAX_PENDING = 8192  # bytes: a longer partial line goes out without waiting


class LineBuffer:
    """Line-buffered writer to `emit`, with a bounded flush delay for partial lines. Thread-safe."""

    def __init__(self, emit: Callable[[bytes], None], delay: float = FLUSH_DELAY, max_bytes: int = MAX_PENDING) -> None:
        self._emit = emit
        self._delay = delay
        self._max = max_bytes
        self._lock = threading.Lock()
        self._pending = b""
        self._timer: Optional[threading.Timer] = None
        self._closed = False

    def write(self, data: bytes) -> None:
        if not data:
            return
        out = b""
        with self._lock:
            buf = self._pending + bytes(data)
            cut = buf.rfind(b"\n") + 1
            if len(buf) - cut >= self._max or self._closed:
                cut = len(buf)
            out, self._pending = buf[:cut], buf[cut:]
            if self._pending and self._timer is None:
                self._timer = threading.Timer(self._delay, self._on_timer)
                self._timer.daemon = True
                self._timer.start()
            # emitting under the lock keeps the order of this write and the timer's flush
            if out:
                self._emit(out)

    def _on_timer(self) -> None:
        with self._lock:
            self._timer = None
            out, self._pending = self._pending, b""
            if out:
                self._emit(out)

    def flush(self) -> None:
        """Send what is pending now (the module ended); later writes go out unbuffered."""
        with self._lock:
            timer, self._timer = self._timer, None
            out, self._pending = self._pending, b""
            self._closed = True
            if out:
                self._emit(out)
        if timer is not None:
            timer.cancel()
