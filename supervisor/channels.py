"""The node's channel table: which module channel reads or writes which MQTT topic.

Pure bookkeeping (no I/O), so it is unit-tested directly. Keys: a module is `(slot, index)` (worker
slot, module index), a channel is `(slot, index, fd)`. The table answers the three hot questions:
- a broker message on topic T: which reading channels match (`readers(T)`);
- a publish from channel C: its topic/QoS (`writer(C)`) and the loopback targets: every matching
  reading channel except those of C's own module (`loopback(C, T)`; the seed wrongly also spared
  other modules of the same runtime); `route(C)` is both in one answer, cached per writer;
- subscriptions: a filter is subscribed once however many channels read it (`open` returns the
  filter to subscribe, `close` the one to unsubscribe when its last reader goes).
Matching results and routes are cached (per topic, per writer) and dropped on every open/close.
"""
from __future__ import annotations

from dataclasses import dataclass

from common.topics import FLAG_READ, FLAG_WRITE, ChannelError, has_wildcard, matches, qos_of

ModuleKey = tuple[int, int]
ChannelKey = tuple[int, int, int]
Route = tuple[str, int, tuple[ChannelKey, ...]]  # a writer's topic, QoS and loopback receivers


@dataclass(frozen=True)
class Channel:
    slot: int
    index: int
    fd: int
    flags: int
    topic: str  # the MQTT topic (after rewriting)

    @property
    def key(self) -> ChannelKey:
        return (self.slot, self.index, self.fd)

    @property
    def module(self) -> ModuleKey:
        return (self.slot, self.index)

    @property
    def qos(self) -> int:
        return qos_of(self.flags)


@dataclass
class SubscriptionChange:
    """What the MQTT side must do after an open/close: subscribe (topic, qos) or unsubscribe topic."""

    subscribe: tuple[str, int] | None = None
    unsubscribe: str | None = None


class ChannelTable:
    def __init__(self) -> None:
        self.channels: dict[ChannelKey, Channel] = {}
        self._by_module: dict[ModuleKey, set[int]] = {}
        self._readers_by_filter: dict[str, dict[ChannelKey, Channel]] = {}
        self._sub_qos: dict[str, int] = {}
        self._cache: dict[str, list[Channel]] = {}
        self._routes: dict[ChannelKey, Route] = {}

    def __len__(self) -> int:
        return len(self.channels)

    # ------------------------------------------------------------------ open / close

    def open(self, slot: int, index: int, fd: int, flags: int, topic: str) -> SubscriptionChange:
        """Add a channel (topic already rewritten). Reopening an fd replaces it. ChannelError if refused."""
        if not flags & (FLAG_READ | FLAG_WRITE):
            raise ChannelError(f"channel {fd} on {topic!r}: flags {flags:#06b} allow neither read nor write")
        if flags & FLAG_WRITE and has_wildcard(topic):
            raise ChannelError(f"channel {fd}: a writable channel cannot have a wildcard topic ({topic!r})")
        change = SubscriptionChange()
        if (slot, index, fd) in self.channels:
            change = self.close(slot, index, fd)
        ch = Channel(slot, index, fd, flags, topic)
        self.channels[ch.key] = ch
        self._by_module.setdefault(ch.module, set()).add(fd)
        if flags & FLAG_READ:
            readers = self._readers_by_filter.setdefault(topic, {})
            readers[ch.key] = ch
            qos = max(c.qos for c in readers.values())
            if self._sub_qos.get(topic, -1) < qos:  # new filter, or a reader wants a higher QoS
                self._sub_qos[topic] = qos
                if change.unsubscribe == topic:
                    change.unsubscribe = None
                change.subscribe = (topic, qos)
            elif change.unsubscribe == topic:
                change.unsubscribe = None
        self._cache.clear()
        self._routes.clear()
        return change

    def close(self, slot: int, index: int, fd: int) -> SubscriptionChange:
        """Remove a channel; the change says whether its filter lost its last reader."""
        ch = self.channels.pop((slot, index, fd), None)
        if ch is None:
            raise ChannelError(f"module {index} of worker {slot} has no channel {fd}")
        fds = self._by_module.get(ch.module)
        if fds is not None:
            fds.discard(fd)
            if not fds:
                del self._by_module[ch.module]
        change = SubscriptionChange()
        if ch.flags & FLAG_READ:
            readers = self._readers_by_filter[ch.topic]
            del readers[ch.key]
            if not readers:
                del self._readers_by_filter[ch.topic]
                del self._sub_qos[ch.topic]
                change.unsubscribe = ch.topic
        self._cache.clear()
        self._routes.clear()
        return change

    def close_module(self, slot: int, index: int) -> list[SubscriptionChange]:
        return [self.close(slot, index, fd) for fd in sorted(self._by_module.get((slot, index), ()))]

    def close_worker(self, slot: int) -> list[SubscriptionChange]:
        out: list[SubscriptionChange] = []
        for s, i in [m for m in self._by_module if m[0] == slot]:
            out.extend(self.close_module(s, i))
        return out

    # ------------------------------------------------------------------ lookups

    def writer(self, slot: int, index: int, fd: int) -> Channel:
        ch = self.channels.get((slot, index, fd))
        if ch is None:
            raise ChannelError(f"publish on channel {fd} of module {index}: no such channel is open")
        if not ch.flags & FLAG_WRITE:
            raise ChannelError(f"publish on channel {fd} ({ch.topic!r}) of module {index}: the channel is read-only")
        return ch

    def readers(self, topic: str) -> list[Channel]:
        """Every reading channel whose filter matches `topic`."""
        hit = self._cache.get(topic)
        if hit is None:
            hit = []
            for filt, readers in self._readers_by_filter.items():
                if matches(filt, topic):
                    hit.extend(readers.values())
            if len(self._cache) > 4096:
                self._cache.clear()
            self._cache[topic] = hit
        return hit

    def route(self, slot: int, index: int, fd: int) -> Route:
        """The hot question of a publish from channel (slot, index, fd): `writer()` and `loopback()` in
        one cached answer (topic, QoS, receiver keys). ChannelError as `writer()`."""
        hit = self._routes.get((slot, index, fd))
        if hit is None:
            ch = self.writer(slot, index, fd)
            hit = (ch.topic, ch.qos, tuple(c.key for c in self.loopback(ch)))
            self._routes[ch.key] = hit
        return hit

    def loopback(self, publisher: Channel, topic: str | None = None) -> list[Channel]:
        """Local receivers of a publish: matching readers, except the publishing module's own channels."""
        mod = publisher.module
        return [c for c in self.readers(topic or publisher.topic) if c.module != mod]

    def subscriptions(self) -> dict[str, int]:
        """filter -> QoS of every topic that must be subscribed now (for resubscribe after reconnect)."""
        return dict(self._sub_qos)

    def module_channels(self, slot: int, index: int) -> list[Channel]:
        return [self.channels[(slot, index, fd)] for fd in sorted(self._by_module.get((slot, index), ()))]
