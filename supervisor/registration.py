"""Everything the node says to the orchestrator about itself and its runtimes (docs/protocol.md,
section 1): registration and re-registration after every reconnect, keepalives, deletes.

Registration until answered: the manager registers first; each registration is sent
again (backoff from 0.5 s, capped at BACKOFF_MAX) until the orchestrator answers it, so a node that
starts before its orchestrator registers as soon as the orchestrator is there. The runtimes go
once the manager is answered, or after `timeout` without an answer (the original SilverLine
orchestrator never answers a second registration of a manager uuid it has: its unique key fails).
A round is *settled* (keepalives start, systemd hears READY's successor status) when every runtime
was answered or waited `timeout`; unanswered ones are still asked. One log line per state change:
waiting -> unanswered (after `timeout`) -> registered / refused; retries are debug lines.

The orchestrator's presence messages (docs/orchestrator.md, "Presence") make the node register again
at once: `online` from an instance other than the one that answered, and a register request (an
error reply with `details.register`) for one of our uuids. A refusal with `details.reason:
"duplicate"` (our identity is alive under another process) ends the node (exit status 4), unless
the holder is on this host and will expire (`details.retry_after`): then the node asks once more
after that (its own earlier run, gone without a stop) and ends only if refused again. Nothing
here blocks: the supervisor's loop feeds messages in and calls `tick()`.
"""
from __future__ import annotations

import logging
import os
import platform
import socket
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from common.wire import ProtocolError, decode, encode, envelope
from supervisor.outbox import Outbox
from supervisor.process import ProcessOps
from supervisor.states import WorkerState
from supervisor.workers import Worker

log = logging.getLogger("mgr")

BACKOFF_FIRST = 0.5  # seconds before the first repeat of an unanswered registration
DUPLICATE_WAIT_MAX = 300.0  # seconds: a duplicate refusal with a longer retry_after is final at once
DUPLICATE_WAIT_MARGIN = 1.0  # seconds after the holder's expiry before asking again
BACKOFF_MAX = 3.0  # ... doubling up to this ("a few seconds": a node is registered within ~3 s of its orchestrator)


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


class Refused(Exception):
    """The orchestrator refused our identity: it is alive under another process."""


@dataclass
class Pending:
    uuid: str
    what: str  # "manager test" / "runtime test.echo"
    msg: dict[str, Any]
    state: str = "idle"  # idle -> waiting -> (unanswered) -> ok | refused
    first: float = 0.0  # first send of this round
    next_try: float = 0.0
    delay: float = BACKOFF_FIRST
    attempts: int = 0
    sent: float = 0.0  # last send
    ids: set[str] = field(default_factory=set)  # object_ids sent (an answer to any of them counts)
    waited_out: bool = False  # a duplicate refusal was waited out once (a second one is final)


