"""The data path both ways: worker rings -> MQTT and loopback, MQTT -> worker rings; ring
backpressure; channel open/close with the access checks; what else a worker says (logs, keepalive
fields, profile data, exited reports, which go to module control)."""
from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import orjson

import ipc
from common.profile import decode_profile
from common.topics import ChannelError, resolve
from ipc import messages
from supervisor.channels import ChannelTable, SubscriptionChange
from supervisor.outbox import Outbox
from supervisor.workers import Worker

if TYPE_CHECKING:
    from supervisor.modules import ModuleControl

chlog = logging.getLogger("ch")

DATA_SEND_TIMEOUT = 1.0  # a worker that does not drain its ring for this long loses the message (logged)
DRAIN_ROUNDS = 64  # per worker and wake-up: one chatty worker must not starve MQTT and the others


class Router:
    def __init__(self, workers: list[Worker], outbox: Outbox, *, realm: str, access_control: bool,
                 heartbeat: bool) -> None:
        self.workers = workers
        self.outbox = outbox
        self.realm = realm
        self.access_control = access_control  # channels: only granted topics plus $SL/
        self.heartbeat = heartbeat  # --worker-timeout is on: note when each worker was last heard
        self.table = ChannelTable()
        self.modules: ModuleControl | None = None  # set by the supervisor (they call each other)
        self._draining: set[int] = set()  # worker slots being drained from inside write_to

    # ------------------------------------------------------------------ to workers

    def send(self, w: Worker, h1: int, h2: int, payload: bytes = b"", timeout: float = 5.0) -> bool:
        """A control message to a worker; False (logged) when it could not be delivered."""
        if w.ep is None:
            return False
        try:
            self._write_to(w, h1, h2, payload, timeout)
            return True
        except ipc.IPCError as e:
            w.logger.error("cannot send to worker: %s", e)
            return False

    def _write_to(self, w: Worker, h1: int, h2: int, payload: bytes, timeout: float) -> None:
        """Write into a worker's ring; while it is full, keep draining that worker's own ring.

        Regression (chaos fuzz, channel_open): the supervisor blocked on a full tx ring while the
        worker blocked on its full rx ring, each waiting for the other: progress only by timeouts,
        and the messages that timed out were lost. A worker never waits for us while we wait for it now.
        """
        deadline: float | None = None  # read the clock only once the ring is full (not on the message path)
        while True:
            ep = w.ep
            if ep is None:
                raise ipc.ClosedError(f"worker {w.name} is gone")
            try:
                ep.send(h1, h2, payload, 0)
                return
            except ipc.RingFullError:
                now = time.monotonic()
                if deadline is None:
                    deadline = now + timeout
                if now >= deadline:
                    raise
            if w.slot not in self._draining:  # not from inside a drain of this worker (loopback)
                self._draining.add(w.slot)
                try:
                    self.drain(w)
                finally:
                    self._draining.discard(w.slot)
            time.sleep(0.0002)

    def _deliver(self, slot: int, index: int, fd: int, payload: bytes) -> None:
        w = self.workers[slot]
        if w.ep is None:
            return
        try:
            self._write_to(w, index, fd, payload, DATA_SEND_TIMEOUT)
        except ipc.IPCError as e:
            chlog.error("%s: message for module %d channel %d lost: %s", w.name, index, fd, e)

    def from_mqtt(self, topic: str, payload: bytes) -> None:
        """A message on a channel topic: to every module that reads it."""
        readers = self.table.readers(topic)
        if not readers:
            chlog.debug("message on %s matches no channel", topic)
        for r in readers:
            self._deliver(r.slot, r.index, r.fd, payload)

    # ------------------------------------------------------------------ from workers

    def drain_all(self) -> None:
        for w in self.workers:
            ep = w.ep
            if ep is not None and ep.has_input():  # one C call per idle worker
                self.drain(w)

    def drain(self, w: Worker) -> None:
        for n in range(DRAIN_ROUNDS):
            if w.ep is None:
                return
            try:
                msgs = w.ep.drain()
            except ipc.IPCError as e:
                self._ring_corrupt(w, e)
                return
            if not msgs:
                if n and self.heartbeat:
                    w.last_heard = time.monotonic()
                return
            for msg in msgs:
                try:
                    self._from_worker(w, msg)
                except Exception:
                    w.logger.exception("error handling message %02x.%02x from the worker", msg.h1, msg.h2)

    def _ring_corrupt(self, w: Worker, e: Exception) -> None:
        """A worker's ring cannot be read (corrupt indexes or record): the worker is broken, not the node.

        Regression (chaos fuzz, ipc_records): the BadMessage used to end the supervisor's loop.
        SIGKILL the worker once; it is reaped and restarted with new rings like any crash.
        """
        if w.pid is not None and not w.kill_sent:  # once per process: it is dying
            self.outbox.error(f"runtime {w.name}: its IPC ring is corrupt ({e}); killing the worker, it restarts with new rings")
            w.kill()

    def _from_worker(self, w: Worker, msg: ipc.Message) -> None:
        h1, h2, payload = msg.h1, msg.h2, msg.payload
        index = h1 & messages.INDEX_MASK
        if not h1 & messages.CONTROL:
            self._publish_from(w, index, h2, payload)
        elif h2 == messages.RT_KEEPALIVE:
            w.booted = True  # the base class sends one keepalive when its loop starts
            try:
                fields = orjson.loads(payload)
                if isinstance(fields, dict):
                    w.ka_fields = fields
            except orjson.JSONDecodeError as e:
                w.logger.error("keepalive from the worker is not JSON: %s", e)
        elif h2 == messages.RT_LOG:
            level, text = messages.decode_log(payload)
            logging.getLogger(f"rt.{w.name}").log(level, "%s", text)
        elif h2 == messages.RT_MODLOG:
            level, text = messages.decode_log(payload)
            rec = w.modules.get(index)
            logging.getLogger(f"rt.{w.name}").log(level, "[%s] %s", rec.name if rec else f"#{index}", text)
        elif h2 == messages.RT_EXITED:
            assert self.modules is not None
            self.modules.exited(w, index, payload)
        elif h2 == messages.RT_OPEN:
            self._open_channel(w, index, payload)
        elif h2 == messages.RT_CLOSE:
            try:
                self._apply(self.table.close(w.slot, index, messages.decode_close(payload)))
            except (ipc.BadMessage, ChannelError) as e:
                self.outbox.error(f"runtime {w.name}: close channel: {e}", logger=chlog)
        elif h2 == messages.RT_PROFILE:
            self._profile(w, index, payload)
        else:
            w.logger.error("unknown message type %d from the worker (module %d)", h2, index)

    def _profile(self, w: Worker, index: int, payload: bytes) -> None:
        rec = w.modules.get(index)
        try:
            ptype, data = decode_profile(payload)
        except ValueError as e:
            w.logger.error("bad profile message for module %d: %s", index, e)
            return
        if rec is None:
            w.logger.error("profile data for empty module slot %d dropped", index)
            return
        self.outbox.publish(self.outbox.topics.profile(ptype, w.uuid, rec.uuid), data, 1)

    def _publish_from(self, w: Worker, index: int, fd: int, payload: bytes) -> None:
        try:
            topic, qos, local = self.table.route(w.slot, index, fd)
        except ChannelError as e:
            chlog.error("%s: %s (message of %d bytes dropped)", w.name, e, len(payload))
            return
        for slot, rindex, rfd in local:  # local receivers first: they are the cheaper, faster hop
            self._deliver(slot, rindex, rfd, payload)
        self.outbox.publish(topic, payload, qos)

    # ------------------------------------------------------------------ channels

    def _open_channel(self, w: Worker, index: int, payload: bytes) -> None:
        rec = w.modules.get(index)
        try:
            fd, flags, topic = messages.decode_open(payload)
            if rec is None:
                raise ChannelError(f"open channel for empty module slot {index}")
            mqtt_topic = resolve(topic, flags, realm=self.realm, module_uuid=rec.uuid,
                                 grants=rec.grants if self.access_control else None)
            self._apply(self.table.open(w.slot, index, fd, flags, mqtt_topic))
            chlog.debug("%s: module %s opened channel %d on %s (flags %#x)", w.name, rec.name, fd, mqtt_topic, flags)
        except (ipc.BadMessage, ChannelError) as e:
            who = f"module {rec.name} ({rec.uuid})" if rec else f"slot {index}"
            self.outbox.error(f"runtime {w.name}, {who}: channel refused: {e}", logger=chlog)

    def _apply(self, change: SubscriptionChange) -> None:
        if change.unsubscribe:
            chlog.debug("unsubscribe %s (its last reader closed)", change.unsubscribe)
            self.outbox.unsubscribe(change.unsubscribe)
        if change.subscribe:
            chlog.debug("subscribe %s (QoS %d)", *change.subscribe)
            self.outbox.subscribe(*change.subscribe)

    def close_module(self, slot: int, index: int) -> None:
        for change in self.table.close_module(slot, index):
            self._apply(change)

    def close_worker(self, slot: int) -> None:
        for change in self.table.close_worker(slot):
            self._apply(change)
