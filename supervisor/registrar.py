"""The registration rounds (docs/protocol.md, section 1): the manager first, then the runtimes; every
registration asked again until the orchestrator answers it: backoff from 1 s doubling to BACKOFF_MAX
(3 s) while it waits, then, once it is unanswered past `timeout`, doubling on to UNANSWERED_MAX (30 s);
every delay is jittered (x 0.75-1.25) so a fleet that reconnected at once does not repeat in step. A
busy or original orchestrator that answers slowly (or never: a repeated manager registration) is
therefore not flooded with repeats (issue #26: 57,517 re-sends from 1,000 nodes in 60 s at a flat
3 s); ours says `online` when it (re)starts, which makes every node ask again at once (`again`).
Pure logic over a `send` callback and a clock; NodeRegistration (registration.py) feeds it.

The runtimes go once the manager is answered, or after `timeout` without an answer (the original
SilverLine orchestrator never answers a second registration of a manager uuid it has: its unique
key fails). A runtime whose registration waits for its worker's report (`Runtime.REPORTS_REGISTRATION`:
the benchmarking runtimes' engine list) is *held*: it is sent when the report arrives, or after
`report_wait` (15 s) without it, then built from what the supervisor knows, and sent again with the report
when that comes. A round is *settled* (keepalives start) when every runtime was answered or waited
`timeout` since it was sent; unanswered ones are still asked. One log line per state change:
waiting -> unanswered (after `timeout`) -> registered / refused; retries are debug lines.
"""
from __future__ import annotations

import logging
import random
import socket
import time
from dataclasses import dataclass, field
from typing import Any, Callable

log = logging.getLogger("mgr")

BACKOFF_FIRST = 1.0  # seconds before the first repeat of an unanswered registration (0.5 before: a busy
# orchestrator answering a storm in ~1 s drew a repeat from most of the fleet)
DUPLICATE_WAIT_MAX = 300.0  # seconds: a duplicate refusal with a longer retry_after is final at once
DUPLICATE_WAIT_MARGIN = 1.0  # seconds after the holder's expiry before asking again
BACKOFF_MAX = 3.0  # ... doubling up to this while the registration waits (< `timeout` since its first send)
UNANSWERED_MAX = 30.0  # ... and up to this once it is unanswered (a busy, away or original orchestrator)
JITTER = 0.25  # every delay x (1 - JITTER .. 1 + JITTER)
REPORT_WAIT = 15.0  # seconds a runtime's registration waits for its worker's report at most (a slow or stuck setup)


class Refused(Exception):
    """The orchestrator refused our identity: it is alive under another process."""


@dataclass
class Pending:
    uuid: str
    what: str  # "manager test" / "runtime test.echo"
    msg: dict[str, Any] | None  # None: held until the worker's report (or `report_wait`)
    state: str = "idle"  # idle -> (held) -> waiting -> (unanswered) -> ok | refused
    first: float = 0.0  # first send of this round
    next_try: float = 0.0
    delay: float = BACKOFF_FIRST
    attempts: int = 0
    sent: float = 0.0  # last send
    ids: set[str] = field(default_factory=set)  # object_ids sent (an answer to any of them counts)
    waited_out: bool = False  # a duplicate refusal was waited out once (a second one is final)
    wait_end: float = 0.0  # when that wait ends: a duplicate refusal before then answers an attempt sent before it
    held_until: float = 0.0  # state "held": sent without the report at this time


