"""Registration, presence and keepalives (docs/protocol.md, "Orchestrator rules"): managers and
runtimes register, refresh, are resurrected or deleted; a runtime that sent a keepalive is dead
when 3 intervals pass without one (a deadline heap, `next_deadline`/`_expired`; `tick` in core.py
acts on it); its running modules are killed, and created again when it comes back. **Ours**:
presence.py's announcements and register requests, and the reconciliation after a restart.
"""
from __future__ import annotations

import heapq
import logging
from typing import Any

import orjson

from common import schema
from common.apis import with_aliases
from common.wire import ProtocolError, new_uuid
from orchestrator.model import ALIVE, DEAD, KILLED, MANAGER, MISSED_KEEPALIVES, RUNTIME, Node
from orchestrator.placement import Placement
from orchestrator.presence import process_of
from orchestrator.state import Refused

log = logging.getLogger("orch")

RECONCILE_AFTER = 5.0  # seconds after a restart before a keepalive's children are trusted to be complete


class Liveness(Placement):
    """Registrations, keepalives and their deadlines (a part of `Orchestrator`, core.py)."""

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

    # -- registration -------------------------------------------------------------------
    def _reply(self, topic: str, object_id: str | None, action: str, result: str, details: dict[str, Any]) -> None:
        reply = {"object_id": object_id or new_uuid(), "action": action, "type": "resp", "data": {"result": result, "details": details}}
        self._out.append((topic, orjson.dumps(reply)))

    def _on_reg_message(self, topic_uuid: str, payload: bytes) -> None:
        """A message on `reg/UUID`, decoded and checked by the schema; a refused one is answered too (the
        node would repeat it for ever)."""
        topic = self.topics.reg(topic_uuid)
        try:
            msg = schema.decode_reg(payload, f"registration on {topic}")
        except schema.SchemaError as e:
            self._reply(topic, e.object_id, e.action or "create", "error", {"description": str(e)})
            raise
        if isinstance(msg, (schema.RegisterMsg, schema.UnregisterMsg)):
            self._on_reg(topic_uuid, msg)

    def _on_reg(self, topic_uuid: str, msg: schema.RegisterMsg | schema.UnregisterMsg) -> None:
        topic = self.topics.reg(topic_uuid)
        where = f"registration on {topic}"
        action = "create" if isinstance(msg, schema.RegisterMsg) else "delete"
        try:
            uuid = topic_uuid if msg.data.uuid is None else msg.data.uuid
            if uuid != topic_uuid:
                raise ProtocolError(f"{where}: data.uuid {uuid!r} differs from the topic's uuid {topic_uuid!r}")
            if isinstance(msg, schema.RegisterMsg):
                details = self._register(msg.data.type, uuid, msg.data, where)
            else:
                details = self._unregister(msg.data.type, uuid, msg.data, where)
        except (Refused, ProtocolError) as e:
            self._reply(topic, msg.object_id, action, "error", {"description": str(e), **getattr(e, "details", {})})
            raise
        self._reply(topic, msg.object_id, action, "ok", details)

    def _register(self, kind: str, uuid: str, data: schema.Registration, where: str) -> dict[str, Any]:
        name, parent = data.name, data.parent
        info = {k: v for k, v in (("platform", data.platform), ("metadata", data.metadata)) if v is not None}
        node = Node(uuid=uuid, kind=kind, name=name, status=ALIVE, parent=parent, ka_interval=self.ka_interval, info=info)
        if kind == RUNTIME:
            node.runtime_type = data.runtime_type or ""
            node.max_nmodules = data.max_nmodules
            node.apis = frozenset(data.apis or ())
            node.provides = with_aliases(node.apis)
        self.guard.check_registration(node, where, self.nodes, self._by_name, self.presence)  # issue #25 (guard.py)
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
            self.deployments.dirty = True
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

    def _unregister(self, kind: str, uuid: str, data: schema.Unregistration, where: str) -> dict[str, Any]:
        node = self.nodes.get(uuid)
        if node is None:
            raise Refused(f"{where}: delete of unknown {kind} {uuid}")
        name = data.name
        if node.alive and name is not None and name != node.name:
            # ours: a node that borrowed another's uuid must not take the real one down with it
            raise Refused(f"{where}: delete of {node.kind} {node.name!r} ({uuid}) sent by {name!r}: refused")
        foreign = self.presence.foreign_delete(node, {"metadata": data.metadata}) if node.alive else None
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
        self.deployments.dirty = True
        self.presence.heard.discard(rt.uuid)
        self._unconfirmed.pop(rt.uuid, None)  # what it ran is killed: resurrection sends new creates
        self.store.set_node_status(rt.uuid, DEAD, now)
        killed, dead = [], []
        # ours: a campaign cell whose profile was delivered before its node went is complete (campaigns/hooks.py)
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
    def _on_keepalive(self, uuid: str, data: schema.Keepalive) -> None:
        where = f"keepalive on {self.topics.keepalive(uuid)}"
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
            raise Refused(f"{where}: {n} keepalives from runtime {data.name or '?'!r} ({uuid}), which never"
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
        children = data.children
        if children is not None:
            stats = {c["uuid"]: c for c in children if isinstance(c.get("uuid"), str)}
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
