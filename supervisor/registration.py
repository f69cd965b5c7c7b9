"""Everything the node says to the orchestrator about itself and its runtimes (PROTOCOL.md
section 1): registration and re-registration after every reconnect, keepalives, deletes.

The manager registers first; when the orchestrator answers (or the wait times out, which is logged
as an error and otherwise ignored, as in the seed) every runtime registers, each waiting for its own
answer. Nothing here blocks: the supervisor's loop feeds replies in and calls `tick()`.
"""
from __future__ import annotations

import logging
import os
import platform
import socket
import time
from dataclasses import dataclass
from typing import Any, Callable

from common.wire import ProtocolError, decode, encode, envelope
from supervisor.outbox import Outbox
from supervisor.process import ProcessOps
from supervisor.states import WorkerState
from supervisor.workers import Worker

log = logging.getLogger("mgr")


def manager_message(uuid: str, name: str, action: str = "create") -> dict[str, Any]:
    data: dict[str, Any] = {"type": "manager", "uuid": uuid, "name": name}
    return envelope(action, data)


def runtime_message(*, uuid: str, name: str, runtime_type: str, max_nmodules: int, apis: list[str],
                    platform: dict[str, Any], metadata: dict[str, Any], parent: str) -> dict[str, Any]:
    return envelope("create", {
        "type": "runtime", "uuid": uuid, "name": name, "runtime_type": runtime_type,
        "max_nmodules": max_nmodules, "apis": list(apis), "platform": platform,
        "metadata": metadata, "parent": parent,
    })


def runtime_delete_message(uuid: str, name: str) -> dict[str, Any]:
    return envelope("delete", {"type": "runtime", "uuid": uuid, "name": name})


@dataclass
class Pending:
    uuid: str
    what: str  # "manager test" / "runtime test.echo"
    deadline: float


class Registrar:
    """Drives one registration round (manager, then runtimes); restarted after every reconnect."""

    def __init__(self, *, timeout: float, send: Callable[[str, dict[str, Any]], None],
                 on_reply: Callable[[str, dict[str, Any]], None], on_done: Callable[[], None]) -> None:
        self.timeout = timeout
        self.send = send  # (uuid, message): publish on proc/reg/{uuid}
        self.on_reply = on_reply  # (uuid, details) of an "ok" answer
        self.on_done = on_done
        self.pending: dict[str, Pending] = {}
        self.phase = "idle"  # idle -> manager -> runtimes -> done
        self._runtimes: list[tuple[str, str, dict[str, Any]]] = []

    def start(self, manager: tuple[str, str, dict[str, Any]], runtimes: list[tuple[str, str, dict[str, Any]]]) -> None:
        """Each item is (uuid, description, message)."""
        self.pending.clear()
        self._runtimes = list(runtimes)
        self.phase = "manager"
        self._post(*manager)

    def _post(self, uuid: str, what: str, msg: dict[str, Any]) -> None:
        self.pending[msg["object_id"]] = Pending(uuid, what, time.monotonic() + self.timeout)
        self.send(uuid, msg)

    def reply(self, msg: dict[str, Any]) -> bool:
        """An answer on a reg topic; True when it was one we waited for."""
        p = self.pending.pop(str(msg.get("object_id")), None)
        if p is None:
            return False
        raw = msg.get("data")
        data: dict[str, Any] = raw if isinstance(raw, dict) else {}
        result = data.get("result")
        rd = data.get("details")
        details: dict[str, Any] = rd if isinstance(rd, dict) else {}
        if result == "ok":
            log.info("registered %s", p.what)
            self.on_reply(p.uuid, details)
        else:
            log.error("orchestrator refused the registration of %s: %s", p.what, details or data)
        self._advance()
        return True

    def tick(self) -> None:
        now = time.monotonic()
        for oid, p in list(self.pending.items()):
            if now >= p.deadline:
                del self.pending[oid]
                log.error("no answer from the orchestrator to the registration of %s within %.1fs; going on", p.what, self.timeout)
        self._advance()

    def next_deadline(self) -> float | None:
        return min((p.deadline for p in self.pending.values()), default=None)

    def _advance(self) -> None:
        if self.pending:
            return
        if self.phase == "manager":
            self.phase = "runtimes"
            for item in self._runtimes:
                self._post(*item)
            if self.pending:
                return
        if self.phase == "runtimes":
            self.phase = "done"
            self.on_done()