class Registrar:
    """Drives the registration rounds (manager, then runtimes); a round restarts after every reconnect."""

    def __init__(self, *, timeout: float, send: Callable[[str, dict[str, Any]], None],
                 on_reply: Callable[[str, dict[str, Any]], None], on_done: Callable[[], None],
                 on_refused: Callable[[str], None] | None = None, clock: Callable[[], float] = time.monotonic,
                 unreported: Callable[[str], dict[str, Any]] | None = None, report_wait: float = REPORT_WAIT,
                 rng: Callable[[], float] = random.random) -> None:
        self.timeout = timeout
        self.rng = rng  # uniform in [0, 1): the jitter
        self.send = send  # (uuid, message): publish on proc/reg/{uuid}
        self.on_reply = on_reply  # (uuid, details) of an "ok" answer
        self.on_done = on_done  # the round settled
        self.on_refused = on_refused or (lambda why: None)
        self.unreported = unreported  # (uuid) -> the registration of a held runtime, built without the report
        self.report_wait = report_wait
        self.clock = clock
        self.manager: Pending | None = None
        self.runtimes: list[Pending] = []
        self.phase = "idle"  # idle -> manager -> runtimes -> settled
        self.answered_by: str | None = None  # the orchestrator instance that answered (details.orchestrator)
        self.offline = False
        self._said_manager_unanswered = False
        self._hurried_at = float("-inf")  # the last `again` while a round went on

    @property
    def items(self) -> list[Pending]:
        return ([self.manager] if self.manager else []) + self.runtimes

    def start(self, manager: tuple[str, str, dict[str, Any]], runtimes: list[tuple[str, str, dict[str, Any] | None]]) -> None:
        """A new round; each item is (uuid, description, message); a runtime's message None: held."""
        self.manager = Pending(*manager)
        self.runtimes = [Pending(*r) for r in runtimes]
        self.phase = "manager"
        self._said_manager_unanswered = False
        self._post(self.manager, self.clock())

    def _post(self, p: Pending, now: float) -> None:
        if p.msg is None:  # its worker has not reported yet
            if p.state != "held":
                p.state, p.held_until = "held", now + self.report_wait
                log.debug("registration of %s: waiting for its worker's report", p.what)
            return
        if p.state not in ("waiting", "unanswered"):
            p.state, p.first, p.delay = "waiting", now, BACKOFF_FIRST
        p.attempts += 1
        p.sent = now
        p.ids.add(str(p.msg.get("object_id")))
        p.next_try = now + p.delay * (1.0 - JITTER + 2 * JITTER * self.rng())
        p.delay = min(BACKOFF_MAX if now - p.first < self.timeout else UNANSWERED_MAX, p.delay * 2)
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
            if p.waited_out and now < p.wait_end:
                # nothing is sent while a refusal is waited out: this answers an attempt sent just
                # before it (a re-send or a hurried round a moment earlier), not the one after the wait
                log.debug("registration of %s: a second duplicate refusal while waiting it out, ignored", p.what)
                return True
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
        p.wait_end = p.next_try
        log.warning("the orchestrator refused %s: it is registered by pid %s on this host, not heard from by us "
                    "(an earlier run that did not stop?); asking again in %.1fs, when that registration expires",
                    p.what, holder.get("pid"), float(left) + DUPLICATE_WAIT_MARGIN)
        return True

    def report(self, uuid: str, msg: dict[str, Any]) -> None:
        """Runtime `uuid`'s registration with its worker's report: sent now when it was held, sent
        again when the orchestrator has (or is asked) one that differs; kept for later otherwise."""
        p = next((r for r in self.runtimes if r.uuid == uuid), None)
        if p is None:
            return
        old, p.msg = p.msg, msg
        if p.state == "held":
            self._post(p, self.clock())
        elif p.state in ("waiting", "unanswered", "ok") and old is not None and old.get("data") != msg.get("data"):
            log.info("registering %s again: its worker reported what it has", p.what)
            if p.state == "ok":
                p.state, p.attempts = "idle", 0
            p.delay = BACKOFF_FIRST
            self._post(p, self.clock())
        self._advance(self.clock())

    def drop(self, uuid: str) -> None:
        """Runtime `uuid` leaves the round (its worker is FATAL)."""
        self.runtimes = [r for r in self.runtimes if r.uuid != uuid]
        self._advance(self.clock())

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
        self._hurried_at = now  # what was sent before may have been lost (see `_advance`)
        for p in self.items:  # a round is going on: hurry its unanswered items
            if p.state not in ("waiting", "unanswered") or p.waited_out:
                continue  # (a duplicate refusal is waited out as the orchestrator said)
            p.delay = BACKOFF_FIRST
            if now - p.sent >= 0.25:
                self._post(p, now)
            else:  # sent a moment ago (maybe before the orchestrator listened): once more shortly
                p.next_try = min(p.next_try, p.sent + 0.25)

    def unanswered(self) -> bool:
        """Whether a registration of the round waits for its answer."""
        return any(p.state in ("waiting", "unanswered") for p in self.items)

    def tick(self) -> None:
        now = self.clock()
        for p in self.items:
            if p.state == "held" and now >= p.held_until and self.unreported is not None:
                p.msg = self.unreported(p.uuid)
                log.warning("%s: its worker has not reported within %.1fs; registering it without the report, "
                            "again with it when it comes", p.what, self.report_wait)
                self._post(p, now)
            elif p.state in ("waiting", "unanswered"):
                if p.state == "waiting" and now - p.first >= self.timeout:
                    p.state = "unanswered"
                    log.error("no answer from the orchestrator to the registration of %s within %.1fs; "
                              "asking again, less and less often (every %.0fs at most)", p.what, self.timeout, UNANSWERED_MAX)
                if now >= p.next_try:
                    self._post(p, now)
        self._advance(now)

    def next_deadline(self) -> float | None:
        times = [p.next_try for p in self.items if p.state in ("waiting", "unanswered")]
        times += [p.first + self.timeout for p in self.items if p.state == "waiting"]
        times += [p.held_until for p in self.items if p.state == "held"]
        return min(times, default=None)

    def waiting_for(self) -> str | None:
        """What the node still waits for (sd_notify STATUS), or None when every registration is answered."""
        late = [p for p in self.items if p.state in ("waiting", "unanswered")]
        held = sum(p.state == "held" for p in self.items)
        if not late:
            return f"waiting for {held} worker(s) to report before registering" if held else None
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
        if self.phase == "runtimes" and all(p.state in ("ok", "refused") or (p.state != "held" and now - p.first >= self.timeout)
                                            for p in self.runtimes):
            self.phase = "settled"
            self.on_done()
        if (m.state in ("waiting", "unanswered") and self.runtimes and all(p.state == "ok" for p in self.runtimes)
                and m.sent >= self._hurried_at and not self._said_manager_unanswered):
            # the original orchestrator: it answers runtimes, but a manager uuid it already has fails on
            # its unique key and is never answered. Say it once, stop asking.
            self._said_manager_unanswered = True
            m.state = "idle"
            log.warning("the orchestrator answered every runtime registration but not the manager's (%s); the original "
                        "SilverLine orchestrator does this for a manager uuid it already has. Going on: the runtimes "
                        "run modules; its manager record is the one from before", m.what)
