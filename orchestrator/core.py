"""The orchestrator's state machine: every MQTT message of docs/protocol.md goes
through `Orchestrator.handle(topic, payload)`; time goes through `tick(now)`.

It has no I/O of its own besides the store: outgoing messages go to the `publish`
callback *after* the decision's transaction committed (a crash never announces a state
the store does not have). Not thread-safe: the service's decision thread owns it (REST
reads use the snapshots it publishes, reads.py).

Rules (docs/protocol.md, "Orchestrator rules"; ours marked):
- a create whose module uuid is not dead is refused; a registration whose uuid is alive
  under another name (or another manager) is refused; the same name again is a refresh
  (**ours**: a node re-registering after a broker reconnect keeps its modules);
- **ours** (presence.py): online/offline announcements, register requests to nodes whose
  keepalives come for runtimes not known or dead, and no identity alive under two processes;
- `parent` is looked up by uuid, then name, then uuid suffix (alive runtimes only);
  a `create_batch` may name it once as `data.parent` (the original CLI does; a module's
  own `parent` wins); without `parent` the scheduler picks (see scheduler.py), matching
  apis by our names and the original's alike (common/apis.py);
- a runtime with `max_nmodules` modules running queues new ones (FIFO) and starts the
  oldest when one exits; **ours**: a benchmark campaign's cells go out up to the campaign's
  window ahead to a runtime that registered `metadata.queue_ahead` (campaigns/hooks.py `ahead`);
- a runtime that is deleted or misses 3 keepalive intervals is dead: running modules
  become killed (K), queued and exiting ones dead; re-registering the same uuid
  resurrects it and re-creates its killed modules in their original order. Only a runtime
  that has sent a keepalive is expired that way: the original's runtimes never send one,
  they stay alive until their delete or their manager's last will;
- a module deleted but never reported `exited` (the original's minimal runtime ignores
  deletes) is marked dead after `delete_timeout` seconds, with a reason saying so;
- a deleted manager deletes its runtimes;
- **ours**: a restarted orchestrator does not know which of the creates it committed last were
  published before it died: a module it has running that a runtime's keepalive (received
  `RECONCILE_AFTER` s or more after the restart: fresh, QoS 0, with children no older than the
  worker's report) does not list is created again on that runtime (a node refuses a create of a
  module it has, so a second copy of a create that did arrive changes nothing).
Every refused request is reported on `{realm}/proc/log` and on `{realm}/proc/log/orchestrator`
(where the original orchestrator reports) with a description and the data.

The parts live in their own files (mixins over state.py's `State`): placement.py, liveness.py,
control.py; this file composes them, loads the state and routes messages and time.
"""
from __future__ import annotations

import logging
import time
from typing import Callable, Sequence

from common.apis import with_aliases
from common import schema
from common.wire import ProtocolError, Topics, decode, require
from orchestrator.campaigns import Campaigns, CampaignStore
from orchestrator.deployments import ACTIONS as DEPLOY_ACTIONS
from orchestrator.control import Control
from orchestrator.deployments import Deployments
from orchestrator.history import History
from orchestrator.metrics import DECISIONS
from orchestrator.guard import Guard
from orchestrator.liveness import RECONCILE_AFTER, Liveness
from orchestrator.model import ALIVE, EXITING, KILLED, MISSED_KEEPALIVES, QUEUED, RUNTIME, Mod
from orchestrator.presence import Presence
from orchestrator.reads import Snapshots
from orchestrator.scheduler import Scheduler
from orchestrator.state import Publish, Refused
from orchestrator.store import Store

__all__ = ["DELETE_TIMEOUT", "RECONCILE_AFTER", "Orchestrator", "Publish", "Refused"]

log = logging.getLogger("orch")

DELETE_TIMEOUT = 30.0  # seconds a deleted module may stay exiting (E) before it is marked dead
DEATHS_REPORTED = 20  # runtimes found dead in one tick reported one by one; more are one summary report
REFUSALS_SUMMARY = 60.0  # seconds between two summaries of the keepalives refused quietly (dead runtimes)


