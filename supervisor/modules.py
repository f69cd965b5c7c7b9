"""Module control: create and delete requests from MQTT, exited reports from workers (the router
hands them over through its `on_exited` callback). The records themselves are in slots.py."""
from __future__ import annotations

from typing import Any

import orjson

from common import schema
from common.exit_status import exit_status
from common.wire import ProtocolError, encode, envelope
from ipc import messages
from supervisor.control import ControlRequest, parse_control
from supervisor.outbox import Outbox
from supervisor.router import Router
from supervisor.slots import ModuleRecord
from supervisor.states import WorkerState
from supervisor.workers import Worker


class ModuleControl:
    """Everything that happens to modules: requests in, creates/deletes to workers, exited out."""

    def __init__(self, outbox: Outbox, router: Router) -> None:
        self.outbox = outbox
        self.router = router
        self.stop_mode: str | None = None  # while the node stops: "restart" (keep modules) or "end"

    # ------------------------------------------------------------------ requests from MQTT

    def control(self, w: Worker, topic: str, payload: bytes) -> None:
        try:
            req = parse_control(payload, where=f"control message on {topic}")
        except ProtocolError as e:
            self.outbox.error(str(e), payload=payload)
            if isinstance(e, schema.SchemaError) and e.action == "create" and e.uuid and w.modules.find(e.uuid) is None:
                # the orchestrator placed it: end its record with why (docs/protocol.md, "Delete and exited")
                rec = ModuleRecord(-1, e.uuid, e.uuid, schema.ModuleCreate(), [])
                self.publish_exited(w, rec, exit_status("error", None, f"create refused by the node: {e.detail}"))
            return
        if req is None:
            return
        if req.action == "create":
            self._create(w, req, payload)
        else:
            self._delete(w, req, payload)

    def _create(self, w: Worker, req: ControlRequest, raw: bytes) -> None:
        if w.modules.find(req.uuid) is not None:
            self.outbox.error(f"create: module {req.uuid} already exists on runtime {w.name}", payload=raw)
            return
        if w.state in (WorkerState.FATAL, WorkerState.STOPPED, WorkerState.STOPPING):
            self.outbox.error(f"create of module {req.uuid}: runtime {w.name} is {w.state.value}", payload=raw)
            return
        index = w.modules.free_index()
        if index is None:
            self.outbox.error(f"create of module {req.uuid}: runtime {w.name} is full (max_nmodules {w.max_nmodules})", payload=raw)
            return
        create = req.create
        assert create is not None
        rec = ModuleRecord(index, req.uuid, create.name or req.uuid, create, create.grants)
        w.modules.add(rec)
        w.logger.info("create module %s (%s) in slot %d", rec.name, rec.uuid, index)
        if w.ep is None:
            rec.pending_create = True  # worker in BACKOFF: delivered when it is back
        else:
            self._send_create(w, rec)

    def _delete(self, w: Worker, req: ControlRequest, raw: bytes) -> None:
        rec = w.modules.find(req.uuid)
        if rec is None:
            self.outbox.error(f"delete: unknown module {req.uuid} on runtime {w.name}", payload=raw)
            return
        rec.deleting = True
        w.logger.info("delete module %s (%s)", rec.name, rec.uuid)
        if rec.pending_create or w.ep is None:
            w.modules.pop(rec.index)
            self.publish_exited(w, rec, exit_status("deleted", None, None))
            return
        self.router.send(w, messages.ctrl(rec.index), messages.MGR_DELETE)

    def _send_create(self, w: Worker, rec: ModuleRecord) -> None:
        rec.create.index = rec.index
        raw = schema.encode(rec.create)
        limit = w.ep.tx.max_payload if w.ep is not None else None
        if limit is not None and len(raw) > limit:
            # Regression (chaos fuzz): such a create stayed pending forever, silently
            w.modules.pop(rec.index)
            self.outbox.error(f"create of module {rec.uuid}: the message is {len(raw)} bytes, more than a worker "
                              f"takes ({limit} bytes); refused", payload=raw)
            self.publish_exited(w, rec, exit_status("error", None, f"create message of {len(raw)} bytes is larger than {limit} bytes"))
            return
        if not self.router.send(w, messages.ctrl(rec.index), messages.MGR_CREATE, raw):
            rec.pending_create = True

    def send_pending(self, w: Worker) -> None:
        """After a (re)start: deliver the creates that waited for the worker."""
        for rec in w.modules:
            if rec.pending_create:
                rec.pending_create = False
                self._send_create(w, rec)

    # ------------------------------------------------------------------ reports from workers

    def exited(self, w: Worker, index: int, payload: bytes) -> None:
        """RT_EXITED: the module in slot `index` ended; its channels close, the orchestrator hears it."""
        rec = w.modules.pop(index)
        try:
            body = orjson.loads(payload) if payload else {}
            if not isinstance(body, dict):
                raise ValueError("not an object")
        except ValueError as e:
            w.logger.error("exited message of module %d is not a JSON object (%s)", index, e)
            body = {}
        self.router.close_module(w.slot, index)
        if rec is None:
            w.logger.error("exited message for empty module slot %d", index)
            return
        rs = body.get("status")
        st: dict[str, Any] = rs if isinstance(rs, dict) else {}
        status = exit_status(str(st.get("reason") or "exited"), st.get("code"), st.get("error"))
        if self.stop_mode == "restart" and status["reason"] == "killed":
            # a graceful stop for a restart keeps the module resurrectable: no `exited`; the
            # runtime's delete makes it killed (K) at the orchestrator, which re-creates it when we are back
            w.logger.info("module %s (%s) stopped for the restart: resurrectable", rec.name, rec.uuid)
            return
        extra = {k: v for k, v in body.items() if k not in ("status", "uuid", "type")}
        self.publish_exited(w, rec, status, extra)

    def publish_exited(self, w: Worker, rec: ModuleRecord, status: dict[str, Any], extra: dict[str, Any] | None = None) -> None:
        data: dict[str, Any] = {"type": "module", "uuid": rec.uuid, "name": rec.name}
        data.update(extra or {})
        data["status"] = status
        w.logger.info("module %s (%s) exited: %s", rec.name, rec.uuid, status)
        self.outbox.publish(self.outbox.topics.control(w.uuid), encode(envelope("exited", data)), 1)

    def worker_died(self, w: Worker, code: int) -> None:
        """The modules of a dead worker: re-created at its restart (`fault_crash: restart`) or exited."""
        for rec in w.modules:
            restart = (rec.create.margs.fault_crash == "restart"
                       and w.state is WorkerState.BACKOFF and not rec.deleting)
            if restart:
                rec.pending_create = True
                w.logger.warning("module %s (%s) was on the dead worker: fault_crash=restart, re-created at restart", rec.name, rec.uuid)
            else:
                w.modules.pop(rec.index)
                self.publish_exited(w, rec, exit_status("crashed", None, f"worker process of runtime {w.name} died (exit {code})"))

    def worker_stopped(self, w: Worker) -> None:
        """A worker ended by the node's stop: with "end", modules it did not report are reported killed;
        with "restart" they stay alive at the orchestrator until the runtime's delete makes them killed."""
        for rec in w.modules:
            w.modules.pop(rec.index)
            self.router.close_module(w.slot, rec.index)
            if self.stop_mode == "end":
                self.publish_exited(w, rec, exit_status("killed", None, "the node stopped (end of its modules)"))
            else:
                w.logger.info("module %s (%s) stopped for the restart: resurrectable", rec.name, rec.uuid)

    def runtime_fatal(self, w: Worker) -> None:
        for rec in w.modules:
            w.modules.pop(rec.index)
            self.publish_exited(w, rec, exit_status("crashed", None, f"runtime {w.name} is FATAL"))

