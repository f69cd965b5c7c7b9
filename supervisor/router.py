"""The data path both ways: worker rings -> MQTT and loopback, MQTT -> worker rings; per-worker
backpressure (backlog.py: a full ring holds that worker's messages, never the loop); channel
open/close with the access checks; what else a worker says (logs, keepalive fields, profile data).
Exited reports and registration reports go to the callbacks given at construction (module control,
registration): the router imports neither."""
from __future__ import annotations

import logging
import time
from typing import Callable

import orjson

import ipc
from common.profile import decode_profile
from common.topics import ChannelError, resolve
from ipc import messages
from supervisor.backlog import RETRY_MAX
from supervisor.channels import ChannelTable, SubscriptionChange
from supervisor.outbox import Outbox
from supervisor.workers import Worker

chlog = logging.getLogger("ch")
log = logging.getLogger("mgr")

DRAIN_ROUNDS = 64  # per worker and wake-up: one chatty worker must not starve MQTT and the others

Report = Callable[[Worker, int, bytes], None]  # (worker, module index, payload)


class Router:
    def __init__(self, workers: list[Worker], outbox: Outbox, *, realm: str, access_control: bool,
                 heartbeat: bool, on_exited: Report, on_register: Report, stdio_per_node: bool = False,
                 on_profile: Callable[[str, bytes], None] | None = None) -> None:
        self.workers = workers
        self.outbox = outbox
        self.realm = realm
        self.access_control = access_control  # channels: only granted topics plus $SL/
        self.stdio_per_node = stdio_per_node  # stdio on `proc/stdio/RUNTIME/MODULE` (docs/protocol.md, "Stdio")
        self.heartbeat = heartbeat  # --worker-timeout is on: note when each worker was last heard
        self.on_exited = on_exited  # RT_EXITED: module control (modules.py)
        self.on_register = on_register  # RT_REGISTER: registration.py
        self.on_profile = on_profile  # a profile message: the result spool (delivery.py); None: publish it
        self.table = ChannelTable()
        self.waiting: set[int] = set()  # slots of the workers with a backlog (the loop retries them)

    # ------------------------------------------------------------------ to workers

    def send(self, w: Worker, h1: int, h2: int, payload: bytes = b"") -> bool:
        """A control message to a worker: written now, or held in its backlog when its ring is full
        (then written in order once there is room). False (logged) when it cannot be delivered:
        no worker process, or a message larger than its ring takes."""
        if w.ep is None:
            return False
        try:
            self._write(w, h1, h2, payload, True)
            return True
        except ipc.IPCError as e:
            w.logger.error("cannot send to worker: %s", e)
            return False

    def _write(self, w: Worker, h1: int, h2: int, payload: bytes, control: bool) -> None:
        """Into the worker's ring, or behind the messages that already wait for it; never waits.

        Regression (chaos fuzz, channel_open): the supervisor blocked on a full tx ring while the
        worker blocked on its full rx ring, each waiting for the other. And while it blocked (up to
        5 s) every other worker and MQTT waited too. Now a full ring only holds that worker's messages.
        """
        b = w.backlog
        if not b.held:
            try:
                w.ep.send(h1, h2, payload, 0)  # type: ignore[union-attr]  # callers checked w.ep
                w.to_worker, w.to_worker_bytes = w.to_worker + 1, w.to_worker_bytes + len(payload)
                return
            except ipc.RingFullError:
                pass
        if len(payload) > w.ep.tx.max_payload:  # type: ignore[union-attr]
            raise ipc.MessageTooLarge(f"{len(payload)} bytes is more than the ring of worker {w.name} takes")
        if not control and not b.room_for(payload):
            b.dropped += 1
            if not b.said_dropped:
                b.said_dropped = True
                chlog.error("%s: %d bytes wait for this worker, which does not read its input; its channel messages are "
                            "refused until it catches up (counted in its keepalive's backpressure.dropped)", w.name, b.bytes)
            return
        if b.hold(h1, h2, payload, time.monotonic()):
            self.waiting.add(w.slot)
            log.log(logging.WARNING if b.loud else logging.DEBUG,
                    "runtime %s: its input ring is full; its messages wait in order (the other runtimes go on)", w.name)

    def _flush(self, w: Worker, now: float) -> None:
        """Write what waits for `w` while its ring takes it."""
        b, ep = w.backlog, w.ep
        if ep is None:
            return
        n = len(b)
        while b:
            h1, h2, payload = b.head()
            try:
                ep.send(h1, h2, payload, 0)
            except ipc.RingFullError:
                b.retried(now, len(b) < n)
                return
            except ipc.IPCError as e:  # closed, or a doorbell failure: the worker is going away
                w.logger.error("cannot send to worker: %s", e)
                b.retried(now, False)
                return
            b.pop()
            w.to_worker, w.to_worker_bytes = w.to_worker + 1, w.to_worker_bytes + len(payload)
        loud, (since, count, peak) = b.loud, b.end()
        self.waiting.discard(w.slot)
        log.log(logging.INFO if loud else logging.DEBUG, "runtime %s: its ring has room again after %.3fs (%d messages waited, at most %d bytes at once)",
                 w.name, now - since, count, peak)

    def retry(self, now: float) -> None:
        """The loop's call, every wake-up while some worker has a backlog: try each (one C call when its
        ring is still full). The retry timer only bounds how long the loop sleeps meanwhile."""
        for slot in list(self.waiting):
            self._flush(self.workers[slot], now)

    def retry_in(self, now: float) -> float:
        """Seconds until the next retry is due (the loop's select timeout while something waits)."""
        due = min((self.workers[s].backlog.retry_at for s in self.waiting), default=now + RETRY_MAX)
        return max(0.0, due - now)

    def _deliver(self, slot: int, index: int, fd: int, payload: bytes) -> None:
        w = self.workers[slot]
        if w.ep is None:
            return
        try:
            self._write(w, index, fd, payload, False)
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
                if n and (self.heartbeat or w.backlog.held):
                    now = time.monotonic()
                    w.last_heard = now
                    if w.backlog.held:  # it talks, so it runs: maybe it made room
                        self._flush(w, now)
                return
            w.from_worker += len(msgs)
            w.from_worker_bytes += sum(len(m.payload) for m in msgs)
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
            self.on_exited(w, index, payload)
        elif h2 == messages.RT_OPEN:
            self._open_channel(w, index, payload)
        elif h2 == messages.RT_CLOSE:
            try:
                self._apply(self.table.close(w.slot, index, messages.decode_close(payload)))
            except (ipc.BadMessage, ChannelError) as e:
                self.outbox.error(f"runtime {w.name}: close channel: {e}", logger=chlog)
        elif h2 == messages.RT_PROFILE:
            self._profile(w, index, payload)
        elif h2 == messages.RT_REGISTER:
            self.on_register(w, index, payload)
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
        topic = self.outbox.topics.profile(ptype, w.uuid, rec.uuid)
        if self.on_profile is not None:
            self.on_profile(topic, data)
        else:
            self.outbox.publish(topic, data, 1)

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
                                 grants=rec.grants if self.access_control else None,
                                 stdio_runtime=w.uuid if self.stdio_per_node else None)
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
        """The worker's process is gone: its channels close, what waited for it goes with it."""
        w = self.workers[slot]
        if w.backlog:
            n = w.backlog.clear()
            self.waiting.discard(slot)
            w.logger.warning("%d messages that waited for the worker are lost with it", n)
        for change in self.table.close_worker(slot):
            self._apply(change)
