"""The campaign requests (`create_campaign`, `resume_campaign` on `{realm}/proc/control`) and the
hooks the orchestrator calls: a module's exit, a cell's profile, a runtime's death, and the
window of cells a runtime may run ahead. Runs inside the orchestrator's decision (its lock and
transaction) and reaches it only through `Host`, the narrow interface `Orchestrator` provides.
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Protocol, Sequence

import orjson

from benchmarking import layouts
from benchmarking.plan import MAX_WINDOW, WINDOW, PlanError, cell_module, expand, module_name, new_uuids, outcome_of
from common import schema
from common.wire import ProtocolError, require
from common.results import decode_ack
from orchestrator.campaigns.data import CellData
from orchestrator.campaigns.store import CampaignStore
from orchestrator.model import ALIVE, EXITING, KILLED, QUEUED, Mod, Node
from orchestrator.state import Refused

log = logging.getLogger("orch")

PROFILE_TYPES = layouts.OURS  # ours: they say which part of how many a message is
ACTIONS = ("create_campaign", "resume_campaign")

CellModule = tuple[str, str, str, Node, dict[str, Any]]  # (module uuid, name, file, runtime, create body)


class Host(Protocol):
    """What campaigns ask of the orchestrator (orchestrator/core.py `Orchestrator`)."""

    wallclock: Callable[[], float]

    def resolve_runtime(self, q: str) -> Node | None:
        """A runtime by uuid, name or uuid suffix."""

    def place_cells(self, items: list[CellModule], window: int) -> None:
        """Store and place a campaign's modules (valid by construction), each on its runtime."""

    def retire_killed(self, uuid: str, why: str) -> None:
        """A killed module that must not be resurrected: dead, with `why`."""

    def has_module(self, uuid: str) -> bool:
        """Whether a module that is not dead has this uuid."""

    def module_parent(self, uuid: str) -> str | None:
        """The runtime uuid a module (alive or dead) was placed on; None when unknown."""


def queue_ahead(rt: Node) -> int:
    """How many creates a runtime accepts beyond its max_nmodules (its registration's
    `metadata.queue_ahead`; 0 for every other runtime, the original's too)."""
    md = rt.info.get("metadata") if isinstance(rt.info, dict) else None
    n = md.get("queue_ahead") if isinstance(md, dict) else None
    return n if isinstance(n, int) and not isinstance(n, bool) and 0 < n <= MAX_WINDOW else 0


def cell_body(cid: str, idx: int, parent: str, file: str, engine: str, argv: list[str], args: dict[str, Any],
              uuid: str, name: str) -> dict[str, Any]:
    """The stored create body of a cell's module: plan.cell_module with the fields a create gets."""
    return {**cell_module(cid, idx, parent, file, engine, argv, args, uuid, name), "apis": [], "channels": []}


class CampaignError(Exception):
    """A campaign request that cannot be carried out; the text says why (reported on proc/log)."""