class Orchestrator(Control, Liveness):
    """Registration, keepalive, scheduling, queueing and resurrection over one Store."""

    def __init__(self, store: Store, publish: Publish, *, realm: str = "realm", ka_interval: float = 5.0,
                 delete_timeout: float = DELETE_TIMEOUT,
                 clock: Callable[[], float] = time.monotonic, wallclock: Callable[[], float] = time.time,
                 instance: str | None = None) -> None:
        self.store = store
        self.publish = publish
        self.topics = Topics(realm)
        self.ka_interval = ka_interval
        self.delete_timeout = delete_timeout
        self.clock = clock
        self.wallclock = wallclock
        self.nodes = {}
        self.mods = {}
        self.scheduler = Scheduler()
        self.presence = Presence(realm, instance=instance, clock=clock, wallclock=wallclock)
        self._out = []
        self._strangers = {}  # keepalives seen from runtimes not registered
        self._deleting = {}  # module uuid (state E) -> clock time its exited is overdue
        self._prefix = f"{realm}/proc/"
        self.campaigns = Campaigns(self, CampaignStore(store.conn))  # benchmark campaigns (orchestrator/campaigns/)
        self.deployments = Deployments(self)  # declared deployments (orchestrator/deployments.py)
        self.history = History(self)  # module states, ended modules kept bounded (orchestrator/history.py)
        self.guard = Guard()  # who may speak for which identity (guard.py; Service sets the identities)
        self._dirty = None  # nodes whose REST entry changed since the last snapshot (None: all)
        self.snapshots = Snapshots(self)  # the REST reads' view (reads.py)
        self._log_topics = (self.topics.log, self.topics.orchestrator_log)
        self._quiet = {}  # dead runtime uuid -> keepalives refused without a report since the last summary
        self._quiet_since = 0.0
        self.quiet_refusals = 0  # keepalives of dead runtimes refused without a report, since the start
        self._received = 0.0  # when the message being handled reached this process (handle's `received`)
        self._load()

    # -- startup ------------------------------------------------------------------------
    def _reload(self) -> None:
        try:
            self.nodes, self.mods, self._deleting = {}, {}, {}
            self._load()
            self.deployments = Deployments(self)
        except Exception:
            log.exception("cannot reload the state from %s", self.store.path)

    def _load(self) -> None:
        """Rebuild the in-memory working set from the store (orchestrator restart)."""
        now = self.clock()
        self.scheduler.reset()
        self._watch = []  # (deadline, uuid): runtimes expired by missed keepalives (see tick)
        self._watched = set()
        self.grace_from = now  # no keepalive deadline falls before this + 3 intervals (see `grace`)
        self._by_name = {}  # runtime name -> uuids of the runtimes registered under it
        for n in self.store.load_nodes():
            n.last_seen = now  # a restarted orchestrator gives every runtime a full grace period
            n.provides = with_aliases(n.apis)
            n.order = len(self.nodes)
            self.nodes[n.uuid] = n
            if n.kind == RUNTIME:
                self._by_name.setdefault(n.name, set()).add(n.uuid)
        self.seq = self.store.max_seq()
        self._loaded_at = now
        self._unconfirmed = {}  # runtime uuid -> its running modules no keepalive listed yet
        for seq, uuid, name, parent, status, file in self.store.load_live_modules():
            m = Mod(uuid, seq, name, parent, status, file)
            self.mods[uuid] = m
            rt = self.nodes.get(parent) if parent else None
            if rt is None:
                continue
            if status == ALIVE and rt.alive:
                self._unconfirmed.setdefault(rt.uuid, set()).add(uuid)
            if status in (ALIVE, EXITING):
                rt.children.add(uuid)
                if status == EXITING:
                    self._deleting[uuid] = now + self.delete_timeout
            elif status == QUEUED:
                rt.queue[uuid] = None
            elif status == KILLED:
                rt.killed.add(uuid)
        for n in self.nodes.values():
            self.scheduler.touch(n)
            self._watch_runtime(n)
        self._dirty = None  # every REST entry is rebuilt
        log.info("loaded %d managers/runtimes and %d modules not dead from %s", len(self.nodes), len(self.mods), self.store.path)

    # -- entry points -------------------------------------------------------------------
    def handle(self, topic: str, payload: bytes, received: float | None = None) -> None:
        """Handle one MQTT message; refusals go to proc/log, nothing raises. `received`: when the
        message reached this process (clock time; default now): a keepalive counts from then, not
        from when its turn came."""
        self.handle_batch([(topic, payload, self.clock() if received is None else received)])

    def handle_batch(self, items: Sequence[tuple[str, bytes, float]]) -> None:
        """Handle messages (topic, payload, received) in order, in one transaction (a savepoint
        each: a refused one goes back alone), then publish what they decided, after the commit
        (issue #26: one commit per message capped the orchestrator below a registration storm).
        A registration repeated within the batch (the node asked again while it waited) is
        handled, and answered, once."""
        start = 0
        while start < len(items):
            end = self._handle_some(items, start)
            DECISIONS.observe_many(self.clock() - r for _, _, r in items[start:end])  # metrics.py
            start = end
            self.flush()

    def _handle_some(self, items: Sequence[tuple[str, bytes, float]], start: int) -> int:
        """Items from `start` on, up to the end or the first internal error; returns where it stopped."""
        seen: set[tuple[str, bytes]] = set()
        end, broken = len(items), False
        try:
            with self.store.transaction():
                for i in range(start, len(items)):
                    topic, payload, self._received = items[i]
                    if "/proc/reg/" in topic:
                        if (topic, payload) in seen:
                            continue
                        seen.add((topic, payload))
                    mark = len(self._out)
                    try:
                        with self.store.savepoint():
                            self._dispatch(topic, payload)
                            self.deployments.tick()  # at once when it changed what a deployment needs (deployments.py)
                    except (Refused, ProtocolError) as e:
                        self._out[mark:] = [o for o in self._out[mark:] if o[0] in self._log_topics or "/proc/reg/" in o[0]]
                        self.report(str(e), topic, payload)
                    except Exception as e:  # a bug must not stop the orchestrator; say what broke
                        log.exception("internal error handling %s", topic)
                        del self._out[mark:]
                        self.report(f"internal error: {type(e).__name__}: {e}", topic, payload)
                        end, broken = i + 1, True  # what came before is committed; memory is reloaded
                        break
        except Exception as e:  # the commit failed (a full disk): nothing of the batch is stored
            log.exception("cannot commit %d messages to %s", end - start, self.store.path)
            self._out = [o for o in self._out if o[0] in self._log_topics]
            topic, payload, _ = items[start]
            self.report(f"internal error: {type(e).__name__}: {e} (storing {end - start} messages from this one on:"
                        " none was carried out)", topic, payload)
            broken = True
        if broken:
            self._reload()  # memory must not keep what the store does not have
        return end

    def tick(self, now: float | None = None, heard_until: float | None = None) -> None:
        """Mark runtimes dead whose keepalives stopped, and deleted modules whose exited is overdue.

        `heard_until`: every message that reached the broker before that time has been handled
        (the service learns it from a fence it sends itself, docs/orchestrator.md "Keepalive
        expiry"); a runtime is dead when its last keepalive came more than 3 intervals before it,
        never just because its keepalives wait in a queue. Default: `now` (in-process use, tests)."""
        now = self.clock() if now is None else now
        heard = now if heard_until is None else min(now, heard_until)
        late = self._expired(heard)
        overdue = [u for u, t in self._deleting.items() if now >= t]
        if late or overdue:
            with self.store.transaction():
                for u in overdue:
                    self._delete_overdue(u)
                for i, rt in enumerate(late):
                    silent = heard - max(rt.last_seen, self.grace_from)
                    (log.warning if i < DEATHS_REPORTED else log.info)(
                        "runtime %s (%s) missed %d keepalives: dead", rt.name, rt.uuid, MISSED_KEEPALIVES)
                    self._runtime_dead(rt)
                    if i < DEATHS_REPORTED:
                        self.report(f"runtime {rt.name} ({rt.uuid}) sent no keepalive for {silent:.1f} s"
                                    f" ({MISSED_KEEPALIVES} intervals of {rt.ka_interval:g} s): marked dead, its modules killed",
                                    self.topics.keepalive(rt.uuid), None)
                if len(late) > DEATHS_REPORTED:
                    self.report(f"{len(late) - DEATHS_REPORTED} more runtimes sent no keepalive for"
                                f" {MISSED_KEEPALIVES} intervals: marked dead, their modules killed (reported one by one"
                                f" up to {DEATHS_REPORTED} per check; the log has every one)", self.topics.keepalive("+"), None)
        if self._quiet and now - self._quiet_since >= REFUSALS_SUMMARY:
            n, k = sum(self._quiet.values()), len(self._quiet)
            self._quiet.clear()
            self.report(f"{n} keepalives from {k} dead runtimes refused in the last {now - self._quiet_since:.0f} s"
                        " (each runtime's node was asked to register again; one refusal per runtime is reported,"
                        " the rest are counted here)", self.topics.keepalive("+"), None)
        self.deployments.tick()
        self.history.tick()
        self.flush()

    # -- routing ------------------------------------------------------------------------
    def _dispatch(self, topic: str, payload: bytes) -> None:
        if not topic.startswith(self._prefix):
            return
        parts = topic[len(self._prefix):].split("/")
        kind = parts[0]
        if kind == "log":
            return
        if kind == "profile" and len(parts) == 4:  # ours: a campaign cell's profile (campaigns/hooks.py on_profile)
            if (why := self.guard.foreign_profile(self.mods.get(parts[3]), parts[2])) is not None:
                raise Refused(f"message on {topic}: {why}")
            self.campaigns.on_profile(parts[1], parts[2], parts[3], payload)
            return
        if kind == "stored" and len(parts) == 2:  # ours: a collector's ack of stored results (common/results.py)
            self.campaigns.on_stored(parts[1], payload)
            return
        # each topic's messages decoded and checked once, here, by the schema (common/schema.py)
        if kind == "reg" and len(parts) == 2:
            self._on_reg_message(parts[1], payload)
        elif kind == "keepalive" and len(parts) == 2:
            ka = schema.decode_keepalive(payload, f"keepalive on {topic}")
            if isinstance(ka, schema.KeepaliveMsg):
                self._on_keepalive(parts[1], ka.data)
        elif kind == "control" and len(parts) == 1:
            where = f"request on {topic}"
            req = schema.decode_control(payload, where, ignore=DEPLOY_ACTIONS)
            if isinstance(req, schema.Head):  # declared deployments: their own checks (deployments.py)
                self.deployments.handle(req.action, require(decode(payload, where=where), "data", dict, where=where), where)
            elif not isinstance(req, schema.Reply):
                self._on_control(req)
        elif kind == "control" and len(parts) == 2:
            ex = schema.decode_exited(payload, f"message on {topic}")
            if isinstance(ex, schema.ExitedOpenMsg):
                self._on_runtime_control(parts[1], ex.data)
