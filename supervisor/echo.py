"""MQTT 5's `no_local`, emulated for a broker spoken to in MQTT 3.1.1 (issue #26 item 4).

MQTT 3.1.1 has no `no_local`: a broker sends a client its own publishes back on every topic it is
subscribed to (a node's channels, its control and registration topics). The link remembers what it
published (topic and a hash of the payload, for TTL seconds) and drops the first message that comes
back with the same topic and payload: the node never hears itself, as with MQTT 5. A message of
another client with exactly the same topic and payload within that window, while one of ours is
still on its way back, is dropped instead of ours (ours then arrives and is delivered): the count is
right, the sender may be the wrong one. Costs one hash per message each way, on 3.1.1 brokers only.
"""
from __future__ import annotations

import collections
import time

TTL = 10.0  # seconds a publish of ours is waited for (a broker returns it in milliseconds)
MAX = 200_000  # remembered publishes at most (a flood on topics we do not read: the oldest go first)


class EchoFilter:
    def __init__(self) -> None:
        self._count: dict[tuple[str, int], int] = {}
        self._order: collections.deque[tuple[float, tuple[str, int]]] = collections.deque()

    def sent(self, topic: str, payload: bytes) -> None:
        key = (topic, hash(payload))
        self._count[key] = self._count.get(key, 0) + 1
        self._order.append((time.monotonic(), key))
        if len(self._order) > MAX:
            self._forget(self._order.popleft()[1])

    def is_echo(self, topic: str, payload: bytes) -> bool:
        """True (and forgotten) when this is one of ours coming back."""
        key = (topic, hash(payload))
        if key not in self._count:
            return False
        self._forget(key)
        return True

    def expire(self) -> None:
        cut = time.monotonic() - TTL
        while self._order and self._order[0][0] < cut:
            self._forget(self._order.popleft()[1])

    def _forget(self, key: tuple[str, int]) -> None:
        n = self._count.get(key, 0) - 1
        if n > 0:
            self._count[key] = n
        else:
            self._count.pop(key, None)
