"""Benchmark campaigns: a plan of cells the orchestrator remembers, so a campaign survives a node
crash, an orchestrator restart and its own client going away, and `--resume` runs only what is
not done.

A cell is one (runtime, file, engine, argument set) with `repeat` runs: one module. The plan is
sent as a compact spec (`create_campaign` on `{realm}/proc/control`, see `expand`) and expanded
here, so a 100k-cell campaign is one small message and one transaction (its modules, valid by
construction, skip the checks of a create: `Orchestrator._create_cells`; they queue per runtime
like any other). Cell ids are the
cell's position in the canonical (unshuffled) product: stable across resumes. The run order is
the product shuffled with the plan's recorded seed (engines and files interleaved, so drift does
not line up with a configuration), per runtime (each runtime runs its queue in order).

A cell's state is its recorded outcome (`done`, or failed: `error`, `trap`, `limit`, `killed`)
when its module sent `exited`; otherwise that of its current module: `queued`, `running`, or
`lost` (killed with its runtime, or dead without an exit: node crash, orchestrator restart).
`resume_campaign` gives every cell that is neither done, queued nor running a new module (a
killed one that would be resurrected is retired first): a done cell never runs again.

A cell whose profile arrived but whose `exited` did not (its node died between the two) is not
run again: the orchestrator hears the cells' `benchmarking-v3` / `interference-v2` profiles
(`on_profile`: parts seen and run outcomes, kept in `cells.profile`), and when the runtime dies
with such a module running, the cell's outcome is taken from its complete profile (`settle`)
and the module ends dead, not killed (so it is neither resurrected nor resumed). The seed's
layouts alone (`--profile seed`) do not say when a profile is complete: such cells keep the
old behaviour (run again after the node's death).
Window: a runtime that registers `metadata.queue_ahead` N (the benchmarking runtimes: they accept
N creates beyond the module running and run them back to back, one at a time) gets up to
min(plan.window, 1 + N) of a campaign's cells at once, so that the orchestrator's bookkeeping,
MQTT and the node's dispatch of the next cell overlap with the run before it; `window` 1 is the
serial behaviour (the next cell is created when the last one exited). Default `WINDOW`.
REST: `GET /api/campaigns/` (list), `GET /api/campaigns/ID/` (counts by state),
`GET /api/campaigns/ID/cells/?state=S&start=N&count=M` (the cells with their records).
"""
from __future__ import annotations

import itertools
import logging
import os
import random
import uuid as uuidlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import orjson

from benchmarking import layouts
from common.wire import ProtocolError, require
from orchestrator.model import ALIVE, DEAD, EXITING, KILLED, QUEUED

if TYPE_CHECKING:
    from orchestrator.core import Orchestrator

log = logging.getLogger("orch")

SCHEMA = """
CREATE TABLE IF NOT EXISTS campaigns(
    id TEXT PRIMARY KEY,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    spec BLOB NOT NULL,
    ncells INTEGER NOT NULL,
    resumes INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS cells(
    campaign TEXT NOT NULL,
    idx INTEGER NOT NULL,
    runtime TEXT NOT NULL,
    file TEXT NOT NULL,
    engine TEXT NOT NULL,
    argv BLOB NOT NULL,
    module TEXT,
    attempts INTEGER NOT NULL DEFAULT 1,
    outcome TEXT,
    record BLOB,
    updated REAL NOT NULL,
    PRIMARY KEY(campaign, idx)
);
CREATE INDEX IF NOT EXISTS cells_module ON cells(module);
"""
PROFILE_TYPES = layouts.OURS  # ours: they say which part of how many a message is

ACTIONS = ("create_campaign", "resume_campaign")
FAILED = ("error", "trap", "limit", "killed", "lost")
STATES = ("done",) + FAILED + ("queued", "running")
MAX_CELLS = 2_000_000
WINDOW = 3  # cells of a campaign in flight per runtime (one running, the others created ahead)
MAX_WINDOW = 64


def queue_ahead(rt: Any) -> int:
    """How many creates a runtime accepts beyond its max_nmodules (its registration's
    `metadata.queue_ahead`; 0 for every other runtime, the original's too)."""
    md = rt.info.get("metadata") if isinstance(rt.info, dict) else None
    n = md.get("queue_ahead") if isinstance(md, dict) else None
    return n if isinstance(n, int) and not isinstance(n, bool) and 0 < n <= MAX_WINDOW else 0


