"""Everything the node says to the orchestrator about itself and its runtimes (docs/protocol.md,
section 1): registration and re-registration after every reconnect, keepalives, deletes. The
rounds themselves (order, retries, timeouts, refusals) are registrar.py.

A runtime's registration is built from its class (type, APIs, `registration(settings)`) and its
worker's report (RT_REGISTER, `Runtime.registration_report()`, sent after the worker's setup): the
supervisor imports no engine and probes none; the worker says what it found.

The orchestrator's presence messages (docs/orchestrator.md, "Presence") make the node register again
at once: `online` from an instance other than the one that answered, and a register request (an
error reply with `details.register`) for one of our uuids. Nothing here blocks: the supervisor's
loop feeds messages in and calls `tick()`.
"""
from __future__ import annotations

import logging
import os
import platform
import socket
import time
from typing import Any, Callable

import orjson

from common.wire import ProtocolError, decode, encode, envelope
from runtimes.files import ModuleFiles
from supervisor.outbox import Outbox
from supervisor.process import ProcessOps
from supervisor.registrar import Registrar
from supervisor.states import WorkerState
from supervisor.workers import Worker

__all__ = ["NodeRegistration", "Registrar", "manager_message", "runtime_message"]

log = logging.getLogger("mgr")


def process_metadata() -> dict[str, Any]:
    """Who sends: the orchestrator refuses an identity alive under another process (presence.py)."""
    return {"host": socket.gethostname(), "pid": os.getpid()}


def manager_message(uuid: str, name: str, action: str = "create") -> dict[str, Any]:
    data: dict[str, Any] = {"type": "manager", "uuid": uuid, "name": name, "metadata": process_metadata()}
    return envelope(action, data)


def runtime_message(*, uuid: str, name: str, runtime_type: str, max_nmodules: int, apis: list[str],
                    platform: dict[str, Any], metadata: dict[str, Any], parent: str) -> dict[str, Any]:
    return envelope("create", {
        "type": "runtime", "uuid": uuid, "name": name, "runtime_type": runtime_type,
        "max_nmodules": max_nmodules, "apis": list(apis), "platform": platform,
        "metadata": metadata, "parent": parent,
    })


def runtime_delete_message(uuid: str, name: str) -> dict[str, Any]:
    return envelope("delete", {"type": "runtime", "uuid": uuid, "name": name, "metadata": process_metadata()})


