"""Signals as bytes in a pipe (the self-pipe habit): CPython's C-level handler writes each signal's
number into the pipe (`signal.set_wakeup_fd`), the Python handlers do nothing, and the selector
loop reads the numbers and acts. Nothing runs inside a handler, so nothing can deadlock there."""
from __future__ import annotations

import os
import signal
from types import FrameType
from typing import Any, Callable

SignalHandler = Callable[[int, FrameType | None], Any] | int | None


class SignalPipe:
    def __init__(self, signals: tuple[int, ...]) -> None:
        self.signals = signals
        self.read_fd = self.write_fd = -1
        self._old_wakeup = -1
        self._old_handlers: dict[int, SignalHandler] = {}

    def open(self) -> int:
        """Install it; returns the descriptor to watch for reading."""
        self.read_fd, self.write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        os.set_blocking(self.write_fd, False)
        self._old_wakeup = signal.set_wakeup_fd(self.write_fd, warn_on_full_buffer=False)
        for sig in self.signals:
            self._old_handlers[sig] = signal.signal(sig, lambda s, f: None)
        return self.read_fd

    def take(self) -> set[int]:
        """The signals that arrived since the last look (each once)."""
        try:
            return set(os.read(self.read_fd, 512))
        except BlockingIOError:
            return set()

    def fds(self) -> list[int]:
        return [fd for fd in (self.read_fd, self.write_fd) if fd >= 0]

    def close(self) -> None:
        """Restore the previous wakeup fd and handlers (idempotent)."""
        if self.read_fd < 0:
            return
        signal.set_wakeup_fd(self._old_wakeup)
        for sig, handler in self._old_handlers.items():
            signal.signal(sig, handler)
        os.close(self.read_fd)
        os.close(self.write_fd)
        self.read_fd = self.write_fd = -1
