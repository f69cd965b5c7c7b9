"""SIGTERM and SIGINT end a foreground service (orchestrator, collector): a flag the handler sets, a wait on it."""
from __future__ import annotations

import signal
import threading
from typing import Callable


def stop_event() -> threading.Event:
    """An Event that SIGTERM and SIGINT set; install it before the service starts, so no signal is missed."""
    done = threading.Event()

    def _stop(signum: int, frame: object) -> None:
        done.set()  # no logging in a signal handler

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    return done


def serve_until(done: threading.Event, stop: Callable[[], None]) -> int:
    """Wait for `done` (waking each second), then `stop()` the service, also on an exception; exit status 0."""
    try:
        while not done.wait(1.0):
            pass
    finally:
        stop()
    return 0
