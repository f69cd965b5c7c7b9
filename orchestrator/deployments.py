"""Declared deployments (issue #27): named sets of modules the orchestrator keeps true.

`manage.py apply FILE` sends `apply_deployments` on `{realm}/proc/control` (`delete_deployment`
removes one); the spec's schema is common/deployspec.py. A deployment of count N has N *slots*
(0..N-1); each slot has at most one current module, named `NAME-SLOT`. `reconcile` makes the
slots true, from the decision thread, on every change that may matter (an apply, a module of a
slot that ended, a runtime that registered or died) and at least every `FULL_PASS` seconds:
- a slot without a module gets one on an eligible runtime (alive, matching the placement: a
  runtime named in `placement.runtimes` (its name, uuid, or its node's name), of the placement's
  kind, providing its apis, with each `placement.platform` key equal), the one with the fewest of
  this deployment's modules, then the least loaded;
- a slot's module that ends is restarted per `restart` (`always`, `on-failure`: not after exit
  code 0, `never`), after a backoff that doubles from `backoff[0]` to `backoff[1]` while the module
  keeps ending within `STABLE` s of its start;
- a slot whose module was killed with its runtime gets a new module on another eligible runtime,
  if there is one (else the killed one waits and is resurrected when its runtime comes back);
  the slot remembers its *home* (where it was placed) and goes back there when that runtime is
  alive again;
- a deployment whose modules are spread unevenly over its eligible runtimes (one has 2 more than
  another: a runtime came back) moves one module per pass to the emptiest;
- a count change adds or retires the highest slots; any other spec change replaces every module.
Every step is a log line (`orch`) and an event: a row of `deployment_events` (bounded, REST
`/api/deployments/NAME/`) and a message on `{realm}/proc/orchestrator/events`.
Everything is in the orchestrator's SQLite store, so deployments survive its restart.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from common.deployspec import SpecError, documents
from common.wire import ProtocolError, envelope, new_uuid, require
from orchestrator.model import ALIVE, EXITING, KILLED, QUEUED, RUNTIME, Node
from orchestrator.scheduler import module_kind, runtime_kind

if TYPE_CHECKING:
    from orchestrator.core import Orchestrator

log = logging.getLogger("orch")

ACTIONS = ("apply_deployments", "delete_deployment")
FULL_PASS = 5.0  # seconds between two reconcile passes when nothing happened (a backoff that ends wakes it sooner)
MIN_GAP = 0.05  # seconds at least between two passes a change asked for (a registration storm is not a pass per message)
STABLE = 10.0  # a module that ran this long resets its slot's backoff
EVENTS_KEPT = 5000  # rows of deployment_events kept (the oldest go first)

SCHEMA = """
CREATE TABLE IF NOT EXISTS deployments(
    name TEXT PRIMARY KEY,
    spec BLOB NOT NULL,
    rev INTEGER NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS deployment_slots(
    deployment TEXT NOT NULL,
    slot INTEGER NOT NULL,
    module TEXT,
    rev INTEGER NOT NULL DEFAULT 0,
    restarts INTEGER NOT NULL DEFAULT 0,
    fails INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL DEFAULT 0,
    started REAL NOT NULL DEFAULT 0,
    done TEXT,
    home TEXT,
    PRIMARY KEY(deployment, slot)
);
CREATE TABLE IF NOT EXISTS deployment_events(
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    time REAL NOT NULL,
    deployment TEXT NOT NULL,
    step TEXT NOT NULL,
    module TEXT,
    runtime TEXT,
    description TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS deployment_events_dep ON deployment_events(deployment, seq);
"""


@dataclass
class Slot:
    index: int
    module: str | None = None  # the current module's uuid
    rev: int = 0  # the spec revision its module was made from
    restarts: int = 0
    fails: int = 0  # ends in a row within STABLE s of the start (the backoff's exponent)
    next_at: float = 0.0  # wall time before which no new module is made (backoff)
    started: float = 0.0
    done: str | None = None  # the slot is finished by its policy (the last end), nothing is restarted
    home: str | None = None  # the runtime it was placed on: it goes back there when that runtime returns


@dataclass
class Deployment:
    name: str
    spec: dict[str, Any]
    rev: int
    slots: dict[int, Slot] = field(default_factory=dict)
    waiting: str | None = None  # why a slot could not be placed (said once per episode)


class Deployments:
    """The deployments of one orchestrator; the decision thread calls every method."""

    def __init__(self, o: "Orchestrator") -> None:
        self.o = o
        self.deps: dict[str, Deployment] = {}
        self.by_module: dict[str, tuple[str, int]] = {}  # module uuid -> (deployment, slot)
        self.dirty = True
        self.next_pass = 0.0
        self.last_pass = float("-inf")
        self._eligible: dict[bytes, list[Node]] = {}  # eligible runtimes per placement, during one pass
        self.steps = 0  # reconcile steps taken since the start (metrics)
        self._events = 0
        self.topic = f"{o.topics.realm}/proc/orchestrator/events"
        conn = o.store.conn
        conn.executescript(SCHEMA)
        if "home" not in {r[1] for r in conn.execute("PRAGMA table_info(deployment_slots)")}:
            conn.execute("ALTER TABLE deployment_slots ADD COLUMN home TEXT")  # a store of the first version
        for name, spec, rev in conn.execute("SELECT name, spec, rev FROM deployments"):
            self.deps[name] = Deployment(name, orjson.loads(spec), rev)
        for row in conn.execute("SELECT deployment, slot, module, rev, restarts, fails, next_at, started, done, home"
                                " FROM deployment_slots"):
            d = self.deps.get(row[0])
            if d is not None:
                s = d.slots[row[1]] = Slot(*row[1:])
                if s.module:
                    self.by_module[s.module] = (d.name, s.index)
        if self.deps:
            log.info("loaded %d deployments", len(self.deps))

    # -- requests -----------------------------------------------------------------------
    def handle(self, action: str, data: dict[str, Any], where: str) -> None:
        now = self.o.wallclock()
        if action == "delete_deployment":
            name = require(data, "name", str, where=where)
            d = self.deps.pop(name, None)
            if d is None:
                raise ProtocolError(f"{where}: no deployment named {name!r} (`manage.py deployments` lists them)")
            for s in list(d.slots.values()):
                self._retire(d, s, "the deployment was deleted")
            conn = self.o.store.conn
            conn.execute("DELETE FROM deployments WHERE name=?", (name,))
            conn.execute("DELETE FROM deployment_slots WHERE deployment=?", (name,))
            self.event(d.name, "deleted", f"deleted: its {len(d.slots)} modules are stopped")
            return
        try:
            specs = documents(data.get("deployments"), where)
        except SpecError as e:
            raise ProtocolError(str(e)) from None
        for spec in specs:
            self._apply(spec, now)
        self.dirty = True
        self.tick(force=True)

    def _apply(self, spec: dict[str, Any], now: float) -> None:
        d = self.deps.get(spec["name"])
        if d is not None and d.spec == spec:
            self.event(d.name, "unchanged", "applied again, unchanged")
            return
        if d is None:
            d = self.deps[spec["name"]] = Deployment(spec["name"], spec, 1)
            what = f"created: {spec['count']} x {spec['file']}, restart {spec['restart']}"
        else:
            same = {**d.spec, "count": spec["count"]} == spec
            what = (f"count {d.spec['count']} -> {spec['count']}" if same
                    else f"changed: its modules are replaced (revision {d.rev + 1})")
            d.spec, d.rev = spec, d.rev if same else d.rev + 1
            for s in d.slots.values():
                s.done, s.fails, s.next_at = None, 0, 0.0  # a new apply gives finished and backing-off slots a new start
                self._save(d, s)
        self.o.store.conn.execute(
            "INSERT INTO deployments(name, spec, rev, created, updated) VALUES(?,?,?,?,?) ON CONFLICT(name)"
            " DO UPDATE SET spec=excluded.spec, rev=excluded.rev, updated=excluded.updated",
            (d.name, orjson.dumps(spec), d.rev, now, now))
        self.event(d.name, "applied", what)

    # -- hooks from the state machine ---------------------------------------------------
    def on_dead(self, uuid: str, exit_status: Any) -> None:
        """A module ended (state D): if it is a slot's, restart it per policy (after the backoff)."""
        key = self.by_module.pop(uuid, None)
        d = self.deps.get(key[0]) if key else None
        s = d.slots.get(key[1]) if d and key else None
        if d is None or s is None or s.module != uuid:
            return
        s.module = None
        st = exit_status if isinstance(exit_status, dict) else {}
        reason, code = st.get("reason"), st.get("code")
        now = self.o.wallclock()
        ran = now - s.started
        end = f"ended ({reason}, code {code}) after {ran:.1f} s"
        policy = d.spec["restart"]
        if policy == "never" or (policy == "on-failure" and reason == "exited" and code in (0, None)):
            s.done = f"{reason} {code}"
            self.event(d.name, "completed", f"{d.name}-{s.index} {end}: not restarted (restart {policy})", uuid)
        else:
            s.fails = 1 if ran >= STABLE else s.fails + 1
            lo, hi = d.spec["backoff"]
            delay = min(hi, lo * 2 ** (s.fails - 1))
            s.next_at, s.restarts = now + delay, s.restarts + 1
            self.event(d.name, "exited", f"{d.name}-{s.index} {end}: restart {s.restarts} in {delay:g} s"
                       f" (restart {policy})", uuid)
        self._save(d, s)
        self.dirty = True

    def tick(self, force: bool = False) -> None:
        """Reconcile every deployment if something changed or a timer is due (called by `Orchestrator.tick`)."""
        now = self.o.wallclock()
        if not self.deps or (not force and not self.dirty and now < self.next_pass):
            return
        if not force and now < self.next_pass and now - self.last_pass < MIN_GAP:
            return  # stays dirty: the next tick after the gap takes it
        self.dirty, self.last_pass = False, now
        self._eligible = {}  # one scan of the runtimes per distinct placement and pass
        wake = now + FULL_PASS
        with self.o.store.transaction():
            for d in list(self.deps.values()):
                wake = min(wake, self.reconcile(d, now))
        self.next_pass = wake

    # -- reconciling --------------------------------------------------------------------
    def eligible(self, d: Deployment) -> list[Node]:
        """Alive runtimes that the deployment's placement allows (cached for the pass)."""
        key = orjson.dumps([d.spec["placement"], d.spec["apis"]])
        got = self._eligible.get(key)
        if got is None:
            got = self._eligible[key] = self._eligible_scan(d)
        return got

    def _eligible_scan(self, d: Deployment) -> list[Node]:
        p = d.spec["placement"]
        named = set(p["runtimes"])
        kind = p["kind"] or module_kind(d.spec["apis"] + p["apis"], None)
        apis = frozenset(d.spec["apis"]) | frozenset(p["apis"])
        out = []
        for rt in self.o.nodes.values():
            if rt.kind != RUNTIME or not rt.alive or runtime_kind(rt.apis) != kind or not apis <= rt.provides:
                continue
            if named and not ({rt.name, rt.uuid} & named or self._node_name(rt) in named):
                continue
            plat = rt.info.get("platform") or {}
            if any(str(plat.get(k)) != v for k, v in p["platform"].items()):
                continue
            out.append(rt)
        return out

    def _node_name(self, rt: Node) -> str | None:
        m = self.o.nodes.get(rt.parent) if rt.parent else None
        return m.name if m is not None else None

    def reconcile(self, d: Deployment, now: float) -> float:
        """One pass over `d`: retire extra slots, make missing modules, move killed ones, spread; when to look again."""
        count = d.spec["count"]
        for i in sorted(i for i in d.slots if i >= count):
            s = d.slots.pop(i)
            self._retire(d, s, f"count is {count}")
            self.o.store.conn.execute("DELETE FROM deployment_slots WHERE deployment=? AND slot=?", (d.name, i))
        wake = now + FULL_PASS
        eligible = self.eligible(d)
        per = self._spread(d, eligible)
        for i in range(count):
            if i not in d.slots:
                d.slots[i] = Slot(i)
                self._save(d, d.slots[i])
            s = d.slots[i]
            m = self.o.mods.get(s.module) if s.module else None
            if m is not None and s.rev != d.rev:
                self._retire(d, s, f"revision {d.rev} replaces it")
                m = None
            if m is not None and m.status == KILLED and eligible:
                self._retire(d, s, "its runtime is dead")
                m = None
            home = self.o.nodes.get(s.home) if s.home else None
            if (m is not None and m.status in (ALIVE, QUEUED) and home is not None and m.parent != home.uuid
                    and home in eligible):
                self._retire(d, s, f"back to {home.name}, where it was placed, now that it is alive")
                m = None
            if m is not None or s.done:
                continue
            if now < s.next_at:
                wake = min(wake, s.next_at)
                continue
            if not eligible:
                why = f"no alive runtime matches its placement {d.spec['placement']}"
                if d.waiting != why:
                    d.waiting = why
                    self.event(d.name, "waiting", f"{d.name}-{i}: {why}")
                continue
            d.waiting = None
            home = self.o.nodes.get(s.home) if s.home else None
            rt = home if home is not None and home in eligible else min(
                eligible, key=lambda r: (len(per[r.uuid]), r.load(), r.order))
            if self._start(d, s, rt, now):
                per[rt.uuid].append(s)
        self._rebalance(d, eligible, per, now)
        return wake

    def _spread(self, d: Deployment, eligible: list[Node]) -> dict[str, list[Slot]]:
        per: dict[str, list[Slot]] = {rt.uuid: [] for rt in eligible}
        for s in d.slots.values():
            m = self.o.mods.get(s.module) if s.module else None
            if m is not None and m.status in (ALIVE, QUEUED, EXITING) and m.parent in per and s.rev == d.rev:
                per[m.parent].append(s)
        return per

    def _rebalance(self, d: Deployment, eligible: list[Node], per: dict[str, list[Slot]], now: float) -> None:
        """Move one module from the fullest eligible runtime to the emptiest when they differ by 2 or more."""
        if len(eligible) < 2 or any(x.module is None and not x.done for x in d.slots.values()):
            return  # a slot waiting (backoff, no room) comes back where the spread wants it: no move meanwhile
        lo = min(eligible, key=lambda r: (len(per[r.uuid]), r.load(), r.order))
        hi = max(eligible, key=lambda r: (len(per[r.uuid]), -r.order))
        movable = [s for s in per[hi.uuid] if s.module and self.o.mods[s.module].status in (ALIVE, QUEUED)]
        if len(per[hi.uuid]) - len(per[lo.uuid]) < 2 or not movable:
            return
        s = movable[-1]
        self._retire(d, s, f"moved to {lo.name}: {hi.name} has {len(per[hi.uuid])} of its modules, {lo.name} {len(per[lo.uuid])}")
        s.home = lo.uuid
        self._start(d, s, lo, now)
        self.dirty = True  # one move per pass: look again at the next tick

    def _start(self, d: Deployment, s: Slot, rt: Node, now: float) -> bool:
        spec = d.spec
        uuid = new_uuid()
        args: dict[str, Any] = {"argv": list(spec["args"]), "env": [f"{k}={v}" for k, v in spec["env"].items()],
                                "dirs": list(spec["dirs"])}
        data = {"type": "module", "uuid": uuid, "name": f"{d.name}-{s.index}", "file": spec["file"], "args": args,
                "apis": spec["apis"], "channels": spec["channels"], "parent": rt.uuid, "deployment": d.name}
        try:
            self.o._create_many([data], f"deployment {d.name}")
        except Exception as e:  # Refused/ProtocolError: say it, try again after the backoff
            s.next_at = now + d.spec["backoff"][0]
            self.event(d.name, "refused", f"{d.name}-{s.index} could not be created on {rt.name}: {e}", uuid, rt.name)
            return False
        s.module, s.rev, s.started = uuid, d.rev, now
        home = self.o.nodes.get(s.home) if s.home else None
        if home is None or home.alive:  # placed elsewhere than an alive home: the placement no longer allows it
            s.home = rt.uuid  # (a dead home is kept: the module goes back when it returns)
        self.by_module[uuid] = (d.name, s.index)
        self._save(d, s)
        state = "queued" if self.o.mods[uuid].status == QUEUED else "started"
        self.event(d.name, "started", f"{d.name}-{s.index} {state} on {rt.name} ({rt.uuid})", uuid, rt.name)
        return True

    def _retire(self, d: Deployment, s: Slot, why: str) -> None:
        uuid, s.module = s.module, None
        if uuid is None:
            return
        self.by_module.pop(uuid, None)
        m = self.o.mods.get(uuid)
        if m is not None:
            rt = self.o.nodes.get(m.parent) if m.parent else None
            self.o._delete({"uuid": uuid}, f"deployment {d.name}")
            self.event(d.name, "stopped", f"{d.name}-{s.index} ({uuid}) on {rt.name if rt else '?'} stopped: {why}",
                       uuid, rt.name if rt else None)
        self._save(d, s)

    # -- persistence and events ---------------------------------------------------------
    def _save(self, d: Deployment, s: Slot) -> None:
        if d.name not in self.deps:
            return
        self.o.store.conn.execute(
            "INSERT OR REPLACE INTO deployment_slots(deployment, slot, module, rev, restarts, fails, next_at, started, done, home)"
            " VALUES(?,?,?,?,?,?,?,?,?,?)",
            (d.name, s.index, s.module, s.rev, s.restarts, s.fails, s.next_at, s.started, s.done, s.home))

    def event(self, name: str, step: str, text: str, module: str | None = None, runtime: str | None = None) -> None:
        """A reconcile step: a log line, a stored event, and a message on the events topic (after the commit)."""
        now = self.o.wallclock()
        self.steps += 1
        log.info("deployment %s: %s", name, text)
        conn = self.o.store.conn
        conn.execute("INSERT INTO deployment_events(time, deployment, step, module, runtime, description)"
                     " VALUES(?,?,?,?,?,?)", (now, name, step, module, runtime, text))
        self._events += 1
        if self._events % 100 == 0:
            conn.execute("DELETE FROM deployment_events WHERE seq <= (SELECT max(seq) FROM deployment_events) - ?",
                         (EVENTS_KEPT,))
        ev = {"deployment": name, "step": step, "module": module, "runtime": runtime, "description": text, "time": now}
        self.o._out.append((self.topic, orjson.dumps(envelope("event", ev, type="resp"))))
