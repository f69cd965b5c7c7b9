"""The orchestrator's objects: states (docs/protocol.md, "Orchestrator rules") and the in-memory records.

Memory holds every manager/runtime (few) and every module that is not dead (the
scheduling working set: alive, exiting, queued, killed). Dead modules live only in
SQLite; the REST API still finds them by full uuid.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

# Module and runtime states of the protocol.
ALIVE = "A"
DEAD = "D"
EXITING = "E"
KILLED = "K"
QUEUED = "Q"
STATES = (ALIVE, DEAD, EXITING, KILLED, QUEUED)
NOT_DEAD = (ALIVE, EXITING, KILLED, QUEUED)

MANAGER = "manager"
RUNTIME = "runtime"

MISSED_KEEPALIVES = 3  # ours: a runtime is dead after this many silent intervals


@dataclass
class Node:
    """A registered manager or runtime (`kind`)."""

    uuid: str
    kind: str
    name: str
    status: str
    parent: str | None = None  # a runtime's manager uuid
    runtime_type: str = ""
    max_nmodules: int = 0  # 0: no limit
    apis: frozenset[str] = frozenset()  # as registered
    provides: frozenset[str] = frozenset()  # `apis` plus the other name of each (common/apis.py): what placement matches
    info: dict[str, Any] = field(default_factory=dict)  # the registration data, for the REST API
    ka_interval: float = 0.0
    last_seen: float = 0.0
    # scheduling state (runtimes only)
    children: set[str] = field(default_factory=set)  # uuids of modules A or E here
    queue: "OrderedDict[str, None]" = field(default_factory=OrderedDict)  # uuids of modules Q here, FIFO
    killed: set[str] = field(default_factory=set)  # uuids of modules K here (resurrected on re-registration)
    stats: dict[str, Any] = field(default_factory=dict)  # last keepalive's children stats, by module uuid
    last_pick: int = 0  # round-robin stamp: the scheduler prefers the least recently picked
    order: int = 0  # first registration order (the scheduler's last tie-break, as the scan's iteration order)

    @property
    def alive(self) -> bool:
        return self.status == ALIVE

    @property
    def sends_keepalives(self) -> bool:
        """Whether this runtime ever sent a keepalive (the original's runtimes never do: they are
        not expired by missed keepalives). Kept in `info` so that it survives a restart."""
        return bool(self.info.get("keepalives"))

    def expires_at(self) -> float | None:
        """When this runtime is dead by missed keepalives if it stays silent (clock of `last_seen`);
        None for one that is never expired so (no interval, or it never sent a keepalive)."""
        if self.ka_interval > 0 and self.sends_keepalives:
            return self.last_seen + MISSED_KEEPALIVES * self.ka_interval
        return None

    def has_room(self) -> bool:
        return self.max_nmodules <= 0 or len(self.children) < self.max_nmodules

    def load(self) -> int:
        """What the scheduler balances: modules running plus modules waiting here."""
        return len(self.children) + len(self.queue)


@dataclass(slots=True)
class Mod:
    """A module that is not dead; its create data stays in SQLite (100k of these fit easily)."""

    uuid: str
    seq: int
    name: str
    parent: str | None
    status: str
    file: str = ""
    window: int = 0  # ours: its campaign's window (campaigns/hooks.py), 1 for other modules; 0: not looked up yet

    def short(self) -> dict[str, Any]:
        """The REST API's short form (runtime `children` / `queued` entries)."""
        return {"uuid": self.uuid, "name": self.name, "parent": self.parent, "file": self.file, "status": self.status}