class NodeRegistration:
    """The node's registration, keepalives and deletes at the orchestrator."""

    def __init__(self, outbox: Outbox, workers: list[Worker], ops: ProcessOps, *, platform_extra: dict[str, Any],
                 timeout: float, on_registered: Callable[[], None], on_refused: Callable[[str], None] | None = None) -> None:
        self.outbox = outbox
        self.topics = outbox.topics
        self.uuid = outbox.manager_uuid
        self.name = outbox.node_name
        self.workers = workers
        self.ops = ops
        self.platform_extra = platform_extra  # config.json "platform"
        self.on_registered = on_registered
        self.by_uuid = {w.uuid: w for w in workers}
        self.presence = f"{self.topics.realm}/proc/orchestrator"  # ours: orchestrator/presence.py
        self.topics_in = {self.topics.reg(self.uuid), self.presence} | {self.topics.reg(w.uuid) for w in workers}
        self.registrar = Registrar(timeout=timeout, send=self._send, on_reply=self._reply_ok, on_done=self._done,
                                   on_refused=on_refused, unreported=lambda uuid: self._runtime_message(self.by_uuid[uuid]))

    def will(self) -> tuple[str, bytes, int]:
        """The last will: the broker deletes the manager when the node vanishes. `last_will: true` tells it
        from a clean stop's delete (docs/reliability.md counts wills)."""
        msg = manager_message(self.uuid, self.name, "delete")
        msg["data"]["last_will"] = True
        return self.topics.reg(self.uuid), encode(msg), 2

    def start(self) -> None:
        """A (re)connection: register the manager, then every runtime that is not FATAL."""
        rts = [(w.uuid, f"runtime {w.name}", None if w.cls.REPORTS_REGISTRATION and w.reported is None else self._runtime_message(w))
               for w in self.workers if w.state is not WorkerState.FATAL]
        self.registrar.start((self.uuid, f"manager {self.name}", manager_message(self.uuid, self.name)), rts)

    def _runtime_message(self, w: Worker) -> dict[str, Any]:
        """Its registration: the class's fields and extras, then what its worker reported over them."""
        extras = [w.cls.registration(w.settings) or {}, w.reported or {}]
        plat = {"cpu": platform.machine(), "system": platform.system(), "release": platform.release(),
                "python": platform.python_version(), "cpus": os.cpu_count()}
        plat.update(self.platform_extra)
        meta: dict[str, Any] = {"runtime": w.spec.name, "host": socket.gethostname(), "pid": os.getpid(),
                                "cpus": sorted(w.cpus) if w.cpus else self.ops.allowed_cpus(),
                                # where its module files are looked up: `manage.py benchmark` on this host checks a plan's files
                                "module_roots": ModuleFiles(w.settings.get("module_root")).roots}
        for extra in extras:
            plat.update(extra.get("platform") or {})
            meta.update(extra.get("metadata") or {})
        msg = runtime_message(uuid=w.uuid, name=w.name, runtime_type=w.cls.RUNTIME_TYPE, max_nmodules=w.max_nmodules,
                              apis=list(w.cls.APIS), platform=plat, metadata=meta, parent=self.uuid)
        msg["data"].update(w.cls.registration_fields(w.settings))  # page_size, aot_target (runtimes/base.py)
        return msg

    def report(self, w: Worker, index: int, payload: bytes) -> None:
        """RT_REGISTER: the worker's registration extras, sent after its setup (the router's callback)."""
        try:
            extras = orjson.loads(payload)
            if not isinstance(extras, dict) or not all(isinstance(extras.get(k, {}), dict) for k in ("platform", "metadata")):
                raise ValueError(f"expected {{\"platform\": {{...}}, \"metadata\": {{...}}}}, got {payload[:200]!r}")
        except ValueError as e:
            w.logger.error("registration report of the worker ignored: %s", e)
            extras = {}
        w.reported = extras
        self.registrar.report(w.uuid, self._runtime_message(w))

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
        if topic == self.presence:
            self._presence(msg)
            return
        if msg.get("type") != "resp" or self.registrar.reply(msg):
            return
        raw = msg.get("data")
        details = raw.get("details") if isinstance(raw, dict) else None
        if isinstance(details, dict) and details.get("register") is True:
            self.registrar.again(f"the orchestrator asked ({details.get('description', 'unknown runtime')})")

    def _presence(self, msg: dict[str, Any]) -> None:
        """The orchestrator's retained online/offline announcement."""
        raw = msg.get("data")
        data: dict[str, Any] = raw if isinstance(raw, dict) else {}
        instance = data.get("instance")
        if msg.get("action") == "online" and isinstance(instance, str):
            if instance != self.registrar.answered_by:
                self.registrar.offline = False
                self.registrar.again(f"orchestrator {instance[:8]} is online")
            elif self.registrar.unanswered():  # the same one back (a broker restart): hurry what waits in backoff
                self.registrar.again(f"orchestrator {instance[:8]} is back")
        elif msg.get("action") == "offline" and instance == self.registrar.answered_by and not self.registrar.offline:
            self.registrar.offline = True
            log.warning("the orchestrator went offline; the node registers again when it is back")

    def waiting_for(self) -> str | None:
        """What registration still waits for (sd_notify STATUS), or None."""
        if self.registrar.offline:
            return "the orchestrator is offline; waiting for it"
        return self.registrar.waiting_for()

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
        if w.backlog.episodes:  # ours: its input ring was full at times (backlog.py)
            data["backpressure"] = w.backlog.report()
        self.outbox.publish(self.topics.keepalive(w.uuid), encode(envelope("update", data)), 0)
        w.next_keepalive = time.monotonic() + w.ka_interval

    def next_deadline(self) -> float | None:
        times = [w.next_keepalive for w in self.workers if w.ka_interval > 0 and w.next_keepalive
                 and w.state in (WorkerState.RUNNING, WorkerState.STARTING)]  # what tick() sends
        d = self.registrar.next_deadline()
        return min([*times, d] if d is not None else times, default=None)

    def runtime_deleted(self, w: Worker) -> None:
        """A runtime that went FATAL is deleted at the orchestrator (and leaves a round that waits for it)."""
        self.registrar.drop(w.uuid)
        self._delete(w)

    def _delete(self, w: Worker) -> None:
        self.outbox.publish(self.topics.reg(w.uuid), encode(runtime_delete_message(w.uuid, w.name)), 1)

    def goodbye(self) -> None:
        """The node stops: every runtime, then the manager, is deleted at the orchestrator."""
        for w in self.workers:
            self._delete(w)
        self.outbox.publish(self.topics.reg(self.uuid), encode(manager_message(self.uuid, self.name, "delete")), 1)
