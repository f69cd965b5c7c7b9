"""Results from the runtimes to a collector, through the spool (spool.py; docs/benchmarking.md, "Delivery").

The router hands every profile message to `offer`; the supervisor's loop calls `flush` right
before it flushes MQTT (commit, then publish), and so does any other publish of the node (Outbox.before),
so a module's profile still leaves before its `exited`; `on_connect` on every broker connection (all held
results are sent again), `tick` on its timers (results due again, RESEND_BATCH at a time) and
`ack` for the messages on its runtimes' `proc/stored/RUNTIME` topics. A spool that cannot write
(the node's disk is full) says so once per errno and publishes without it meanwhile.
"""
from __future__ import annotations

import errno
import logging
import time

from common.results import decode_ack, result_id, stored_topic
from supervisor.outbox import Outbox
from supervisor.spool import Spool

log = logging.getLogger("mgr")

RESEND_BATCH = 200  # results published again per timer turn at most (the rest on the next turns)


class Delivery:
    def __init__(self, spool: Spool | None, outbox: Outbox, realm: str, runtime_uuids: list[str]) -> None:
        self.spool = spool
        self.outbox = outbox
        self.topics = {stored_topic(realm, u) for u in runtime_uuids} if spool is not None else set()
        self.failing: int | None = None  # errno while the spool cannot write
        self.pending = False  # results added since the last flush
        self._flushing = False
        if spool is not None:
            outbox.before = lambda: self.flush(time.monotonic())  # in order: results before what follows them

    def open(self) -> None:
        if self.spool is None:
            log.info("no result spool (--no-spool or --no-state): results go to the broker only")
            return
        try:
            n = self.spool.open()
        except OSError as e:
            log.error("result spool %s cannot be opened: %s; the node runs without it (results go to the broker "
                      "only, a restart before a collector stores them loses them): fix its directory or give "
                      "--state-dir another one", self.spool.path, e)
            self.spool.close()
            self.spool, self.topics = None, set()
            return
        log.info("result spool %s: %d results held for a collector's acknowledgement%s", self.spool.path, n,
                 ", sent again once connected" if n else "")

    def close(self) -> None:
        if self.spool is not None:
            self.spool.close()

    def offer(self, topic: str, payload: bytes) -> None:
        """A profile message from a runtime: spooled (published by `flush`), or published now."""
        if self.spool is not None:
            try:
                if self.spool.add(result_id(topic, payload), topic, payload):
                    self.pending = True
                    return
            except OSError as e:
                self._cannot_write(e)
        self.outbox.publish(topic, payload, 1)

    def flush(self, now: float) -> None:
        if not self.pending or self.spool is None or self._flushing:
            return
        self.pending = False
        self._flushing = True
        try:
            self._flush(now)
        finally:
            self._flushing = False

    def _flush(self, now: float) -> None:
        assert self.spool is not None
        try:
            out = self.spool.commit(now)
        except OSError as e:  # not durable: publish them anyway, they stay held (sent again until acknowledged)
            self._cannot_write(e)
            out = self.spool.commit(now, sync=False)
        else:
            if self.failing is not None:
                log.info("result spool %s writes again", self.spool.path)
                self.failing = None
        for topic, payload in out:
            self.outbox.publish(topic, payload, 1)

    def on_connect(self, now: float) -> None:
        if self.spool is not None:
            n = self.spool.resend_all(now)
            if n:
                log.info("sending again the %d results no collector has acknowledged yet", n)

    def tick(self, now: float) -> None:
        if self.spool is None or self.outbox.link is None or not self.outbox.link.connected:
            return
        for topic, payload in self.spool.due(now, RESEND_BATCH):
            self.outbox.publish(topic, payload, 1)

    def next_deadline(self) -> float | None:
        return self.spool.next_due() if self.spool is not None else None

    def ack(self, topic: str, payload: bytes) -> bool:
        """True when `topic` is one of our ack topics (handled); else False."""
        if topic not in self.topics or self.spool is None:
            return False
        msg = decode_ack(payload)
        if msg is None:
            log.warning("ack on %s is not {collector, ids}: ignored (%d bytes)", topic, len(payload))
            return True
        try:
            n = self.spool.ack(msg[1])
        except OSError as e:
            self._cannot_write(e)
            return True
        log.debug("collector %s stored %d of our results (%d named); %d held", msg[0], n, len(msg[1]), len(self.spool.held))
        return True

    def _cannot_write(self, e: OSError) -> None:
        code = e.errno or 0
        if self.failing == code:
            return
        self.failing = code
        assert self.spool is not None
        log.error("result spool %s cannot write: %s %s; results are published without it meanwhile (a node "
                  "restart before a collector stores them loses them): free space (df %s)", self.spool.path,
                  errno.errorcode.get(code, code), e.strerror or e, self.spool.path)

    def status_text(self) -> str:
        """For the node's STATUS: the results waiting for a collector's ack ("" when none)."""
        if self.spool is None or not self.spool.held:
            return ""
        return f"{len(self.spool.held)} results spooled for a collector ({self.spool.bytes} bytes)"

    def report(self) -> dict[str, int]:
        return self.spool.report() if self.spool is not None else {}
