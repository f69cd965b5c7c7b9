"""Log a failure that repeats (a broker that is down, retried every 2 s) without flooding the log:
one line when it starts or its reason changes, then one summary a minute while it lasts, and one
line when it is over.
"""
from __future__ import annotations

import logging
import time
from typing import Callable

SUMMARY_EVERY = 60.0  # s


class OutageLog:
    """`failed(why)` on every failed attempt, `recovered()` once it works again."""

    def __init__(self, log: logging.Logger, every: float = SUMMARY_EVERY,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.log = log
        self.every = every
        self.clock = clock
        self.why: str | None = None
        self.since = 0.0
        self.attempts = 0
        self._next_summary = 0.0

    def failed(self, why: str, detail: str = "") -> None:
        """A failed attempt; `detail` (e.g. the next retry's delay) is said only on a change."""
        now = self.clock()
        if self.why is None:
            self.since, self.attempts = now, 0
        self.attempts += 1
        if why != self.why:
            self.why = why
            self._next_summary = now + self.every
            self.log.error("%s%s (repeats are summed up once a minute)", why, f"; {detail}" if detail else "")
        elif now >= self._next_summary:
            self._next_summary = now + self.every
            self.log.error("%s: still failing, %d attempts in %.0f s", why, self.attempts, now - self.since)

    def recovered(self) -> str:
        """End of the outage: a note for the success line (" after N failed attempts in S s"), or ""."""
        if self.why is None:
            return ""
        note = f" after {self.attempts} failed attempt{'s' if self.attempts != 1 else ''} in {self.clock() - self.since:.0f} s"
        self.why = None
        return note
