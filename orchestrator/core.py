"""The orchestrator's state machine: every MQTT message of docs/protocol.md goes
through `Orchestrator.handle(topic, payload)`; time goes through `tick(now)`.

It has no I/O of its own besides the store: outgoing messages go to the `publish`
callback *after* the decision's transaction committed (a crash never announces a state
the store does not have). Not thread-safe: the service's decision thread owns it (REST
reads use the snapshots it publishes, reads.py).

Rules (docs/protocol.md, "Orchestrator rules"; ours marked):
- a create whose module uuid is not dead is refused; a registration whose uuid is alive
  under another name (or another manager) is refused; the same name again is a refresh
  (**ours**: a node re-registering after a broker reconnect keeps its modules);
- **ours** (presence.py): online/offline announcements, register requests to nodes whose
  keepalives come for runtimes not known or dead, and no identity alive under two processes;
- `parent` is looked up by uuid, then name, then uuid suffix (alive runtimes only);
  a `create_batch` may name it once as `data.parent` (the original CLI does; a module's
  own `parent` wins); without `parent` the scheduler picks (see scheduler.py), matching
  apis by our names and the original's alike (common/apis.py);
- a runtime with `max_nmodules` modules running queues new ones (FIFO) and starts the
  oldest when one exits; **ours**: a benchmark campaign's cells go out up to the campaign's
  window ahead to a runtime that registered `metadata.queue_ahead` (campaigns.py `ahead`);
- a runtime that is deleted or misses 3 keepalive intervals is dead: running modules
  become killed (K), queued and exiting ones dead; re-registering the same uuid
  resurrects it and re-creates its killed modules in their original order. Only a runtime
  that has sent a keepalive is expired that way: the original's runtimes never send one,
  they stay alive until their delete or their manager's last will;
- a module deleted but never reported `exited` (the original's minimal runtime ignores
  deletes) is marked dead after `delete_timeout` seconds, with a reason saying so;
- a deleted manager deletes its runtimes;
- **ours**: a restarted orchestrator does not know which of the creates it committed last were
  published before it died: a module it has running that a runtime's keepalive (received
  `RECONCILE_AFTER` s or more after the restart: fresh, QoS 0, with children no older than the
  worker's report) does not list is created again on that runtime (a node refuses a create of a
  module it has, so a second copy of a create that did arrive changes nothing).
Every refused request is reported on `{realm}/proc/log` and on `{realm}/proc/log/orchestrator`
(where the original orchestrator reports) with a description and the data.
"""
from __future__ import annotations

import heapq
import logging
import time
from typing import Any, Callable

import orjson

from common.apis import with_aliases
from common.exit_status import exit_status_of
from common.wire import ProtocolError, Topics, decode, envelope, new_uuid, require
from orchestrator.campaigns import ACTIONS as CAMPAIGN_ACTIONS, Campaigns
from orchestrator.model import ALIVE, DEAD, EXITING, KILLED, MANAGER, MISSED_KEEPALIVES, NOT_DEAD, QUEUED, RUNTIME, Mod, Node
from orchestrator.presence import Presence, process_of
from orchestrator.reads import Snapshots
from orchestrator.scheduler import PLAIN, Scheduler, module_kind
from orchestrator.store import Store

log = logging.getLogger("orch")

Publish = Callable[[str, bytes], None]

DELETE_TIMEOUT = 30.0  # seconds a deleted module may stay exiting (E) before it is marked dead
DEATHS_REPORTED = 20  # runtimes found dead in one tick reported one by one; more are one summary report
REFUSALS_SUMMARY = 60.0  # seconds between two summaries of the keepalives refused quietly (dead runtimes)
RECONCILE_AFTER = 5.0  # seconds after a restart before a keepalive's children are trusted to be complete