def new_uuids(n: int) -> list[str]:
    """`n` random (version 4) uuids: those of `common.wire.new_uuid`, drawn from one urandom read
    (uuid.uuid4() per cell was 6 us of a 100k-cell submit's ~40)."""
    raw = os.urandom(16 * n)
    out = []
    for i in range(0, 16 * n, 16):
        b = bytearray(raw[i:i + 16])
        b[6] = (b[6] & 0x0F) | 0x40  # version 4
        b[8] = (b[8] & 0x3F) | 0x80  # RFC 4122 variant
        out.append(str(uuidlib.UUID(bytes=bytes(b))))
    return out


class CampaignError(Exception):
    """A campaign request that cannot be carried out; the text says why (reported on proc/log)."""


def _strs(spec: dict[str, Any], key: str, where: str, *, nonempty: bool = True) -> list[str]:
    v = spec.get(key)
    if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v) or (nonempty and not v):
        raise ProtocolError(f"{where}: plan.{key} must be a non-empty list of strings, got {v!r}")
    return list(v)


def module_name(file: str, engine: str) -> str:
    """The seed's benchmark module name: base name before the first '.' (of the last file of an
    interference tuple), then '.<engine>' (e.g. `2mm.wasmtime-j`)."""
    return os.path.basename(file.split(":")[-1]).split(".")[0] + "." + engine


def expand(spec: dict[str, Any], where: str = "plan") -> list[tuple[int, str, str, str, list[str]]]:
    """The cells of a plan, in run order: (cell index, runtime, file, engine, argv).

    spec: `runtimes`, `files`, `engines` (lists of names), `argsets` (list of argv lists, default
    [[]]; `argsets_by_file` {file: [argv, ...]} overrides it per file), `seed` (int: the run order), `order` ("shuffle", the default, or "plan": runtime x file
    x engine x argset as given)."""
    runtimes = _strs(spec, "runtimes", where)
    files = _strs(spec, "files", where)
    engines = _strs(spec, "engines", where)
    argsets = spec.get("argsets", [[]])
    if not isinstance(argsets, list) or not argsets or not all(
            isinstance(a, list) and all(isinstance(x, str) for x in a) for a in argsets):
        raise ProtocolError(f"{where}: plan.argsets must be a non-empty list of argument lists (lists of strings)")
    by_file = spec.get("argsets_by_file") or {}
    if not isinstance(by_file, dict) or not all(
            isinstance(v, list) and v and all(isinstance(a, list) and all(isinstance(x, str) for x in a) for a in v)
            for v in by_file.values()):
        raise ProtocolError(f"{where}: plan.argsets_by_file must map a file to a non-empty list of argument lists")
    per_file = [(f, by_file.get(f, argsets)) for f in files]
    per = sum(len(a) for _f, a in per_file) * len(engines)
    n = len(runtimes) * per
    if n > MAX_CELLS:
        raise ProtocolError(f"{where}: {n} cells is more than {MAX_CELLS}; split the campaign")
    seed = spec.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ProtocolError(f"{where}: plan.seed must be an integer, got {seed!r}")
    window = spec.get("window", WINDOW)
    if isinstance(window, bool) or not isinstance(window, int) or not 1 <= window <= MAX_WINDOW:
        raise ProtocolError(f"{where}: plan.window must be an integer in 1..{MAX_WINDOW} (cells in flight per runtime), got {window!r}")
    order = spec.get("order", "shuffle")
    if order not in ("shuffle", "plan"):
        raise ProtocolError(f"{where}: plan.order must be 'shuffle' or 'plan', got {order!r}")
    out: list[tuple[int, str, str, str, list[str]]] = []
    rng = random.Random(seed)
    for r, rt in enumerate(runtimes):
        combos = [(f, e, a) for f, sets in per_file for e, a in itertools.product(engines, sets)]
        cells = [(r * per + i, rt, f, e, list(a)) for i, (f, e, a) in enumerate(combos)]
        if order == "shuffle":
            rng.shuffle(cells)
        out.extend(cells)
    return out


