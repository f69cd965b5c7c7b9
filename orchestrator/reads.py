"""Reads that never wait for decisions (issue #26): an immutable snapshot of the runtime entries,
published by the decision thread, and read-only SQLite connections for everything else.

The decision thread owns the `Orchestrator`. After a batch of messages (and before it publishes
what the batch decided, so a client that saw a reply finds its effect in the REST answers) it
calls `Snapshots.publish()`: the entries of the runtimes and managers that changed since the last
snapshot (the orchestrator marks them, `Orchestrator.take_dirty`) are rebuilt, the others are
shared with the previous snapshot (copy-on-write of one dict of references: ~0.1 ms at 10k
runtimes). A snapshot is never changed after it is published, so HTTP threads read it without
any lock. Lists of it are cached per snapshot and filter, so a page of 100 costs a slice.

`seconds_since_keepalive` is the one live figure: it is computed at read time from the node's
`last_seen` (a float the decision thread rebinds; reading it needs no lock).
"""
from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from orchestrator.model import ALIVE, RUNTIME, Node

if TYPE_CHECKING:
    from orchestrator.core import Orchestrator

QUEUED_IN_ENTRY = 100  # a snapshot entry lists this many queued modules; `?queued=N` beyond reads the store


def runtime_entry(o: "Orchestrator", n: Node, queued_shown: int = QUEUED_IN_ENTRY) -> dict[str, Any]:
    """A runtime (or manager) with its children and the head of its queue, without the live
    `seconds_since_keepalive` (`Snapshot.entry` adds it)."""
    children = []
    for u in sorted(n.children, key=lambda u: o.mods[u].seq):
        d = o.mods[u].short()
        st = n.stats.get(u)
        if st:
            d.update({k: st[k] for k in ("active", "cpu_usage_percent", "mem_usage") if k in st})
        children.append(d)
    queued = []
    for i, u in enumerate(n.queue):
        if i >= queued_shown:
            break
        queued.append(o.mods[u].short())
    mgr = o.nodes.get(n.parent) if n.parent else None
    return {
        "type": n.kind, "uuid": n.uuid, "name": n.name, "status": n.status, "parent": n.parent,
        "manager": mgr.name if mgr else None, "runtime_type": n.runtime_type, "max_nmodules": n.max_nmodules,
        "apis": sorted(n.apis), "platform": n.info.get("platform"), "metadata": n.info.get("metadata"),
        "ka_interval_sec": n.ka_interval, "sends_keepalives": n.sends_keepalives,
        "children": children, "queued": queued, "nqueued": len(n.queue), "nkilled": len(n.killed),
    }


class Snapshot:
    """The runtime and manager entries as of one point of the decision stream (read-only)."""

    def __init__(self, version: int, entries: dict[str, dict[str, Any]], nodes: dict[str, Node],
                 clock: Any) -> None:
        self.version = version
        self.entries = entries  # uuid -> entry, in first-registration order; never mutated once published
        self._nodes = nodes  # uuid -> Node (for last_seen only)
        self._clock = clock
        self._lists: dict[tuple[frozenset[str], frozenset[str]], list[str]] = {}
        self._names: dict[str, str] | None = None
        self.cache: dict[Any, Any] = {}  # per-snapshot results of other readers (the dashboard)
        self._lock = threading.Lock()

    def entry(self, uuid: str) -> dict[str, Any]:
        e = self.entries[uuid]
        n = self._nodes.get(uuid)
        since = round(max(0.0, self._clock() - n.last_seen), 3) if n is not None else None
        return {**e, "seconds_since_keepalive": since}

    def uuids(self, kinds: frozenset[str], statuses: frozenset[str]) -> list[str]:
        """The uuids of entries of these kinds and states, in registration order (cached)."""
        key = (kinds, statuses)
        got = self._lists.get(key)
        if got is None:
            got = [u for u, e in self.entries.items() if e["type"] in kinds and e["status"] in statuses]
            with self._lock:
                if len(self._lists) > 64:
                    self._lists.clear()
                self._lists[key] = got
        return got

    def resolve_runtime(self, q: str) -> str | None:
        """As `Orchestrator.resolve_runtime`: full uuid (any state), then name, then uuid suffix (alive)."""
        if not q:
            return None
        e = self.entries.get(q)
        if e is not None and e["type"] == RUNTIME:
            return q
        if self._names is None:
            names: dict[str, str] = {}
            for u in self.uuids(frozenset({RUNTIME}), frozenset({ALIVE})):
                names.setdefault(self.entries[u]["name"], u)
            self._names = names
        named = self._names.get(q)
        if named is not None:
            return named
        for u in self.uuids(frozenset({RUNTIME}), frozenset({ALIVE})):
            if u.endswith(q):
                return u
        return None


class Snapshots:
    """Builds snapshots of one orchestrator (call `publish` on the thread that runs its decisions)."""

    def __init__(self, o: "Orchestrator") -> None:
        self.o = o
        self._entries: dict[str, dict[str, Any]] = {}
        self._nodes: dict[str, Node] = {}
        self.current: Snapshot | None = None
        self._version = 0

    def publish(self) -> Snapshot:
        o = self.o
        dirty = o.take_dirty()
        if dirty is None:  # everything (the state was reloaded)
            entries = {u: runtime_entry(o, n) for u, n in o.nodes.items()}
            nodes = dict(o.nodes)
        elif dirty or self.current is None:
            entries, nodes = dict(self._entries), dict(self._nodes)
            for u in dirty:
                n = o.nodes.get(u)
                if n is None:
                    entries.pop(u, None)
                    nodes.pop(u, None)
                else:
                    entries[u] = runtime_entry(o, n)
                    nodes[u] = n
        else:
            return self.current
        self._entries, self._nodes = entries, nodes
        self._version += 1
        self.current = Snapshot(self._version, entries, nodes, o.clock)
        return self.current