class Refused(Exception):
    """A request the orchestrator will not carry out; the text says why, `details` go into the reply."""

    def __init__(self, text: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(text)
        self.details = details or {}


def _str_list(d: dict[str, Any], key: str, where: str) -> list[str]:
    v = d.get(key, [])
    if v is None:
        return []
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise ProtocolError(f"{where}: key {key!r} must be a list of strings, got {v!r}")
    return v


class Orchestrator:
    """Registration, keepalive, scheduling, queueing and resurrection over one Store."""

    def __init__(self, store: Store, publish: Publish, *, realm: str = "realm", ka_interval: float = 5.0,
                 delete_timeout: float = DELETE_TIMEOUT,
                 clock: Callable[[], float] = time.monotonic, wallclock: Callable[[], float] = time.time,
                 instance: str | None = None) -> None:
        self.store = store
        self.publish = publish
        self.topics = Topics(realm)
        self.ka_interval = ka_interval
        self.delete_timeout = delete_timeout
        self.clock = clock
        self.wallclock = wallclock
        self.nodes: dict[str, Node] = {}
        self.mods: dict[str, Mod] = {}
        self.scheduler = Scheduler()
        self.presence = Presence(realm, instance=instance, clock=clock, wallclock=wallclock)
        self._out: list[tuple[str, bytes]] = []
        self._strangers: dict[str, int] = {}  # keepalives seen from runtimes not registered
        self._deleting: dict[str, float] = {}  # module uuid (state E) -> clock time its exited is overdue
        self._prefix = f"{realm}/proc/"
        self.campaigns = Campaigns(self)  # benchmark campaigns (orchestrator/campaigns.py)
        self._dirty: set[str] | None = None  # nodes whose REST entry changed since the last snapshot (None: all)
        self.snapshots = Snapshots(self)  # the REST reads' view (reads.py)
        self._log_topics = (self.topics.log, self.topics.orchestrator_log)
        self._quiet: dict[str, int] = {}  # dead runtime uuid -> keepalives refused without a report since the last summary
        self._quiet_since = 0.0
        self.quiet_refusals = 0  # keepalives of dead runtimes refused without a report, since the start
        self._received = 0.0  # when the message being handled reached this process (handle's `received`)
        self._load()

    # -- startup ------------------------------------------------------------------------
    def _reload(self) -> None:
        try:
            self.nodes, self.mods, self._deleting = {}, {}, {}
            self._load()
        except Exception:
            log.exception("cannot reload the state from %s", self.store.path)

    def _load(self) -> None:
        """Rebuild the in-memory working set from the store (orchestrator restart)."""
        now = self.clock()
        self.scheduler.reset()
        self._watch: list[tuple[float, str]] = []  # (deadline, uuid): runtimes expired by missed keepalives (see tick)
        self._watched: set[str] = set()
        self.grace_from = now  # no keepalive deadline falls before this + 3 intervals (see `grace`)
        self._by_name: dict[str, set[str]] = {}  # runtime name -> uuids of the runtimes registered under it
        for n in self.store.load_nodes():
            n.last_seen = now  # a restarted orchestrator gives every runtime a full grace period
            n.provides = with_aliases(n.apis)
            n.order = len(self.nodes)
            self.nodes[n.uuid] = n
            if n.kind == RUNTIME:
                self._by_name.setdefault(n.name, set()).add(n.uuid)
        self.seq = self.store.max_seq()
        self._loaded_at = now
        self._unconfirmed: dict[str, set[str]] = {}  # runtime uuid -> its running modules no keepalive listed yet
        for seq, uuid, name, parent, status, file in self.store.load_live_modules():
            m = Mod(uuid, seq, name, parent, status, file)
            self.mods[uuid] = m
            rt = self.nodes.get(parent) if parent else None
            if rt is None:
                continue
            if status == ALIVE and rt.alive:
                self._unconfirmed.setdefault(rt.uuid, set()).add(uuid)
            if status in (ALIVE, EXITING):
                rt.children.add(uuid)
                if status == EXITING:
                    self._deleting[uuid] = now + self.delete_timeout
            elif status == QUEUED:
                rt.queue[uuid] = None
            elif status == KILLED:
                rt.killed.add(uuid)
        for n in self.nodes.values():
            self.scheduler.touch(n)
            self._watch_runtime(n)
        self._dirty = None  # every REST entry is rebuilt
        log.info("loaded %d managers/runtimes and %d modules not dead from %s", len(self.nodes), len(self.mods), self.store.path)

    # -- entry points -------------------------------------------------------------------
    def handle(self, topic: str, payload: bytes, received: float | None = None) -> None:
        """Handle one MQTT message; refusals go to proc/log, nothing raises. `received`: when the
        message reached this process (clock time; default now): a keepalive counts from then, not
        from when its turn came."""
        self._received = self.clock() if received is None else received
        try:
            with self.store.transaction():
                self._dispatch(topic, payload)
        except (Refused, ProtocolError) as e:
            self._out = [o for o in self._out if o[0] in self._log_topics or "/proc/reg/" in o[0]]
            self.report(str(e), topic, payload)
        except Exception as e:  # a bug (or a full disk) must not stop the orchestrator; say what broke
            log.exception("internal error handling %s", topic)
            self._out.clear()
            self.report(f"internal error: {type(e).__name__}: {e}", topic, payload)
            self._reload()  # the transaction rolled back: memory must not keep what the store lost
        self.flush()

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

    # -- keepalive deadlines ------------------------------------------------------------
    def _deadline(self, rt: Node) -> float:
        return max(rt.last_seen, self.grace_from) + MISSED_KEEPALIVES * rt.ka_interval

    def _watch_runtime(self, rt: Node) -> None:
        """Put a runtime that is expired by missed keepalives on the deadline heap (once)."""
        if rt.uuid not in self._watched and rt.kind == RUNTIME and rt.alive and rt.expires_at() is not None:
            self._watched.add(rt.uuid)
            heapq.heappush(self._watch, (self._deadline(rt), rt.uuid))

    def grace(self, since: float) -> None:
        """Silence before `since` does not count: every runtime gets 3 intervals from then (the
        orchestrator was paused or starved, or was away from the broker, and cannot know)."""
        self.grace_from = max(self.grace_from, since)

    def next_deadline(self) -> float | None:
        """The earliest time a runtime is dead by missed keepalives if none comes before (entries of
        runtimes that sent one since are moved to their new deadline on the way)."""
        while self._watch:
            d, uuid = self._watch[0]
            rt = self.nodes.get(uuid)
            if rt is None or rt.kind != RUNTIME or not rt.alive or rt.expires_at() is None:
                heapq.heappop(self._watch)
                self._watched.discard(uuid)
                continue
            real = self._deadline(rt)
            if real <= d:
                return d
            heapq.heapreplace(self._watch, (real, uuid))
        return None

    def _expired(self, heard_until: float) -> list[Node]:
        """Runtimes whose last keepalive reached us more than 3 intervals before `heard_until`."""
        late: list[Node] = []
        while self._watch and self._watch[0][0] < heard_until:
            _, uuid = heapq.heappop(self._watch)
            rt = self.nodes.get(uuid)
            if rt is None or rt.kind != RUNTIME or not rt.alive or rt.expires_at() is None:
                self._watched.discard(uuid)
                continue
            d = self._deadline(rt)
            if d < heard_until:
                self._watched.discard(uuid)
                late.append(rt)
            else:
                heapq.heappush(self._watch, (d, uuid))
        return late

    def tick(self, now: float | None = None, heard_until: float | None = None) -> None:
        """Mark runtimes dead whose keepalives stopped, and deleted modules whose exited is overdue.

        `heard_until`: every message that reached the broker before that time has been handled
        (the service learns it from a fence it sends itself, docs/orchestrator.md "Keepalive
        expiry"); a runtime is dead when its last keepalive came more than 3 intervals before it,
        never just because its keepalives wait in a queue. Default: `now` (in-process use, tests)."""
        now = self.clock() if now is None else now
        heard = now if heard_until is None else min(now, heard_until)
        late = self._expired(heard)
        overdue = [u for u, t in self._deleting.items() if now >= t]
        if late or overdue:
            with self.store.transaction():
                for u in overdue:
                    self._delete_overdue(u)
                for i, rt in enumerate(late):
                    silent = heard - max(rt.last_seen, self.grace_from)
                    (log.warning if i < DEATHS_REPORTED else log.info)(
                        "runtime %s (%s) missed %d keepalives: dead", rt.name, rt.uuid, MISSED_KEEPALIVES)
                    self._runtime_dead(rt)
                    if i < DEATHS_REPORTED:
                        self.report(f"runtime {rt.name} ({rt.uuid}) sent no keepalive for {silent:.1f} s"
                                    f" ({MISSED_KEEPALIVES} intervals of {rt.ka_interval:g} s): marked dead, its modules killed",
                                    self.topics.keepalive(rt.uuid), None)
                if len(late) > DEATHS_REPORTED:
                    self.report(f"{len(late) - DEATHS_REPORTED} more runtimes sent no keepalive for"
                                f" {MISSED_KEEPALIVES} intervals: marked dead, their modules killed (reported one by one"
                                f" up to {DEATHS_REPORTED} per check; the log has every one)", self.topics.keepalive("+"), None)
        if self._quiet and now - self._quiet_since >= REFUSALS_SUMMARY:
            n, k = sum(self._quiet.values()), len(self._quiet)
            self._quiet.clear()
            self.report(f"{n} keepalives from {k} dead runtimes refused in the last {now - self._quiet_since:.0f} s"
                        " (each runtime's node was asked to register again; one refusal per runtime is reported,"
                        " the rest are counted here)", self.topics.keepalive("+"), None)
        self.flush()

    def report(self, description: str, topic: str, payload: bytes | None) -> None:
        """Publish an error on proc/log with the offending data."""
        data: Any = None
        if payload is not None:
            try:
                data = orjson.loads(payload)
            except orjson.JSONDecodeError:
                data = payload[:4096].decode("utf-8", "replace")
        log.error("%s (topic %s)", description, topic)
        msg = envelope("error", {"description": description, "topic": topic, "data": data}, type="resp")
        try:
            body = orjson.dumps(msg)
        except TypeError:
            # Regression (chaos fuzz, control_orch): JSON nested ~1024 deep parses but cannot be written
            # back inside the envelope; the TypeError escaped into paho's thread and the orchestrator
            # stopped hearing MQTT. Quote such data as text.
            msg["data"]["data"] = (payload or b"")[:4096].decode("utf-8", "replace")
            body = orjson.dumps(msg)
        for topic in self._log_topics:
            self._out.append((topic, body))

    def flush(self) -> None:
        out, self._out = self._out, []
        for topic, payload in out:
            self.publish(topic, payload)

    # -- routing ------------------------------------------------------------------------
    def _dispatch(self, topic: str, payload: bytes) -> None:
        if not topic.startswith(self._prefix):
            return
        parts = topic[len(self._prefix):].split("/")
        kind = parts[0]
        if kind == "log":
            return
        if kind == "profile" and len(parts) == 4:  # ours: a campaign cell's profile (campaigns.py on_profile)
            self.campaigns.on_profile(parts[1], parts[3], payload)
            return
        msg = decode(payload, where=f"message on {topic}")
        if msg.get("type") == "resp":
            return  # replies (ours or another orchestrator's) are not requests
        action = require(msg, "action", str, where=f"message on {topic}")
        data = require(msg, "data", dict, where=f"message on {topic}")
        if kind == "reg" and len(parts) == 2:
            self._on_reg(parts[1], msg, action, data)
        elif kind == "keepalive" and len(parts) == 2:
            self._on_keepalive(parts[1], action, data)
        elif kind == "control" and len(parts) == 1:
            self._on_control(action, data)
        elif kind == "control" and len(parts) == 2:
            self._on_runtime_control(parts[1], action, data)

    # -- registration -------------------------------------------------------------------
    def _reply(self, topic: str, msg: dict[str, Any], action: str, result: str, details: dict[str, Any]) -> None:
        oid = msg.get("object_id") if isinstance(msg.get("object_id"), str) else new_uuid()
        reply = {"object_id": oid, "action": action, "type": "resp", "data": {"result": result, "details": details}}
        self._out.append((topic, orjson.dumps(reply)))

    def _on_reg(self, topic_uuid: str, msg: dict[str, Any], action: str, data: dict[str, Any]) -> None:
        topic = self.topics.reg(topic_uuid)
        where = f"registration on {topic}"
        try:
            kind = require(data, "type", str, where=where)
            if kind not in (MANAGER, RUNTIME):
                raise ProtocolError(f"{where}: type must be 'manager' or 'runtime', got {kind!r}")
            uuid = data.get("uuid", topic_uuid)
            if not isinstance(uuid, str) or uuid != topic_uuid:
                raise ProtocolError(f"{where}: data.uuid {uuid!r} differs from the topic's uuid {topic_uuid!r}")
            if action == "create":
                details = self._register(kind, uuid, data, where)
            elif action == "delete":
                details = self._unregister(kind, uuid, data, where)
            else:
                raise ProtocolError(f"{where}: action must be create or delete, got {action!r}")
        except (Refused, ProtocolError) as e:
            self._reply(topic, msg, action, "error", {"description": str(e), **getattr(e, "details", {})})
            raise
        self._reply(topic, msg, action, "ok", details)

    def _register(self, kind: str, uuid: str, data: dict[str, Any], where: str) -> dict[str, Any]:
        name = require(data, "name", str, where=where)
        parent = data.get("parent")
        if parent is not None and not isinstance(parent, str):
            raise ProtocolError(f"{where}: key 'parent' must be a manager uuid (str), got {parent!r}")
        node = Node(uuid=uuid, kind=kind, name=name, status=ALIVE, parent=parent, ka_interval=self.ka_interval,
                    info={k: data[k] for k in ("platform", "metadata") if k in data})
        if kind == RUNTIME:
            node.runtime_type = data.get("runtime_type", "") if isinstance(data.get("runtime_type", ""), str) else ""
            mx = data.get("max_nmodules", 0)
            if not isinstance(mx, int) or isinstance(mx, bool) or mx < 0:
                raise ProtocolError(f"{where}: key 'max_nmodules' must be a non-negative integer, got {mx!r}")
            node.max_nmodules = mx
            node.apis = frozenset(_str_list(data, "apis", where))
            node.provides = with_aliases(node.apis)
        old = self.nodes.get(uuid)
        now = self.clock()
        if old is not None and old.alive:
            if old.kind != kind or old.name != name or old.parent != parent:
                raise Refused(f"{where}: uuid {uuid} is already alive as {old.kind} {old.name!r}"
                              f" (parent {old.parent}); refusing {kind} {name!r} (parent {parent})")
            dup = self.presence.duplicate(old, node.info, self.nodes.values())
            if dup is not None:
                raise Refused(dup[0], dup[1])
            if kind == RUNTIME and process_of(old.info) != process_of(node.info) and old.uuid not in self.presence.heard:
                # ours: another process, not heard from since this orchestrator started (e.g. the node
                # restarted while the orchestrator was down): its modules are gone with it, resurrect them
                log.info("runtime %s (%s) came back as another process: its modules were lost", name, uuid)
                self._runtime_dead(old)
            # the same object again (e.g. after a broker reconnect): refresh, keep its modules
            node.children, node.queue, node.killed, node.last_pick = old.children, old.queue, old.killed, old.last_pick
            log.info("%s %s (%s) registered again: refreshed", kind, name, uuid)
        elif old is not None:
            node.killed, node.last_pick = old.killed, old.last_pick
            log.info("%s %s (%s) is back: resurrected", kind, name, uuid)
        else:
            log.info("%s %s (%s) registered", kind, name, uuid)
        if old is not None and old.sends_keepalives:
            node.info["keepalives"] = True
        node.last_seen = now
        node.order = old.order if old is not None else len(self.nodes)
        self._strangers.pop(uuid, None)
        self._quiet.pop(uuid, None)
        self.presence.registered(uuid)  # its register-request episode (if any) is over
        if kind == RUNTIME:
            self.presence.heard.add(uuid)
        self.nodes[uuid] = node
        if old is not None and old.name != name:
            self._by_name.get(old.name, set()).discard(uuid)
        if kind == RUNTIME:
            self._by_name.setdefault(name, set()).add(uuid)
        self.store.put_node(node, self.wallclock())
        self._changed(node)
        if kind == RUNTIME:
            self._watch_runtime(node)
            self._resurrect(node)
            self._fill(node)
        return {"ka_interval_sec": self.ka_interval, "uuid": uuid, "name": name, "orchestrator": self.presence.instance}

    def _resurrect(self, rt: Node) -> None:
        """Re-create the killed modules of a runtime that came back, oldest first."""
        if not rt.killed:
            return
        revived = sorted((self.mods[u] for u in rt.killed if u in self.mods), key=lambda m: m.seq)
        rt.killed = set()
        log.info("runtime %s: resurrecting %d killed modules", rt.name, len(revived))
        for m in revived:
            self._place(m, rt)

    def _unregister(self, kind: str, uuid: str, data: dict[str, Any], where: str) -> dict[str, Any]:
        node = self.nodes.get(uuid)
        if node is None:
            raise Refused(f"{where}: delete of unknown {kind} {uuid}")
        name = data.get("name")
        if node.alive and isinstance(name, str) and name != node.name:
            # ours: a node that borrowed another's uuid must not take the real one down with it
            raise Refused(f"{where}: delete of {node.kind} {node.name!r} ({uuid}) sent by {name!r}: refused")
        foreign = self.presence.foreign_delete(node, data) if node.alive else None
        if foreign is not None:
            raise Refused(f"{where}: {foreign}")
        if node.alive:
            if node.kind == MANAGER:
                log.info("manager %s (%s) deleted", node.name, uuid)
                node.status = DEAD
                self.store.set_node_status(uuid, DEAD, self.wallclock())
                self._changed(node)
                for rt in [n for n in self.nodes.values() if n.parent == uuid and n.kind == RUNTIME and n.alive]:
                    self._runtime_dead(rt)
            else:
                log.info("runtime %s (%s) deleted", node.name, uuid)
                self._runtime_dead(node)
        return {"uuid": uuid}

    def _runtime_dead(self, rt: Node) -> None:
        now = self.wallclock()
        rt.status = DEAD
        self._changed(rt)
        self.presence.heard.discard(rt.uuid)
        self._unconfirmed.pop(rt.uuid, None)  # what it ran is killed: resurrection sends new creates
        self.store.set_node_status(rt.uuid, DEAD, now)
        killed, dead = [], []
        # ours: a campaign cell whose profile was delivered before its node went is complete (campaigns.py)
        settled = self.campaigns.settle([u for u in rt.children if self.mods[u].status == ALIVE])
        for u in rt.children:
            m = self.mods[u]
            if u in settled:
                self._module_dead(m, settled[u])
            elif m.status == ALIVE:
                m.status = KILLED
                rt.killed.add(u)
                killed.append(u)
            else:  # exiting: it was being deleted anyway
                del self.mods[u]
                self._deleting.pop(u, None)
                dead.append(u)
        rt.children = set()
        for u in rt.queue:
            del self.mods[u]
            dead.append(u)
        rt.queue.clear()
        rt.stats = {}
        self.store.set_modules_status(killed, KILLED, now)
        self.store.set_modules_status(dead, DEAD, now)
        log.info("runtime %s dead: %d modules killed, %d dead", rt.name, len(killed), len(dead))

    # -- keepalive ----------------------------------------------------------------------
    def _on_keepalive(self, uuid: str, action: str, data: dict[str, Any]) -> None:
        where = f"keepalive on {self.topics.keepalive(uuid)}"
        if action != "update":
            raise ProtocolError(f"{where}: action must be 'update', got {action!r}")
        rt = self.nodes.get(uuid)
        ask = None
        if rt is None or rt.kind != RUNTIME or not rt.alive:
            # ours: tell the node to register again (presence.py), once per episode (not at every keepalive);
            # a node may send its first keepalive while its registration is in flight, it then ignores the request
            ask = self.presence.register_request(uuid, f"runtime {uuid} is {'dead' if rt else 'not registered'} here: register again")
            if ask is not None:
                self._out.append(ask)
        if rt is None or rt.kind != RUNTIME:
            # several mean the node registered with a store this orchestrator no longer has
            n = self._strangers[uuid] = self._strangers.get(uuid, 0) + 1
            if n != MISSED_KEEPALIVES:
                log.debug("%s: no runtime %s is registered (yet); asked its node to register", where, uuid)
                return
            raise Refused(f"{where}: {n} keepalives from runtime {data.get('name', '?')!r} ({uuid}), which never"
                          " registered here (a new orchestrator store?); asked its node to register again (a node"
                          " older than that request must be restarted)")
        if not rt.alive:
            if ask is None:  # its node was asked already in this episode: count it, report it in tick's summary
                if not self._quiet:
                    self._quiet_since = self.clock()
                self._quiet[uuid] = self._quiet.get(uuid, 0) + 1
                self.quiet_refusals += 1
                log.debug("%s: runtime %s is dead; its node was asked to register already", where, rt.name)
                return
            raise Refused(f"{where}: runtime {rt.name} ({uuid}) is dead (it missed keepalives or was deleted); it must register again"
                          " (its node was asked to; further keepalives until it does are counted, not reported)")
        self.presence.heard.add(uuid)
        rt.last_seen = max(rt.last_seen, self._received)
        if not rt.sends_keepalives:  # from now on, silence means death (see tick)
            rt.info["keepalives"] = True
            self.store.put_node(rt, self.wallclock())
            self._watch_runtime(rt)
            self._changed(rt)
        children = data.get("children")
        if isinstance(children, list):
            stats = {c["uuid"]: c for c in children if isinstance(c, dict) and isinstance(c.get("uuid"), str)}
            if stats != rt.stats:  # most keepalives repeat the last one: no new REST entry for those
                rt.stats = stats
                if self._dirty is not None:
                    self._dirty.add(uuid)
            if uuid in self._unconfirmed:
                self._reconcile(rt)

    def _reconcile(self, rt: Node) -> None:
        """After a restart: the running modules of `rt` its keepalive lists are confirmed; once the
        keepalives can be trusted, the others get their create again (it may not have been sent)."""
        todo = self._unconfirmed[rt.uuid]
        todo -= rt.stats.keys()
        if todo and self.clock() - self._loaded_at < RECONCILE_AFTER:
            return
        del self._unconfirmed[rt.uuid]
        for u in sorted(todo, key=lambda u: self.mods[u].seq if u in self.mods else 0):
            m = self.mods.get(u)
            if m is not None and m.status == ALIVE and m.parent == rt.uuid:
                log.warning("module %s (%s) runs on %s in the store, but the runtime does not have it: its create was"
                            " lost (the orchestrator stopped before publishing it?): sent again", m.name, u, rt.name)
                self._send_create(m, rt)

    # -- module control -----------------------------------------------------------------
    def _on_control(self, action: str, data: dict[str, Any]) -> None:
        where = f"request on {self.topics.control()}"
        if action == "create":
            self._create_many([data], where)
        elif action == "create_batch":
            mods = data.get("modules")
            if not isinstance(mods, list) or not all(isinstance(m, dict) for m in mods):
                raise ProtocolError(f"{where}: create_batch needs data.modules, a list of module objects")
            parent = data.get("parent")
            if parent is not None and parent != "":
                if not isinstance(parent, str):
                    raise ProtocolError(f"{where}: create_batch data.parent must be a runtime uuid, name or uuid suffix, got {parent!r}")
                # the original CLI names the runtime once for the whole batch; a module's own parent wins
                mods = [m if m.get("parent") not in (None, "") else {**m, "parent": parent} for m in mods]
            self._create_many(mods, where)
        elif action == "delete":
            self._delete(data, where)
        elif action in CAMPAIGN_ACTIONS:
            self.campaigns.handle(action, data, where)
        else:
            raise ProtocolError(f"{where}: action must be create, create_batch, delete, create_campaign or"
                                f" resume_campaign, got {action!r}")

    def _on_runtime_control(self, rt_uuid: str, action: str, data: dict[str, Any]) -> None:
        where = f"message on {self.topics.control(rt_uuid)}"
        if action in ("create", "delete"):
            return  # orchestrator -> runtime traffic (another orchestrator's, or ours without no-local)
        if action != "exited":
            raise ProtocolError(f"{where}: action must be exited, got {action!r}")
        uuid = require(data, "uuid", str, where=where)
        m = self.mods.get(uuid)
        if m is None:
            raise Refused(f"{where}: exited for module {uuid}, which is unknown or already dead")
        if m.parent != rt_uuid:
            raise Refused(f"{where}: module {uuid} runs on {m.parent}, not on runtime {rt_uuid}")
        if m.status == QUEUED:
            raise Refused(f"{where}: module {uuid} is queued, it never started on runtime {rt_uuid}")
        status = exit_status_of(data.get("status"))  # the original's runtimes send the string "exited"
        rt = self.nodes.get(rt_uuid)
        self._module_dead(m, status)
        self.campaigns.on_exited(uuid, data)
        if rt is not None:
            rt.children.discard(uuid)
            rt.killed.discard(uuid)
            rt.stats.pop(uuid, None)
            self._changed(rt)
            self._fill(rt)

    def _module_dead(self, m: Mod, exit_status: Any) -> None:
        if m.parent and self._dirty is not None:
            self._dirty.add(m.parent)
        m.status = DEAD
        del self.mods[m.uuid]
        self._deleting.pop(m.uuid, None)
        self.store.set_exit(m.uuid, DEAD, exit_status, self.wallclock())

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

    def _create_many(self, items: list[dict[str, Any]], where: str) -> None:
        """Validate and place modules; the valid ones of a batch go in, each bad one is reported."""
        now = self.wallclock()
        rows: list[tuple[int, str, str, str | None, str, str, bytes, float, float]] = []
        errors: list[str] = []
        seen: set[str] = set()
        for i, data in enumerate(items):
            w = where if len(items) == 1 else f"{where}, module #{i}"
            try:
                rows.append(self._new_module(data, w, seen, now))
            except (Refused, ProtocolError) as e:
                if len(items) == 1:
                    raise
                errors.append(str(e))
                self.report(str(e), self.topics.control(), orjson.dumps(data))
        self.store.insert_modules(rows)
        if errors:
            log.warning("%s: %d of %d modules refused", where, len(errors), len(items))

    def _create_cells(self, items: list[tuple[str, str, str, Node, dict[str, Any]]], window: int) -> None:
        """A campaign's cells as modules (uuid, name, file, runtime, create body): campaigns.py built
        them, valid by construction, so they skip `_new_module`'s checks; placed and stored alike."""
        now = self.wallclock()
        rows: list[tuple[int, str, str, str | None, str, str, bytes, float, float]] = []
        for uuid, name, file, rt, body in items:
            self.seq += 1
            m = Mod(uuid, self.seq, name, rt.uuid, QUEUED, file, window)
            self.mods[uuid] = m
            status = self._place(m, rt, persist=False, body=body)
            rows.append((m.seq, uuid, name, rt.uuid, file, status, orjson.dumps(body), now, now))
        self.store.insert_modules(rows)

    def _new_module(self, data: dict[str, Any], where: str, seen: set[str], now: float) -> tuple[int, str, str, str | None, str, str, bytes, float, float]:
        t = data.get("type", "module")
        if t != "module":
            raise ProtocolError(f"{where}: type must be 'module', got {t!r}")
        uuid = data.get("uuid") or new_uuid()
        if not isinstance(uuid, str):
            raise ProtocolError(f"{where}: key 'uuid' must be str, got {type(uuid).__name__}")
        name = data.get("name", "module")
        if not isinstance(name, str):
            raise ProtocolError(f"{where}: key 'name' must be str, got {type(name).__name__}")
        file = data.get("file", data.get("filename"))
        if not isinstance(file, str) or not file:
            raise ProtocolError(f"{where}: key 'file' (the module's program) must be a non-empty string, got {file!r}")
        apis = frozenset(_str_list(data, "apis", where))
        args = data.get("args", {})
        if args is None:
            args = {}
        if not isinstance(args, dict):
            raise ProtocolError(f"{where}: key 'args' must be an object, got {type(args).__name__}")
        channels = data.get("channels", [])
        if not isinstance(channels, list):
            raise ProtocolError(f"{where}: key 'channels' must be a list, got {type(channels).__name__}")
        if uuid in self.mods or uuid in seen:
            st = self.mods[uuid].status if uuid in self.mods else QUEUED
            raise Refused(f"{where}: module uuid {uuid} already exists and is not dead (state {st})")
        parent_q = data.get("parent")
        if parent_q is not None and parent_q != "":
            if not isinstance(parent_q, str):
                raise ProtocolError(f"{where}: key 'parent' must be a runtime uuid, name or uuid suffix, got {parent_q!r}")
            rt = self.resolve_runtime(parent_q)
            if rt is None:
                raise Refused(f"{where}: unknown parent runtime {parent_q!r} (no runtime with that uuid, name or uuid suffix)")
            if not rt.alive:
                raise Refused(f"{where}: parent runtime {rt.name} ({rt.uuid}) is dead")
        else:
            kind = module_kind(apis, args)
            picked = self.scheduler.pick(apis, kind)
            if picked is None:
                hint = ("benchmarking runtimes take only benchmarks" if kind == PLAIN
                        else "benchmarks run only on benchmarking runtimes")
                raise Refused(f"{where}: no alive runtime provides apis {sorted(apis)} for a {kind} module ({hint}; "
                              f"name one with `parent`)")
            rt = picked
        seen.add(uuid)
        self.seq += 1
        body = {k: v for k, v in data.items() if k not in ("index", "status", "filename")}
        body.update(type="module", uuid=uuid, name=name, file=file, apis=sorted(apis), args=args, channels=channels)
        body["parent"] = rt.uuid
        m = Mod(uuid, self.seq, name, rt.uuid, QUEUED, file, 1)  # window 1: no campaign's cell (those: _create_cells)
        self.mods[uuid] = m
        status = self._place(m, rt, persist=False, body=body)
        return (m.seq, uuid, name, rt.uuid, file, status, orjson.dumps(body), now, now)

    def _place(self, m: Mod, rt: Node, *, persist: bool = True, body: dict[str, Any] | None = None) -> str:
        """Start `m` on `rt` if it has room, else queue it there; returns the new state."""
        m.parent = rt.uuid
        self._changed(rt)
        if self._has_room(rt, m):
            m.status = ALIVE
            rt.children.add(m.uuid)
            if persist:
                self.store.set_module(m.uuid, ALIVE, rt.uuid, self.wallclock())
            self._send_create(m, rt, body)
        else:
            m.status = QUEUED
            rt.queue[m.uuid] = None
            if persist:
                self.store.set_module(m.uuid, QUEUED, rt.uuid, self.wallclock())
        return m.status

    def _has_room(self, rt: Node, m: Mod) -> bool:
        """Whether module `m` may start on `rt` now: a free place by max_nmodules, or a place in
        its campaign's window ahead of the running one (campaigns.py)."""
        return rt.has_room() or len(rt.children) < rt.max_nmodules + self.campaigns.ahead(rt, m)

    def _send_create(self, m: Mod, rt: Node, body: dict[str, Any] | None = None) -> None:
        """Queue the create message for the runtime (sent after the commit)."""
        if body is None:
            body = self.store.module_data(m.uuid)
        data = {**body, "parent": rt.uuid, "status": ALIVE}
        self._out.append((self.topics.control(rt.uuid), orjson.dumps(envelope("create", data))))

    def _fill(self, rt: Node) -> None:
        """Start queued modules (oldest first) while the runtime has room."""
        self._changed(rt)
        now = self.wallclock()
        while rt.alive and rt.queue and self._has_room(rt, self.mods[next(iter(rt.queue))]):
            uuid, _ = rt.queue.popitem(last=False)
            m = self.mods[uuid]
            m.status = ALIVE
            rt.children.add(uuid)
            self.store.set_module(uuid, ALIVE, rt.uuid, now)
            self._send_create(m, rt)

    def _delete(self, data: dict[str, Any], where: str) -> None:
        q = require(data, "uuid", str, where=where)
        m = self.resolve_module(q)
        if m is None:
            raise Refused(f"{where}: unknown module {q!r} (no module that is not dead has that uuid, name or uuid suffix)")
        rt = self.nodes.get(m.parent) if m.parent else None
        now = self.wallclock()
        if m.status in (ALIVE, EXITING):
            m.status = EXITING
            if rt is not None:
                self._changed(rt)
            self._deleting.setdefault(m.uuid, self.clock() + self.delete_timeout)
            self.store.set_module(m.uuid, EXITING, m.parent, now)
            if m.parent:
                self._out.append((self.topics.control(m.parent),
                                  orjson.dumps(envelope("delete", {"type": "module", "uuid": m.uuid}))))
        elif m.status == QUEUED:
            if rt is not None:
                rt.queue.pop(m.uuid, None)
                self._changed(rt)
            self._module_dead(m, {"reason": "deleted", "code": None, "error": None})
        else:  # killed: it will not be resurrected
            if rt is not None:
                rt.killed.discard(m.uuid)
                self._changed(rt)
            self._module_dead(m, {"reason": "deleted", "code": None, "error": None})

    def _delete_overdue(self, uuid: str) -> None:
        """A deleted module whose runtime never said `exited`: dead, with the reason, its slot freed."""
        self._deleting.pop(uuid, None)
        m = self.mods.get(uuid)
        if m is None or m.status != EXITING:
            return
        rt = self.nodes.get(m.parent) if m.parent else None
        rt_name = f"{rt.name} ({rt.uuid})" if rt else str(m.parent)
        why = (f"runtime {rt_name} sent no exited within {self.delete_timeout:g} s of the delete"
               " (the original's minimal runtime ignores deletes): marked dead")
        log.warning("module %s (%s): %s", m.name, uuid, why)
        self._module_dead(m, {"reason": "deleted", "code": None, "error": why})
        self.report(f"module {m.name} ({uuid}): {why}", self.topics.control(m.parent), None)
        if rt is not None:
            rt.children.discard(uuid)
            rt.stats.pop(uuid, None)
            self._changed(rt)
            self._fill(rt)
