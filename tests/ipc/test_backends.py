"""The kernel queues behind the doorbells: a zero-timeout receive is a non-blocking one (posix_ipc
makes timeout 0 a timed receive, ~45 us on an empty queue), and the queue blocks again after it."""
from __future__ import annotations

import os
import threading
import time

from ipc.backends import PosixBackend


def test_posix_receive_zero_timeout_does_not_wait_and_leaves_the_queue_blocking() -> None:
    be = PosixBackend()
    name = f"/sl.{os.getpid()}-test-backends"
    q = be.create_queue(name, 4, 64)
    try:
        assert q.receive(0) is None  # empty: returns at once
        assert q.send(b"a") and q.receive(0) == b"a"
        # still a blocking queue afterwards: a receive with a timeout waits for a late sender
        threading.Timer(0.2, lambda: q.send(b"late")).start()
        t0 = time.monotonic()
        assert q.receive(5.0) == b"late"
        assert time.monotonic() - t0 >= 0.15
        t0 = time.monotonic()
        assert q.receive(0.2) is None and time.monotonic() - t0 >= 0.15
    finally:
        q.close()
        be.unlink_queue(name)