class Registrar:
    """Drives the registration rounds (manager, then runtimes); a round restarts after every reconnect."""

    def __init__(self, *, timeout: float, send: Callable[[str, dict[str, Any]], None],
                 on_reply: Callable[[str, dict[str, Any]], None], on_done: Callable[[], None],
                 on_refused: Callable[[str], None] | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.timeout = timeout
        self.send = send  # (uuid, message): publish on proc/reg/{uuid}
        self.on_reply = on_reply  # (uuid, details) of an "ok" answer
        self.on_done = on_done  # the round settled
        self.on_refused = on_refused or (lambda why: None)
        self.clock = clock
        self.manager: Pending | None = None
        self.runtimes: list[Pending] = []
        self.phase = "idle"  # idle -> manager -> runtimes -> settled
        self.answered_by: str | None = None  # the orchestrator instance that answered (details.orchestrator)
        self.offline = False
        self._said_manager_unanswered = False

    @property
    def items(self) -> list[Pending]:
        return ([self.manager] if self.manager else []) + self.runtimes

    def start(self, manager: tuple[str, str, dict[str, Any]], runtimes: list[tuple[str, str, dict[str, Any]]]) -> None:
        """A new round; each item is (uuid, description, message)."""
        self.manager = Pending(*manager)
        self.runtimes = [Pending(*r) for r in runtimes]
        self.phase = "manager"
        self._said_manager_unanswered = False
        self._post(self.manager, self.clock())

    def _post(self, p: Pending, now: float) -> None:
        if p.state not in ("waiting", "unanswered"):
            p.state, p.first, p.delay = "waiting", now, BACKOFF_FIRST
        p.attempts += 1
        p.sent = now
        p.ids.add(str(p.msg.get("object_id")))
        p.next_try = now + p.delay
        p.delay = min(BACKOFF_MAX, p.delay * 2)
        if p.attempts > 1:
            log.debug("registration of %s: attempt %d", p.what, p.attempts)
        self.send(p.uuid, p.msg)

    def _find(self, object_id: Any) -> Pending | None:
        return next((p for p in self.items if str(object_id) in p.ids), None)

    def reply(self, msg: dict[str, Any]) -> bool:
        """An answer on a reg topic; True when it was for one of our registrations."""
        raw = msg.get("data")
        data: dict[str, Any] = raw if isinstance(raw, dict) else {}
        rd = data.get("details")
        details: dict[str, Any] = rd if isinstance(rd, dict) else {}
        p = self._find(msg.get("object_id"))
        if p is None:
            return False
        if p.state in ("ok", "refused"):
            return True  # an answer to an earlier attempt of the same registration
        now = self.clock()
        if data.get("result") == "ok":
            p.state = "ok"
            if isinstance(details.get("orchestrator"), str):
                self.answered_by = details["orchestrator"]
            self.offline = False
            late = f" ({p.attempts} attempts, {now - p.first:.1f}s)" if p.attempts > 1 else ""
            log.info("registered %s%s", p.what, late)
            self.on_reply(p.uuid, details)
        elif details.get("reason") == "duplicate":
            if self._wait_out(p, details, now):
                return True
            p.state = "refused"
            why = str(details.get("description") or details)
            log.critical("the orchestrator refused %s: %s", p.what, why)
            self.on_refused(f"{p.what}: {why}")
            return True
        else:
            p.state = "refused"
            log.error("orchestrator refused the registration of %s: %s", p.what, details or data)
        self._advance(now)
        return True

    def _wait_out(self, p: Pending, details: dict[str, Any], now: float) -> bool:
        """A duplicate refusal whose holder is on this host with a known expiry: most likely this
        node's own earlier run, ended without a stop (power cut, SIGKILL: no delete, no last will
        yet). Ask once more when that registration would have expired (`details.retry_after`); a
        live twin keeps sending keepalives and is refused again. True while waiting."""
        holder, left = details.get("holder"), details.get("retry_after")
        if (p.waited_out or not isinstance(holder, dict) or holder.get("host") != socket.gethostname()
                or not isinstance(left, (int, float)) or isinstance(left, bool) or not 0 <= left <= DUPLICATE_WAIT_MAX):
            return False
        p.waited_out = True
        p.state, p.next_try = "unanswered", now + float(left) + DUPLICATE_WAIT_MARGIN
        log.warning("the orchestrator refused %s: it is registered by pid %s on this host, not heard from by us "
                    "(an earlier run that did not stop?); asking again in %.1fs, when that registration expires",
                    p.what, holder.get("pid"), float(left) + DUPLICATE_WAIT_MARGIN)
        return True

    def again(self, why: str) -> None:
        """Register again at once: the orchestrator asked, or a new one announced itself."""
        now = self.clock()
        if self.manager is None:
            return
        if self.phase == "settled" or all(p.state in ("ok", "refused", "idle") for p in self.items):
            log.info("registering again: %s", why)
            self.manager.state = "idle"
            self.manager.attempts = 0
            for p in self.runtimes:
                p.state, p.attempts = "idle", 0
            self.phase = "manager"
            self._said_manager_unanswered = False
            self._post(self.manager, now)
            return
        for p in self.items:  # a round is going on: hurry its unanswered items
            if p.state in ("waiting", "unanswered") and now - p.sent >= 0.25:
                p.delay = BACKOFF_FIRST
                self._post(p, now)

    def tick(self) -> None:
        now = self.clock()
        for p in self.items:
            if p.state in ("waiting", "unanswered"):
                if p.state == "waiting" and now - p.first >= self.timeout:
                    p.state = "unanswered"
                    log.error("no answer from the orchestrator to the registration of %s within %.1fs; "
                              "asking again every %.0fs at most", p.what, self.timeout, BACKOFF_MAX)
                if now >= p.next_try:
                    self._post(p, now)
        self._advance(now)

    def next_deadline(self) -> float | None:
        times = [p.next_try for p in self.items if p.state in ("waiting", "unanswered")]
        times += [p.first + self.timeout for p in self.items if p.state == "waiting"]
        return min(times, default=None)

    def waiting_for(self) -> str | None:
        """What the node still waits for (sd_notify STATUS), or None when every registration is answered."""
        late = [p for p in self.items if p.state in ("waiting", "unanswered")]
        if not late:
            return None
        now = self.clock()
        oldest = max(now - p.first for p in late)
        return f"waiting for the orchestrator to answer {len(late)} registration(s) (for {oldest:.0f}s)"

    def _advance(self, now: float) -> None:
        m = self.manager
        if m is None:
            return
        if self.phase == "manager" and (m.state in ("ok", "refused") or now - m.first >= self.timeout):
            self.phase = "runtimes"
            for p in self.runtimes:
                self._post(p, now)
        if self.phase == "runtimes" and all(p.state in ("ok", "refused") or now - p.first >= self.timeout for p in self.runtimes):
            self.phase = "settled"
            self.on_done()
        if (m.state in ("waiting", "unanswered") and self.runtimes and all(p.state == "ok" for p in self.runtimes)
                and not self._said_manager_unanswered):
            # the original orchestrator: it answers runtimes, but a manager uuid it already has fails on
            # its unique key and is never answered. Say it once, stop asking.
            self._said_manager_unanswered = True
            m.state = "idle"
            log.warning("the orchestrator answered every runtime registration but not the manager's (%s); the original "
                        "SilverLine orchestrator does this for a manager uuid it already has. Going on: the runtimes "
                        "run modules; its manager record is the one from before", m.what)


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
                                   on_refused=on_refused)

    def will(self) -> tuple[str, bytes, int]:
        """The last will: the broker deletes the manager when the node vanishes. `last_will: true` tells it
        from a clean stop's delete (docs/reliability.md counts wills)."""
        msg = manager_message(self.uuid, self.name, "delete")
        msg["data"]["last_will"] = True
        return self.topics.reg(self.uuid), encode(msg), 2

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
        self.outbox.publish(self.topics.keepalive(w.uuid), encode(envelope("update", data)), 0)
        w.next_keepalive = time.monotonic() + w.ka_interval

    def next_deadline(self) -> float | None:
        times = [w.next_keepalive for w in self.workers if w.ka_interval > 0 and w.next_keepalive
                 and w.state in (WorkerState.RUNNING, WorkerState.STARTING)]  # what tick() sends
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
