"""Per-worker backpressure: the messages that wait for room in one worker's input ring (a leaf).

The supervisor's loop never waits for a worker. A message for a worker whose ring is full (the
worker is busy, stopped, or does not read its input) is appended to that worker's `Backlog` and
written, in order, when the ring has room: the router tries again at every wake-up of the loop
(one C call per waiting worker), after each drain of that worker (a worker that talks is running),
and on a short timer that bounds the loop's sleep meanwhile (`retry_in`, 1 ms doubling to 20 ms
while the ring stays full). Every later message for that worker queues behind, so the order per worker
is the order of arrival. The other workers, MQTT and the timers go on meanwhile.

Bound: `LIMIT` bytes of payload per worker (64 x a default ring). Past it, channel data for that
worker is refused (counted in `dropped`, one error line per episode): a worker that has left
64 MiB unread is not keeping up and the node must not run out of memory for it. Control messages
(create, delete, stop) are small and few (max_nmodules bounds them) and always queue.

One episode = from the first message that had to wait to the moment the backlog is empty again:
a `mgr` warning when it starts, an info line with its length and size when it ends (at most one
such pair every WARN_EVERY seconds per worker, the others at debug level); `episodes`,
`dropped` and the present size go into the runtime's keepalive (`backpressure`) and the node's
systemd STATUS.
"""
from __future__ import annotations

from collections import deque

LIMIT = 64 << 20  # bytes of payload held for one worker; past it its channel data is refused
RETRY_FIRST = 0.001  # seconds before trying a full ring again; doubles while it stays full
RETRY_MAX = 0.02
WARN_EVERY = 10.0  # seconds: episodes closer together than this (a burst that fills the ring again
                   # and again) are counted, and logged at debug level after the first


class Backlog:
    __slots__ = ("held", "bytes", "since", "episodes", "dropped", "peak", "count", "delay", "retry_at", "said_dropped",
                 "warned_at", "loud")

    def __init__(self) -> None:
        self.held: deque[tuple[int, int, bytes]] = deque()  # (h1, h2, payload) in arrival order
        self.bytes = 0
        self.since: float | None = None  # monotonic start of the present episode
        self.episodes = 0
        self.dropped = 0  # channel messages refused over LIMIT (since the node started)
        self.peak = 0  # most bytes held in the present episode
        self.count = 0  # messages held in the present episode
        self.delay = RETRY_FIRST
        self.retry_at = 0.0
        self.said_dropped = False  # the error line of this episode's refusals was logged
        self.warned_at = -WARN_EVERY  # when the last episode's warning was logged
        self.loud = False  # this episode was logged at warning level (its end at info level)

    def __bool__(self) -> bool:
        return bool(self.held)

    def __len__(self) -> int:
        return len(self.held)

    def room_for(self, payload: bytes) -> bool:
        return self.bytes + len(payload) <= LIMIT

    def hold(self, h1: int, h2: int, payload: bytes, now: float) -> bool:
        """Append one message; True when it starts an episode."""
        self.held.append((h1, h2, payload))
        self.count += 1
        self.bytes += len(payload)
        self.peak = max(self.peak, self.bytes)
        if self.since is not None:
            return False
        self.since, self.episodes, self.said_dropped = now, self.episodes + 1, False
        self.loud = now - self.warned_at >= WARN_EVERY
        if self.loud:
            self.warned_at = now
        self.delay, self.retry_at = RETRY_FIRST, now + RETRY_FIRST
        return True

    def head(self) -> tuple[int, int, bytes]:
        return self.held[0]

    def pop(self) -> None:
        _, _, payload = self.held.popleft()
        self.bytes -= len(payload)

    def retried(self, now: float, progress: bool) -> None:
        """After a try that left messages waiting: sooner while the worker reads, later while it does not."""
        self.delay = RETRY_FIRST if progress else min(RETRY_MAX, self.delay * 2)
        self.retry_at = now + self.delay

    def end(self) -> tuple[float, int, int]:
        """The backlog is empty: the episode is over; returns (its start, messages held, peak bytes)."""
        out = (self.since or 0.0, self.count, self.peak)
        self.since, self.count, self.peak = None, 0, 0
        return out

    def clear(self) -> int:
        """The worker is gone (its messages went with it, like those in its ring); returns how many."""
        n = len(self.held)
        self.held.clear()
        self.bytes = 0
        self.since, self.count, self.peak = None, 0, 0
        return n

    def report(self) -> dict[str, int]:
        """For the keepalive: {episodes, waiting, waiting_bytes, dropped}."""
        return {"episodes": self.episodes, "waiting": len(self.held), "waiting_bytes": self.bytes, "dropped": self.dropped}
