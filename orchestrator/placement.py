"""Module create, placement, queueing and delete (docs/protocol.md, "Orchestrator rules"): a create
is validated and placed (the named `parent`, or the scheduler's pick), started when its runtime
has room and queued (FIFO) otherwise; a runtime's queue is filled as modules exit; a delete ends
a module (or marks it exiting until its runtime says `exited`, or `delete_timeout` passes).
"""
from __future__ import annotations

import logging
from typing import Any

import orjson

from common import schema
from common.wire import ProtocolError, envelope, new_uuid, require
from orchestrator.model import ALIVE, EXITING, KILLED, QUEUED, Mod, Node
from orchestrator.scheduler import PLAIN, module_kind
from orchestrator.state import Refused, State

log = logging.getLogger("orch")


class Placement(State):
    """Creates, placement, queues and deletes of modules (a part of `Orchestrator`, core.py)."""

    def _create_many(self, items: list[schema.ModuleCreate | Any], where: str) -> None:
        """Place modules (creates checked by the schema; a plain object, e.g. a deployment's, is checked
        here); the valid ones of a batch go in, each bad one is reported."""
        now = self.wallclock()
        rows: list[tuple[int, str, str, str | None, str, str, bytes, float, float]] = []
        errors: list[str] = []
        seen: set[str] = set()
        for i, item in enumerate(items):
            w = where if len(items) == 1 else f"{where}, module #{i}"
            try:
                create = item if isinstance(item, schema.ModuleCreate) else schema.check_create(item, w)
                rows.append(self._new_module(create, w, seen, now))
            except (Refused, ProtocolError) as e:
                if len(items) == 1:
                    raise
                errors.append(str(e))
                self.report(str(e), self.topics.control(), schema.encode(item))
        self.store.insert_modules(rows)
        if errors:
            log.warning("%s: %d of %d modules refused", where, len(errors), len(items))

    def place_cells(self, items: list[tuple[str, str, str, Node, dict[str, Any]]], window: int) -> None:
        """A campaign's cells as modules (uuid, name, file, runtime, create body): campaigns/ built
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

    def retire_killed(self, uuid: str, why: str) -> None:
        """A killed module that must not be resurrected with its runtime (a campaign's resume
        replaces it): dead, with `why` as its exit's error."""
        m = self.mods.get(uuid)
        if m is None or m.status != KILLED:
            return
        rt = self.nodes.get(m.parent) if m.parent else None
        if rt is not None:
            rt.killed.discard(uuid)
        self._module_dead(m, {"reason": "deleted", "code": None, "error": why})

    def has_module(self, uuid: str) -> bool:
        """Whether a module that is not dead has this uuid."""
        return uuid in self.mods

    def module_parent(self, uuid: str) -> str | None:
        """The runtime uuid a module (alive, or dead in the store) was placed on (campaigns/hooks.py)."""
        m = self.mods.get(uuid)
        if m is not None:
            return m.parent
        row = self.store.conn.execute("SELECT parent FROM modules WHERE uuid=?", (uuid,)).fetchone()
        return str(row[0]) if row is not None and row[0] is not None else None

    def _new_module(self, create: schema.ModuleCreate, where: str, seen: set[str], now: float) -> tuple[int, str, str, str | None, str, str, bytes, float, float]:
        uuid = create.uuid or new_uuid()
        name = "module" if create.name is None else create.name
        file = create.file
        if not file:
            raise ProtocolError(f"{where}: missing key 'data.file' (the module's program)")
        apis = frozenset(create.apis or ())
        args = create.args or {}
        if uuid in self.mods or uuid in seen:
            st = self.mods[uuid].status if uuid in self.mods else QUEUED
            raise Refused(f"{where}: module uuid {uuid} already exists and is not dead (state {st})")
        if create.uuid:
            old = self.store.module_name_of(uuid)
            cid = self.campaigns.store.campaign_of(uuid) if old is None else None  # its row pruned (history.py)
            if old is not None or cid is not None:  # ours: a uuid names one module for good; a reuse would rewrite its history
                what = f"module {old!r} (dead)" if old is not None else f"a cell of campaign {cid}"
                raise Refused(f"{where}: module uuid {uuid} was used before, by {what}; a uuid names one module for"
                              " good: send the create without 'uuid', or with a new one")
        parent_q = create.parent
        if parent_q:
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
        body = {"type": "module", "uuid": uuid, "name": name, "file": file, "apis": sorted(apis), "args": args,
                "channels": [{"path": g.path, "mode": g.mode, "topic": g.topic} for g in create.grants], "parent": rt.uuid}
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
        its campaign's window ahead of the running one (campaigns/hooks.py)."""
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
