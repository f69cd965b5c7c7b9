"""Ours (docs/orchestrator.md, "Presence"): the orchestrator makes nodes come to it, and no node
identity is alive twice.

- **Online announcement.** On every connection to the broker the orchestrator publishes a retained
  `{realm}/proc/orchestrator` message `action: online, data: {instance, started}`; its MQTT last will
  and its clean stop leave a retained `action: offline` there. `instance` is new at every start. A node
  that sees `online` from an instance its registration was not answered by registers again at once
  (a new orchestrator, maybe with an empty store). The reply to a registration names the instance
  (`details.orchestrator`).
- **Register request.** A keepalive from a runtime the orchestrator does not know, or knows as dead,
  is answered by an error reply on that runtime's reg topic with `details.register: true`, once per
  episode (until the runtime registers), not at every keepalive; the node registers again at once.
  Should the node still not register (the request was lost), it is asked again after REASK_FIRST
  seconds, then at doubling intervals up to REASK_MAX.
- **Duplicates.** Registrations carry the sender's process (`metadata.host`, `metadata.pid`). A
  registration of a runtime uuid that is alive under another process, heard from by this orchestrator
  (a registration or keepalive since it started, and not dead by missed keepalives or a delete), is
  refused with `details.reason: "duplicate"`; so is a manager's while such a runtime of it is alive.
  The refusal says in `details.retry_after` when the holder would be dead by missed keepalives if it
  is silent from now on: a node back after a power cut (its old registration still alive here, no
  last will) asks once more after that and is accepted; a live twin is refused again.
  A delete (or last will) naming another process than the registered one is refused, so a refused
  duplicate cannot take the real node down. The original SilverLine orchestrator ignores all of this
  (extra keys are dropped by its models) and the node copes (docs/supervisor.md, "Registration").
"""
from __future__ import annotations

import time
from typing import Any, Callable, Iterable

import orjson

from common.wire import Topics, envelope, new_uuid
from orchestrator.model import RUNTIME, Node

REASK_FIRST = 30.0  # seconds before a runtime that keeps talking without registering is asked a second time
REASK_MAX = 600.0  # ... doubling up to this


def presence_topic(realm: str) -> str:
    return f"{realm}/proc/orchestrator"


def process_of(info: dict[str, Any] | None) -> tuple[Any, Any] | None:
    """(host, pid) from a registration's metadata, if the node sent them."""
    meta = (info or {}).get("metadata")
    if isinstance(meta, dict) and "pid" in meta:
        return (meta.get("host"), meta.get("pid"))
    return None


def _who(p: tuple[Any, Any] | None) -> str:
    return f"pid {p[1]} on {p[0]}" if p else "an unknown process"


class Presence:
    """Online/offline announcements, register requests and the duplicate rules of one orchestrator."""

    def __init__(self, realm: str, *, instance: str | None = None, clock: Callable[[], float] = time.monotonic,
                 wallclock: Callable[[], float] = time.time) -> None:
        self.topics = Topics(realm)
        self.topic = presence_topic(realm)
        self.instance = instance or new_uuid()
        self.started = wallclock()
        self.clock = clock
        self.heard: set[str] = set()  # runtimes heard from (registration, keepalive) since this start
        self._asked: dict[str, tuple[float, float]] = {}  # uuid -> (time of the next request allowed, its gap)

    # -- announcements (retained) ----------------------------------------------------
    def online(self) -> bytes:
        return orjson.dumps(envelope("online", {"instance": self.instance, "started": self.started}))

    def offline(self) -> bytes:
        return orjson.dumps(envelope("offline", {"instance": self.instance, "started": self.started}))

    # -- register requests -----------------------------------------------------------
    def register_request(self, uuid: str, why: str) -> tuple[str, bytes] | None:
        """The error reply that makes runtime `uuid`'s node register again: the first of its episode
        (until `registered(uuid)`), or a repeat after REASK_FIRST s, doubling; None otherwise."""
        now = self.clock()
        last = self._asked.get(uuid)
        if last is not None and now < last[0]:
            return None
        gap = REASK_FIRST if last is None else min(2 * last[1], REASK_MAX)
        if len(self._asked) > 100_000:  # keepalives from very many strangers: keep the table bounded
            self._asked = {u: t for u, t in self._asked.items() if now < t[0]}
        self._asked[uuid] = (now + gap, gap)
        msg = {"object_id": new_uuid(), "action": "create", "type": "resp",
               "data": {"result": "error", "details": {"description": why, "register": True,
                                                        "orchestrator": self.instance}}}
        return (self.topics.reg(uuid), orjson.dumps(msg))

    def registered(self, uuid: str) -> None:
        """`uuid` registered: its episode is over; a later death starts a new one."""
        self._asked.pop(uuid, None)

    # -- duplicates -------------------------------------------------------------------
    def duplicate(self, old: Node, new_info: dict[str, Any], nodes: Iterable[Node]) -> tuple[str, dict[str, Any]] | None:
        """(description, details) when a registration that matches alive `old` comes from another live process.
        `details.retry_after`: seconds until the holder is dead by missed keepalives if it is silent
        from now on (`Node.expires_at`; a node back after a power cut waits that long and asks once more)."""
        mine, theirs = process_of(old.info), process_of(new_info)
        if mine is None or theirs is None or mine == theirs:
            return None
        holder: Node | None = old
        if old.kind == RUNTIME:
            if old.uuid not in self.heard:
                return None  # not heard from since this orchestrator started: nothing says it still runs
        else:
            holder = next((n for n in nodes if n.kind == RUNTIME and n.alive and n.parent == old.uuid
                           and n.uuid in self.heard and process_of(n.info) == mine), None)
        if holder is None:
            return None  # none of its runtimes is alive: the old process is gone
        text = (f"{old.kind} {old.name!r} ({old.uuid}) is alive under another connection ({_who(mine)}, runtime "
                f"{holder.name!r} keeps sending keepalives); refusing it from {_who(theirs)} until that one is dead")
        details: dict[str, Any] = {"reason": "duplicate", "holder": {"host": mine[0], "pid": mine[1]}}
        expires = holder.expires_at()
        if expires is not None:
            details["retry_after"] = round(max(0.0, expires - self.clock()), 2)
        return text, details

    def foreign_delete(self, node: Node, data: dict[str, Any]) -> str | None:
        """Why a delete of alive `node` must be refused: it names another process than the registered one."""
        mine, theirs = process_of(node.info), process_of(data)
        if mine is None or theirs is None or mine == theirs:
            return None
        return (f"delete of {node.kind} {node.name!r} ({node.uuid}) from {_who(theirs)}, but it is registered by "
                f"{_who(mine)}: refused (the last will or stop of a refused duplicate)")
