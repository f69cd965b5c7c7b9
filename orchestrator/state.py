"""What every part of the orchestrator shares: its working set (runtimes, modules, the store),
its outgoing messages and refusals, lookups, and the REST snapshot's change marks.

`State` declares the attributes `Orchestrator.__init__`/`_load` (core.py) set; the parts are
mixins over it, each in its own file: placement.py (module create, placement, queue, delete),
liveness.py (registration, presence, keepalives and their expiry), control.py (module control
messages). core.py composes them and routes messages and time.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable

import orjson

from common.wire import QUOTE_BYTES, ProtocolError, Topics, envelope, one_line, quote, skeleton
from orchestrator.model import DEAD, NOT_DEAD, RUNTIME, Mod, Node
from orchestrator.presence import Presence
from orchestrator.scheduler import Scheduler
from orchestrator.store import Store

if TYPE_CHECKING:
    from orchestrator.campaigns import Campaigns
    from orchestrator.deployments import Deployments
    from orchestrator.guard import Guard
    from orchestrator.reads import Snapshots

log = logging.getLogger("orch")

Publish = Callable[[str, bytes], None]


class Refused(Exception):
    """A request the orchestrator will not carry out; the text says why, `details` go into the reply."""

    def __init__(self, text: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(text)
        self.details = details or {}



class State:
    """The orchestrator's working set and the helpers every part uses (see the module docstring)."""

    store: Store
    publish: Publish
    topics: Topics
    ka_interval: float
    delete_timeout: float
    clock: Callable[[], float]
    wallclock: Callable[[], float]
    nodes: dict[str, Node]
    mods: dict[str, Mod]
    scheduler: Scheduler
    presence: Presence
    campaigns: "Campaigns"  # benchmark campaigns (orchestrator/campaigns/)
    deployments: "Deployments"  # declared deployments (orchestrator/deployments.py)
    guard: "Guard"  # who may speak for which identity (guard.py)
    snapshots: "Snapshots"  # the REST reads' view (reads.py)
    seq: int  # the last module sequence number given
    _out: list[tuple[str, bytes]]  # messages to publish after the decision's commit
    _strangers: dict[str, int]  # keepalives seen from runtimes not registered
    _deleting: dict[str, float]  # module uuid (state E) -> clock time its exited is overdue
    _prefix: str
    _dirty: set[str] | None  # nodes whose REST entry changed since the last snapshot (None: all)
    _log_topics: tuple[str, str]
    _quiet: dict[str, int]  # dead runtime uuid -> keepalives refused without a report since the last summary
    _quiet_since: float
    quiet_refusals: int  # keepalives of dead runtimes refused without a report, since the start
    _received: float  # when the message being handled reached this process (handle's `received`)
    _watch: list[tuple[float, str]]  # (deadline, uuid): runtimes expired by missed keepalives (see tick)
    _watched: set[str]
    grace_from: float  # no keepalive deadline falls before this + 3 intervals (see `grace`)
    _by_name: dict[str, set[str]]  # runtime name -> uuids of the runtimes registered under it
    _loaded_at: float
    _unconfirmed: dict[str, set[str]]  # runtime uuid -> its running modules no keepalive listed yet

    # -- what the REST snapshot must rebuild (reads.py) -----------------------------------
    def _changed(self, rt: Node) -> None:
        """`rt`'s registration, state, modules or queue changed: re-key it for placement, rebuild its REST entry."""
        self.scheduler.touch(rt)
        if self._dirty is not None:
            self._dirty.add(rt.uuid)

    def take_dirty(self) -> set[str] | None:
        """The nodes changed since the last call (None: every one); the caller is the snapshot builder."""
        dirty, self._dirty = self._dirty, set()
        return dirty


    def report(self, description: str, topic: str, payload: bytes | None) -> None:
        """Publish an error on proc/log with the offending data."""
        data: Any = None
        if payload is not None:
            try:
                data = orjson.loads(payload)
                if len(payload) > QUOTE_BYTES:  # a large one: which modules it was about, 200 bytes of it
                    data = skeleton(data, payload)
            except orjson.JSONDecodeError:
                data = quote(payload)
        description = one_line(description)
        log.error("%s (topic %s)", description, topic)
        msg = envelope("error", {"description": description, "topic": topic, "data": data}, type="resp")
        try:
            body = orjson.dumps(msg)
        except TypeError:
            # Regression (chaos fuzz, control_orch): JSON nested ~1024 deep parses but cannot be written
            # back inside the envelope; the TypeError escaped into paho's thread and the orchestrator
            # stopped hearing MQTT. Quote such data as text.
            msg["data"]["data"] = quote(payload or b"")
            body = orjson.dumps(msg)
        for topic in self._log_topics:
            self._out.append((topic, body))

    def flush(self) -> None:
        out, self._out = self._out, []
        for topic, payload in out:
            self.publish(topic, payload)

    def _module_dead(self, m: Mod, exit_status: Any) -> None:
        if m.parent and self._dirty is not None:
            self._dirty.add(m.parent)
        m.status = DEAD
        del self.mods[m.uuid]
        self._deleting.pop(m.uuid, None)
        self.store.set_exit(m.uuid, DEAD, exit_status, self.wallclock())
        self.deployments.on_dead(m.uuid, exit_status)

    def resolve_runtime(self, q: str) -> Node | None:
        """A runtime by uuid (any state), then by name, then by uuid suffix (alive ones)."""
        if not q:
            return None  # every uuid ends with ""
        n = self.nodes.get(q)
        if n is not None and n.kind == RUNTIME:
            return n
        named = [self.nodes[u] for u in self._by_name.get(q, ())]
        named = [n for n in named if n.kind == RUNTIME and n.alive and n.name == q]
        if named:
            return min(named, key=lambda n: n.order)  # the first registered, as a scan in order finds it
        for n in self.nodes.values():  # a uuid suffix: a scan (operators type those; scripts send uuids or names)
            if n.kind == RUNTIME and n.alive and n.uuid.endswith(q):
                return n
        return None

    def resolve_module(self, q: str) -> Mod | None:
        """A module that is not dead, by uuid, then name (newest), then uuid suffix."""
        if not q:
            return None  # every uuid ends with ""
        m = self.mods.get(q)
        if m is not None:
            return m
        row = self.store.module_by_name(q, NOT_DEAD)
        if row is not None:
            return self.mods.get(row["uuid"])
        for m in self.mods.values():
            if m.uuid.endswith(q):
                return m
        return None