def outcome_of(data: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(cell outcome, record) from a module's `exited` data (ours or the original runtimes')."""
    st = data.get("status")
    if isinstance(st, str):  # the original runtimes: "exited"
        st = {"reason": st, "code": 0 if st == "exited" else None, "error": None}
    if not isinstance(st, dict):
        st = {}
    reason, code, failure = st.get("reason"), st.get("code"), data.get("failure")
    record = {k: v for k, v in data.items() if k not in ("uuid", "type")}
    if reason == "exited" and code in (0, None) and not st.get("error") and not failure:
        return "done", record
    if failure == "trap":
        return "trap", record
    if failure in ("limit", "oom") or reason == "limit":
        return "limit", record
    if failure == "signal" or reason in ("deleted", "killed"):
        return "killed", record
    return "error", record


class CampaignReads:
    """The REST reads of the campaign tables over one connection: the service gives them a
    read-only one of their own, outside the orchestrator's lock (the state of 100k cells takes
    a join over 100k rows: ~0.5 s that decisions must not wait for)."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    @property
    def db(self) -> Any:
        return self._conn

    _STATE_SQL = (
        "CASE WHEN c.outcome IS NOT NULL THEN c.outcome"
        f" WHEN m.status = '{QUEUED}' THEN 'queued'"
        f" WHEN m.status IN ('{ALIVE}', '{EXITING}') THEN 'running'"
        f" WHEN m.status = '{DEAD}' AND json_extract(CAST(m.exit AS TEXT), '$.reason') = 'deleted' THEN 'killed'"
        " ELSE 'lost' END")

    def summary(self, cid: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT id, created, updated, ncells, resumes, spec FROM campaigns WHERE id=?", (cid,)).fetchone()
        if row is None:
            return None
        counts = {s: 0 for s in STATES}
        for state, n in self.db.execute(
                f"SELECT {self._STATE_SQL}, count(*) FROM cells c LEFT JOIN modules m ON m.uuid = c.module"
                " WHERE c.campaign=? GROUP BY 1", (cid,)):
            counts[state] = n
        spec = orjson.loads(row[5])
        failed = {s: counts[s] for s in FAILED}
        pending = counts["queued"] + counts["running"]
        return {"id": row[0], "created": row[1], "updated": row[2], "cells": row[3], "resumes": row[4],
                "done": counts["done"], "failed": failed, "queued": counts["queued"], "running": counts["running"],
                "finished": pending == 0, "seed": spec.get("seed"), "plan": {k: spec.get(k) for k in
                ("runtimes", "files", "engines", "argsets", "order", "args", "window")} if len(orjson.dumps(spec)) < 65536 else None}

    def all(self) -> list[dict[str, Any]]:
        return [{"id": r[0], "created": r[1], "updated": r[2], "cells": r[3], "resumes": r[4]}
                for r in self.db.execute("SELECT id, created, updated, ncells, resumes FROM campaigns ORDER BY created")]

    def cells(self, cid: str, states: Sequence[str] | None, start: int, count: int) -> tuple[int, list[dict[str, Any]]]:
        where, params = "c.campaign=?", [cid]
        if states:
            where += f" AND {self._STATE_SQL} IN ({','.join('?' * len(states))})"
            params.extend(states)
        total = self.db.execute(f"SELECT count(*) FROM cells c LEFT JOIN modules m ON m.uuid = c.module WHERE {where}",
                                params).fetchone()[0]
        rows = self.db.execute(
            f"SELECT c.idx, c.runtime, c.file, c.engine, c.argv, c.module, c.attempts, {self._STATE_SQL}, c.record"
            f" FROM cells c LEFT JOIN modules m ON m.uuid = c.module WHERE {where} ORDER BY c.idx LIMIT ? OFFSET ?",
            (*params, count, start)).fetchall()
        return int(total), [{"cell": r[0], "runtime": r[1], "file": r[2], "engine": r[3], "argv": orjson.loads(r[4]),
                             "module": r[5], "attempts": r[6], "state": r[7],
                             "record": orjson.loads(r[8]) if r[8] else None} for r in rows]


class Campaigns(CampaignReads):
    """The campaign tables beside the orchestrator's own, and its requests; runs inside the
    orchestrator's decision (its lock and transaction)."""

    def __init__(self, o: "Orchestrator") -> None:
        self.o = o
        self.o.store.conn.executescript(SCHEMA)
        if "profile" not in {r[1] for r in self.db.execute("PRAGMA table_info(cells)")}:  # a store of an older version
            self.db.execute("ALTER TABLE cells ADD COLUMN profile BLOB")
        self._windows: dict[str, int] = {}  # campaign id -> plan.window (plans do not change)

    def ahead(self, rt: Any, m: Any) -> int:
        """How many modules beyond `rt.max_nmodules` may run on `rt` when module `m` starts: for a
        campaign's cell, its window - 1 within the runtime's queue_ahead; else 0. `m.window` is set
        when a campaign creates its cells, looked up once for modules loaded after a restart."""
        qa = queue_ahead(rt)
        if qa == 0 or rt.max_nmodules <= 0:
            return 0
        if m.window == 0:
            row = self.db.execute("SELECT campaign FROM cells WHERE module=?", (m.uuid,)).fetchone()
            m.window = self._window(row[0]) if row is not None else 1
        return int(min(qa, m.window - 1))

    def _window(self, cid: str) -> int:
        w = self._windows.get(cid)
        if w is None:
            row = self.db.execute("SELECT spec FROM campaigns WHERE id=?", (cid,)).fetchone()
            spec = orjson.loads(row[0]) if row else {}
            w = spec.get("window", WINDOW)
            if not isinstance(w, int):
                w = WINDOW
            self._windows[cid] = w
        return w

    @property
    def db(self) -> Any:
        return self.o.store.conn

    # -- requests (MQTT, inside Orchestrator.handle's transaction) ---------------------------
    def handle(self, action: str, data: dict[str, Any], where: str) -> None:
        try:
            if action == "create_campaign":
                self.create(data, where)
            else:
                self.resume(data, where)
        except CampaignError as e:
            from orchestrator.state import Refused
            raise Refused(str(e)) from None

    def _runtime(self, name: str, where: str) -> Any:
        rt = self.o.resolve_runtime(name)
        if rt is None or not rt.alive:
            raise CampaignError(f"{where}: runtime {name!r} is not alive (see `manage.py list`); start its node, "
                                "or leave it out of the plan")
        return rt

    def create(self, data: dict[str, Any], where: str) -> None:
        cid = require(data, "campaign", str, where=where)
        spec = require(data, "plan", dict, where=where)
        if self.db.execute("SELECT 1 FROM campaigns WHERE id=?", (cid,)).fetchone():
            raise CampaignError(f"{where}: campaign {cid} exists already (resume it with `manage.py benchmark --resume {cid}`)")
        args = spec.get("args", {})
        if not isinstance(args, dict):
            raise ProtocolError(f"{where}: plan.args must be an object (the create args of every cell)")
        cells = expand(spec, where)
        nodes = {name: self._runtime(name, where) for name in dict.fromkeys(c[1] for c in cells)}
        now = self.o.wallclock()
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
            mods.append((uuid, name, f, nodes[rt], self._body(cid, idx, nodes[rt].uuid, f, e, argv, args, uuid, name)))
        self.db.execute("INSERT INTO campaigns(id, created, updated, spec, ncells) VALUES(?,?,?,?,?)",
                        (cid, now, now, orjson.dumps(spec), len(cells)))
        self.db.executemany("INSERT INTO cells(campaign, idx, runtime, file, engine, argv, module, updated)"
                            " VALUES(?,?,?,?,?,?,?,?)", rows)
        self.o._create_cells(mods, self._window(cid))
        log.info("campaign %s: %d cells on %d runtimes", cid, len(cells), len(nodes))

    @staticmethod
    def _module(cid: str, idx: int, parent: str, file: str, engine: str, argv: list[str], args: dict[str, Any],
                uuid: str, name: str | None = None) -> dict[str, Any]:
        """A cell's module as a create names it (also the CLI's, against an orchestrator without campaigns)."""
        return {"type": "module", "uuid": uuid, "name": name or module_name(file, engine), "parent": parent, "file": file,
                "args": {**args, "engine": engine, "argv": argv, "campaign": cid, "cell": idx}}

    @classmethod
    def _body(cls, cid: str, idx: int, parent: str, file: str, engine: str, argv: list[str], args: dict[str, Any],
              uuid: str, name: str) -> dict[str, Any]:
        """The stored create body of a cell's module: `_module` with the fields a create gets."""
        return {**cls._module(cid, idx, parent, file, engine, argv, args, uuid, name), "apis": [], "channels": []}

    def resume(self, data: dict[str, Any], where: str) -> None:
        cid = require(data, "campaign", str, where=where)
        row = self.db.execute("SELECT spec FROM campaigns WHERE id=?", (cid,)).fetchone()
        if row is None:
            raise CampaignError(f"{where}: no campaign {cid} (see `manage.py benchmark --status`)")
        args = orjson.loads(row[0]).get("args", {})
        todo = self.db.execute(
            "SELECT c.idx, c.runtime, c.file, c.engine, c.argv, c.module, m.status FROM cells c"
            " LEFT JOIN modules m ON m.uuid = c.module WHERE c.campaign=? AND (c.outcome IS NULL OR c.outcome != 'done')"
            " ORDER BY m.seq", (cid,)).fetchall()
        todo = [t for t in todo if t[6] not in (QUEUED, ALIVE, EXITING)]  # still on its way: leave it
        nodes = {name: self._runtime(name, where) for name in dict.fromkeys(t[1] for t in todo)}
        now = self.o.wallclock()
        mods, updates = [], []
        for (idx, rt, f, e, argv, old, status), uuid in zip(todo, new_uuids(len(todo))):
            if status == KILLED:  # would be resurrected with its runtime: retire it, the new module replaces it
                m = self.o.mods.get(old)
                if m is not None:
                    node = self.o.nodes.get(m.parent) if m.parent else None
                    if node is not None:
                        node.killed.discard(old)
                    self.o._module_dead(m, {"reason": "deleted", "code": None, "error": f"superseded by a resume of {cid}"})
            updates.append((uuid, now, cid, idx))
            name = module_name(f, e)
            mods.append((uuid, name, f, nodes[rt], self._body(cid, idx, nodes[rt].uuid, f, e, orjson.loads(argv), args, uuid, name)))
        self.db.executemany("UPDATE cells SET module=?, attempts=attempts+1, outcome=NULL, record=NULL, profile=NULL,"
                            " updated=? WHERE campaign=? AND idx=?", updates)
        self.db.execute("UPDATE campaigns SET resumes=resumes+1, updated=? WHERE id=?", (now, cid))
        self.o._create_cells(mods, self._window(cid))
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
        self.db.execute("UPDATE cells SET outcome=?, record=?, updated=? WHERE module=?",
                        (outcome, orjson.dumps(record), self.o.wallclock(), module_uuid))

    # -- hook: a profile message of a cell (`{realm}/proc/profile/TYPE/RUNTIME/MODULE`) --------
    def on_profile(self, ptype: str, module_uuid: str, payload: bytes) -> None:
        """Count a part of a cell's profile: which parts of how many arrived, and the runs' outcomes."""
        if ptype not in PROFILE_TYPES or module_uuid not in self.o.mods:
            return  # another layout, or a module that is not running (the exited came first: nothing to keep)
        row = self.db.execute("SELECT campaign, idx, profile FROM cells WHERE module=? AND outcome IS NULL",
                              (module_uuid,)).fetchone()
        if row is None:
            return
        try:
            body = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return  # the collector keeps it raw; it proves nothing here
        if not isinstance(body, dict):
            return
        part = body.get("part", [0, 1])
        if not (isinstance(part, list) and len(part) == 2 and all(isinstance(x, int) for x in part) and 0 <= part[0] < part[1]):
            part = [0, 1]
        def column(runs: Any) -> list[str]:
            got = runs.get("outcome") if isinstance(runs, dict) else None
            return [o for o in got if isinstance(o, str)] if isinstance(got, list) else []

        if ptype == layouts.BENCHMARKING_V3:
            outcomes = column(body.get("runs"))
        else:  # interference-v2: one message; the loops' runs
            loops = body.get("loops")
            outcomes = [o for lp in loops if isinstance(lp, dict) for o in column(lp.get("runs"))] if isinstance(loops, list) else []
        prof = orjson.loads(row[2]) if row[2] else {"parts": [], "of": part[1], "outcomes": {}}
        if part[0] in prof["parts"]:
            return  # a duplicate delivery (QoS 1)
        prof["parts"].append(part[0])
        prof["of"] = part[1]
        for o in outcomes:
            prof["outcomes"][o] = prof["outcomes"].get(o, 0) + 1
        self.db.execute("UPDATE cells SET profile=? WHERE campaign=? AND idx=?", (orjson.dumps(prof), row[0], row[1]))

    _FROM_RUN = {"ok": "done", "trap": "trap", "limit": "limit", "oom": "limit", "signal": "killed"}

    def _profiled(self, uuids: Sequence[str]) -> dict[str, tuple[str, dict[str, Any]]]:
        """module uuid -> (cell outcome, record) for the cells among `uuids` whose profile is complete."""
        out: dict[str, tuple[str, dict[str, Any]]] = {}
        for u in uuids:
            row = self.db.execute("SELECT profile FROM cells WHERE module=? AND outcome IS NULL AND profile IS NOT NULL",
                                  (u,)).fetchone()
            if row is None:
                continue
            prof = orjson.loads(row[0])
            if len(prof["parts"]) < prof["of"]:
                continue
            bad = [o for o in prof["outcomes"] if o != "ok"]
            outcome = self._FROM_RUN.get(bad[0], "error") if bad else "done"
            out[u] = (outcome, {"status": {"reason": "exited", "code": None,
                                           "error": "no exited message: its node went away after the profile was delivered"},
                                "from_profile": True, "runs": sum(prof["outcomes"].values()), "outcomes": prof["outcomes"]})
        return out

    def settle(self, uuids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Of the modules `uuids` (running on a runtime that died), those whose cell's profile is
        complete: their cells get the profile's outcome; returns module uuid -> exit status for them."""
        done = self._profiled(uuids)
        now = self.o.wallclock()
        for u, (outcome, record) in done.items():
            self.db.execute("UPDATE cells SET outcome=?, record=?, updated=? WHERE module=?",
                            (outcome, orjson.dumps(record), now, u))
        if done:
            log.info("%d cells of a dead runtime had their profile delivered: complete, not run again", len(done))
        return {u: rec["status"] for u, (_o, rec) in done.items()}


@dataclass(frozen=True)
class CampaignRead:
    """A `GET /api/campaigns/...` to answer from the store: `run(conn)` (views.plan returns it; the
    service runs it on a read-only connection outside the lock, tests on the store's own)."""

    rest: tuple[str, ...]
    query: tuple[tuple[str, tuple[str, ...]], ...]

    def run(self, conn: Any) -> tuple[int, dict[str, Any]]:
        return answer(CampaignReads(conn), list(self.rest), {k: list(v) for k, v in self.query})


def route(rest: list[str], q: dict[str, list[str]]) -> CampaignRead:
    """`GET /api/campaigns/...` (views.plan hands `rest` = the path after `campaigns`)."""
    return CampaignRead(tuple(rest), tuple((k, tuple(v)) for k, v in q.items()))


def answer(c: CampaignReads, rest: list[str], q: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
    if not rest:
        found = c.all()
        return 200, {"count": len(found), "start": 0, "results": found}
    s = c.summary(rest[0])
    if s is None:
        return 404, {"error": f"no campaign {rest[0]!r} (GET /api/campaigns/ lists them)"}
    if len(rest) == 1:
        return 200, s
    if len(rest) == 2 and rest[1] == "cells":
        try:
            start = int(q.get("start", ["0"])[-1])
            count = int(q.get("count", ["1000"])[-1])
        except ValueError:
            return 400, {"error": "query parameters 'start' and 'count' must be integers"}
        if start < 0 or not 0 <= count <= 100_000:
            return 400, {"error": "query parameter 'start' must be >= 0 and 'count' between 0 and 100000"}
        states = [x for x in q.get("state", [""])[-1].split(",") if x]
        bad = [x for x in states if x not in STATES]
        if bad:
            return 400, {"error": f"query parameter 'state' must be a comma list of {','.join(STATES)}, got {bad[0]!r}"}
        total, cells = c.cells(rest[0], states, start, count)
        return 200, {"count": total, "start": start, "results": cells}
    return 404, {"error": f"no such endpoint; try /api/campaigns/{rest[0]}/ or /api/campaigns/{rest[0]}/cells/"}