class NodeRegistration:
    """The node's registration, keepalives and deletes at the orchestrator."""

    def __init__(self, outbox: Outbox, workers: list[Worker], ops: ProcessOps, *, platform_extra: dict[str, Any],
                 timeout: float, on_registered: Callable[[], None]) -> None:
        self.outbox = outbox
        self.topics = outbox.topics
        self.uuid = outbox.manager_uuid
        self.name = outbox.node_name
        self.workers = workers
        self.ops = ops
        self.platform_extra = platform_extra  # config.json "platform"
        self.on_registered = on_registered
        self.by_uuid = {w.uuid: w for w in workers}
        self.topics_in = {self.topics.reg(self.uuid)} | {self.topics.reg(w.uuid) for w in workers}
        self.registrar = Registrar(timeout=timeout, send=self._send, on_reply=self._reply_ok, on_done=self._done)

    def will(self) -> tuple[str, bytes, int]:
        """The last will: the broker deletes the manager when the node vanishes."""
        return self.topics.reg(self.uuid), encode(manager_message(self.uuid, self.name, "delete")), 2

    def start(self) -> None:
        """A (re)connection: register the manager, then every runtime that is not FATAL."""
        rts = [(w.uuid, f"runtime {w.name}", self._runtime_message(w)) for w in self.workers if w.state is not WorkerState.FATAL]
        self.registrar.start((self.uuid, f"manager {self.name}", manager_message(self.uuid, self.name)), rts)

    def _runtime_message(self, w: Worker) -> dict[str, Any]:
        extra = w.cls.registration(w.settings) or {}
        plat = {"cpu": platform.machine(), "system": platform.system(), "release": platform.release(),
                "python": platform.python_version(), "cpus": os.cpu_count()}
        plat.update(self.platform_extra)
        plat.update(extra.get("platform") or {})
        meta: dict[str, Any] = {"runtime": w.spec.name, "host": socket.gethostname(), "pid": os.getpid(),
                                "cpus": sorted(w.cpus) if w.cpus else self.ops.allowed_cpus()}
        meta.update(extra.get("metadata") or {})
        msg = runtime_message(uuid=w.uuid, name=w.name, runtime_type=w.cls.RUNTIME_TYPE, max_nmodules=w.max_nmodules,
                              apis=list(w.cls.APIS), platform=plat, metadata=meta, parent=self.uuid)
        msg["data"].update(w.cls.registration_fields(w.settings))  # page_size, aot_target (runtimes/base.py)
        return msg

    def _send(self, uuid: str, msg: dict[str, Any]) -> None:
        self.outbox.publish(self.topics.reg(uuid), encode(msg), 1)

    def _reply_ok(self, uuid: str, details: dict[str, Any]) -> None:
        ka = details.get("ka_interval_sec")
        if isinstance(ka, (int, float)) and not isinstance(ka, bool) and ka >= 0:
            w = self.by_uuid.get(uuid)
            for x in [w] if w else self.workers:
                x.ka_interval = float(ka)
                x.next_keepalive = time.monotonic() + float(ka) if ka > 0 else 0.0

    def _done(self) -> None:
        for w in self.workers:
            if w.ka_interval > 0 and not w.next_keepalive:
                w.next_keepalive = time.monotonic()
        self.on_registered()

    def message(self, topic: str, payload: bytes) -> None:
        """A message on one of our reg topics: the orchestrator's answers count, the rest is ours."""
        try:
            msg = decode(payload, where=f"message on {topic}")
        except ProtocolError as e:
            log.warning("%s", e)
            return
        if msg.get("type") == "resp":
            self.registrar.reply(msg)

    def tick(self, now: float) -> None:
        self.registrar.tick()
        for w in self.workers:
            if (w.ka_interval > 0 and w.next_keepalive and now >= w.next_keepalive
                    and w.state in (WorkerState.RUNNING, WorkerState.STARTING)):
                self._keepalive(w)

    def _keepalive(self, w: Worker) -> None:
        data: dict[str, Any] = {"type": "runtime", "uuid": w.uuid, "name": w.name, "apis": list(w.cls.APIS), "children": []}
        data.update(w.ka_fields)
        data.update({"type": "runtime", "uuid": w.uuid, "name": w.name})
        self.outbox.publish(self.topics.keepalive(w.uuid), encode(envelope("update", data)), 0)
        w.next_keepalive = time.monotonic() + w.ka_interval

    def next_deadline(self) -> float | None:
        times = [w.next_keepalive for w in self.workers if w.ka_interval > 0 and w.next_keepalive]
        d = self.registrar.next_deadline()
        return min([*times, d] if d is not None else times, default=None)

    def runtime_deleted(self, w: Worker) -> None:
        """A runtime that went FATAL is deleted at the orchestrator."""
        self.outbox.publish(self.topics.reg(w.uuid), encode(runtime_delete_message(w.uuid, w.name)), 1)

    def goodbye(self) -> None:
        """The node stops: every runtime, then the manager, is deleted at the orchestrator."""
        for w in self.workers:
            self.runtime_deleted(w)
        self.outbox.publish(self.topics.reg(self.uuid), encode(manager_message(self.uuid, self.name, "delete")), 1)