class Campaigns:
    """A campaign's requests and hooks over the campaign store (see the module docstring)."""

    _FROM_RUN = {"ok": "done", "trap": "trap", "limit": "limit", "oom": "limit", "signal": "killed"}

    def __init__(self, host: Host, store: CampaignStore) -> None:
        self.host = host
        self.store = store
        self.data = CellData(store.db)
        self._windows: dict[str, int] = {}  # campaign id -> plan.window (plans do not change)

    def ahead(self, rt: Node, m: Mod) -> int:
        """How many modules beyond `rt.max_nmodules` may run on `rt` when module `m` starts: for a
        campaign's cell, its window - 1 within the runtime's queue_ahead; else 0. `m.window` is set
        when a campaign creates its cells, looked up once for modules loaded after a restart."""
        qa = queue_ahead(rt)
        if qa == 0 or rt.max_nmodules <= 0:
            return 0
        if m.window == 0:
            cid = self.store.campaign_of(m.uuid)
            m.window = self._window(cid) if cid is not None else 1
        return int(min(qa, m.window - 1))

    def _window(self, cid: str) -> int:
        w = self._windows.get(cid)
        if w is None:
            got = (self.store.spec(cid) or {}).get("window", WINDOW)
            w = self._windows[cid] = got if isinstance(got, int) else WINDOW
        return w

    # -- requests (MQTT, inside Orchestrator.handle's transaction) ---------------------------
    def handle(self, action: str, data: dict[str, Any], where: str) -> None:
        try:
            if action == "create_campaign":
                self.create(data, where)
            else:
                self.resume(data, where)
        except CampaignError as e:
            raise Refused(str(e)) from None

    def _runtime(self, name: str, where: str) -> Node:
        rt = self.host.resolve_runtime(name)
        if rt is None or not rt.alive:
            raise CampaignError(f"{where}: runtime {name!r} is not alive (see `manage.py list`); start its node, "
                                "or leave it out of the plan")
        return rt

    def create(self, data: dict[str, Any], where: str) -> None:
        cid = require(data, "campaign", str, where=where)
        spec = require(data, "plan", dict, where=where)
        if self.store.exists(cid):
            raise CampaignError(f"{where}: campaign {cid} exists already (resume it with `manage.py benchmark --resume {cid}`)")
        args = spec.get("args", {})
        if not isinstance(args, dict):
            raise ProtocolError(f"{where}: plan.args must be an object (the create args of every cell)")
        try:
            cells = expand(spec, where)
        except PlanError as bad:
            raise ProtocolError(str(bad)) from None
        nodes = {name: self._runtime(name, where) for name in dict.fromkeys(c[1] for c in cells)}
        now = self.host.wallclock()
        rows, mods = [], []
        names: dict[tuple[str, str], str] = {}  # 100k cells share a few hundred names and argv lists
        argvs: dict[tuple[str, ...], bytes] = {}
        for (idx, rt, f, e, argv), uuid in zip(cells, new_uuids(len(cells))):
            key = tuple(argv)
            blob = argvs.get(key)
            if blob is None:
                blob = argvs[key] = orjson.dumps(argv)
            name = names.get((f, e))
            if name is None:
                name = names[(f, e)] = module_name(f, e)
            rows.append((cid, idx, rt, f, e, blob, uuid, now))
            mods.append((uuid, name, f, nodes[rt], cell_body(cid, idx, nodes[rt].uuid, f, e, argv, args, uuid, name)))
        self.store.add(cid, spec, rows, len(cells), now)
        self.host.place_cells(mods, self._window(cid))
        log.info("campaign %s: %d cells on %d runtimes", cid, len(cells), len(nodes))

    def resume(self, data: dict[str, Any], where: str) -> None:
        cid = require(data, "campaign", str, where=where)
        spec = self.store.spec(cid)
        if spec is None:
            raise CampaignError(f"{where}: no campaign {cid} (see `manage.py benchmark --status`)")
        args = spec.get("args", {})
        todo = [t for t in self.store.not_done(cid) if t[6] not in (QUEUED, ALIVE, EXITING)]  # on its way: leave it
        nodes = {name: self._runtime(name, where) for name in dict.fromkeys(t[1] for t in todo)}
        now = self.host.wallclock()
        mods: list[CellModule] = []
        updates = []
        for (idx, rt, f, e, argv, old, status), uuid in zip(todo, new_uuids(len(todo))):
            if status == KILLED and old is not None:  # would be resurrected with its runtime: the new module replaces it
                self.host.retire_killed(old, f"superseded by a resume of {cid}")
            updates.append((uuid, now, cid, idx))
            name = module_name(f, e)
            mods.append((uuid, name, f, nodes[rt], cell_body(cid, idx, nodes[rt].uuid, f, e, orjson.loads(argv), args, uuid, name)))
        self.store.restart(cid, updates, now)
        self.host.place_cells(mods, self._window(cid))
        log.info("campaign %s resumed: %d cells again", cid, len(mods))

    # -- hook: a module's exit ----------------------------------------------------------------
    def on_exited(self, module_uuid: str, data: dict[str, Any]) -> None:
        """Record the outcome of the cell whose current module this is (no-op for other modules)."""
        outcome, record = outcome_of(data)
        if outcome != "done" and "samples" not in data:
            # not the runtime's own end (the benchmarking runtimes always count their samples): its
            # worker died, the supervisor reports it; a profile that was complete by then stands
            got = self._profiled([module_uuid]).get(module_uuid)
            if got is not None:
                outcome, record = got[0], {**got[1], "exited": record}
        self.store.set_outcome(module_uuid, outcome, record, self.host.wallclock())
        of = self.store.cell_of(module_uuid)
        if of is not None and not self.data.refresh(*of) and outcome == "done" and not self._tracked(of[0], module_uuid):
            self.data.untracked(*of)

    TRACKED = ("benchmarking", "benchmarking/seeded", "benchmarking/interference")  # send result ids (ours)

    def _tracked(self, cid: str, module_uuid: str) -> bool:
        """Whether the cell's results carry ids the collector acknowledges: our layouts, from one of
        our runtimes that sends them (not `benchmarking/opcodes`, not the original's runtimes, which
        register without the api named like their type, not a plan with `profile: seed`)."""
        parent = self.host.module_parent(module_uuid)
        rt = self.host.resolve_runtime(parent) if parent else None
        args = (self.store.spec(cid) or {}).get("args") or {}
        ours = rt is None or (rt.runtime_type in self.TRACKED and rt.runtime_type in rt.apis)  # the original's lack that api
        return ours and not (isinstance(args, dict) and args.get("profile") == "seed")

    # -- hook: a collector's ack (`{realm}/proc/stored/RUNTIME`, common/results.py) ------------
    def on_stored(self, runtime: str, payload: bytes) -> None:
        """The results a collector stored: the cells whose data is now complete are done."""
        ack = decode_ack(payload)
        if ack is not None:
            self.data.on_stored(runtime, ack[1])

    # -- hook: a profile message of a cell (`{realm}/proc/profile/TYPE/RUNTIME/MODULE`) --------
    def on_profile(self, ptype: str, runtime: str, module_uuid: str, payload: bytes) -> None:
        """Count a part of a cell's profile: which parts of how many arrived, and the runs' outcomes;
        note its result id (data.py). Only from the runtime the cell's module was placed on: a
        node's profile on its own topic naming another node's module settles nothing."""
        if ptype not in PROFILE_TYPES or self.host.module_parent(module_uuid) != runtime:
            return  # another layout, an unknown module, or not this runtime's
        got = schema.decode_campaign_profile(payload)  # checked once: part [i, n], id, the runs' outcomes
        if got is None:
            return  # not such a profile: the collector keeps it raw; it proves nothing here
        part, outcomes = got.part, got.outcomes()
        rid, of = got.id, self.store.cell_of(module_uuid)
        if rid and of is not None:
            self.data.on_result(runtime, rid, of[0], of[1], module_uuid, part[0], part[1])
        if not self.host.has_module(module_uuid):
            return  # not running (the exited came first): its outcome is recorded
        cell = self.store.open_cell(module_uuid)
        if cell is None:
            return
        cid, idx, prof = cell
        if prof is None:
            prof = {"parts": [], "of": part[1], "outcomes": {}}
        if part[0] in prof["parts"]:
            return  # a duplicate delivery (QoS 1)
        prof["parts"].append(part[0])
        prof["of"] = part[1]
        for o in outcomes:
            prof["outcomes"][o] = prof["outcomes"].get(o, 0) + 1
        self.store.set_profile(cid, idx, prof)

    def _profiled(self, uuids: Sequence[str]) -> dict[str, tuple[str, dict[str, Any]]]:
        """module uuid -> (cell outcome, record) for the cells among `uuids` whose profile is complete."""
        out: dict[str, tuple[str, dict[str, Any]]] = {}
        for u in uuids:
            prof = self.store.open_profile(u)
            if prof is None or len(prof["parts"]) < prof["of"]:
                continue
            bad = [o for o in prof["outcomes"] if o != "ok"]
            outcome = self._FROM_RUN.get(bad[0], "error") if bad else "done"
            out[u] = (outcome, {"status": {"reason": "exited", "code": None,
                                           "error": "no exited message: its node went away after the profile was delivered"},
                                "from_profile": True, "runs": sum(prof["outcomes"].values()), "outcomes": prof["outcomes"]})
        return out

    # -- hook: a runtime died with these modules running ---------------------------------------
    def settle(self, uuids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Of the modules `uuids` (running on a runtime that died), those whose cell's profile is
        complete: their cells get the profile's outcome; returns module uuid -> exit status for them."""
        done = self._profiled(uuids)
        now = self.host.wallclock()
        for u, (outcome, record) in done.items():
            self.store.set_outcome(u, outcome, record, now)
        if done:
            log.info("%d cells of a dead runtime had their profile delivered: complete, not run again", len(done))
        return {u: rec["status"] for u, (_o, rec) in done.items()}
