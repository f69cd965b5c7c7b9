"""Messages the broker dropped, noticed and logged (issue #26 item 2).

mosquitto counts what it drops (a client's queue full: `max_queued_messages` / `max_queued_bytes`,
docs/orchestrator.md "Broker settings") in `$SYS/broker/publish/messages/dropped`, published every
`sys_interval`. The counter is the broker's, for all its clients; the orchestrator subscribes to it
and logs a `WRN` when it grows: at most one line per LOG_EVERY seconds, with the count since the
last line and since it connected. A broker that does not publish it (another broker, `sys_interval
0`, an ACL without `$SYS` read) leaves the count at 0 and says nothing; `/api/status/` then shows
`broker_drops_known: false`. Fed from paho's thread: cheap, one lock.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable

TOPIC = "$SYS/broker/publish/messages/dropped"
LOG_EVERY = 10.0  # seconds between two lines while drops keep coming

log = logging.getLogger("mq")


class DropWatch:
    """`update(payload)` for every message on TOPIC; `reset()` on every (re)connection."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._lock = threading.Lock()
        self._last: int | None = None  # the broker's counter at its last message (None: none since we connected)
        self.total = 0  # drops seen since the orchestrator started
        self.known = False  # the broker publishes the counter
        self._unlogged = 0
        self._logged_at = float("-inf")

    def reset(self) -> None:
        """A new connection (maybe to a restarted broker, whose counter starts again from 0)."""
        with self._lock:
            self._last = None

    def update(self, payload: bytes) -> None:
        try:
            value = int(payload)
        except ValueError:
            return
        with self._lock:
            self.known = True
            last, self._last = self._last, value
            if last is None:
                if value:
                    log.info("the broker has dropped %d messages since it started (before this connection;"
                             " for all its clients)", value)
                return
            new = value - last if value >= last else value  # lower: the broker restarted
            if new <= 0:
                return
            self.total += new
            self._unlogged += new
            now = self.clock()
            if now - self._logged_at < LOG_EVERY:
                return
            log.warning("the broker dropped %d messages (%d since the orchestrator started; for all its clients,"
                        " the orchestrator's among them): it drops what overflows a client's queue; raise its"
                        " max_queued_messages (docs/orchestrator.md, \"Broker settings\")", self._unlogged, self.total)
            self._unlogged, self._logged_at = 0, now
