"""The REST API's answers (docs/protocol.md, "REST API"), computed from the orchestrator's state.

`plan(o, path, query)` runs under the service lock and answers (status, JSON object), or
returns a `ModuleQuery` that the service then runs on a read-only connection outside the
lock (module lists can be 100k long). Lists are `{"count", "start", "results"}` with
`?start=N&count=M` pagination; a miss is 404 with `{"error": ...}`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote

from orchestrator import campaigns, dashboard
from orchestrator.core import Orchestrator
from orchestrator.model import ALIVE, EXITING, MANAGER, QUEUED, RUNTIME, STATES, Node
from orchestrator.store import Reader

DEFAULT_COUNT = 1000
MAX_COUNT = 100_000
DEFAULT_QUEUED_SHOWN = 100  # a runtime entry lists this many of its queued modules (`nqueued` has the total)

Answer = tuple[int, dict[str, Any]]


class BadRequest(Exception):
    """A query parameter the API cannot use; the text says which."""


def _int_param(q: dict[str, list[str]], key: str, default: int, lo: int, hi: int) -> int:
    if key not in q:
        return default
    raw = q[key][-1]
    try:
        v = int(raw)
    except ValueError:
        raise BadRequest(f"query parameter {key!r} must be an integer, got {raw!r}") from None
    if not lo <= v <= hi:
        raise BadRequest(f"query parameter {key!r} must be between {lo} and {hi}, got {v}")
    return v


def _statuses(q: dict[str, list[str]], default: tuple[str, ...]) -> tuple[str, ...]:
    if "status" not in q:
        return default
    raw = q["status"][-1]
    if raw == "all":
        return STATES
    got = tuple(s for s in raw.upper().split(",") if s)
    bad = [s for s in got if s not in STATES]
    if bad or not got:
        raise BadRequest(f"query parameter 'status' must be 'all' or a comma list of {','.join(STATES)}, got {raw!r}")
    return got


def runtime_entry(o: Orchestrator, n: Node, queued_shown: int = DEFAULT_QUEUED_SHOWN) -> dict[str, Any]:
    """A runtime (or manager) with its children and the head of its queue."""
    children = []
    for u in sorted(n.children, key=lambda u: o.mods[u].seq):
        d = o.mods[u].short()
        st = n.stats.get(u)
        if st:
            d.update({k: st[k] for k in ("active", "cpu_usage_percent", "mem_usage") if k in st})
        children.append(d)
    queued = []
    for i, u in enumerate(n.queue):
        if i >= queued_shown:
            break
        queued.append(o.mods[u].short())
    mgr = o.nodes.get(n.parent) if n.parent else None
    return {
        "type": n.kind, "uuid": n.uuid, "name": n.name, "status": n.status, "parent": n.parent,
        "manager": mgr.name if mgr else None, "runtime_type": n.runtime_type, "max_nmodules": n.max_nmodules,
        "apis": sorted(n.apis), "platform": n.info.get("platform"), "metadata": n.info.get("metadata"),
        "ka_interval_sec": n.ka_interval, "sends_keepalives": n.sends_keepalives, "seconds_since_keepalive": round(max(0.0, o.clock() - n.last_seen), 3),
        "children": children, "queued": queued, "nqueued": len(n.queue), "nkilled": len(n.killed),
    }


def _page(results: list[dict[str, Any]], total: int, start: int) -> dict[str, Any]:
    return {"count": total, "start": start, "results": results}


def list_runtimes(o: Orchestrator, q: dict[str, list[str]]) -> Answer:
    start = _int_param(q, "start", 0, 0, 1 << 62)
    count = _int_param(q, "count", DEFAULT_COUNT, 0, MAX_COUNT)
    shown = _int_param(q, "queued", DEFAULT_QUEUED_SHOWN, 0, MAX_COUNT)
    kind = q.get("type", [RUNTIME])[-1]
    kinds = {RUNTIME: {RUNTIME}, MANAGER: {MANAGER}, "all": {RUNTIME, MANAGER}}.get(kind)
    if kinds is None:
        raise BadRequest(f"query parameter 'type' must be runtime, manager or all, got {kind!r}")
    want = _statuses(q, (ALIVE,))
    nodes = [n for n in o.nodes.values() if n.kind in kinds and n.status in want]
    return 200, _page([runtime_entry(o, n, shown) for n in nodes[start:start + count]], len(nodes), start)


def get_runtime(o: Orchestrator, key: str, q: dict[str, list[str]]) -> Answer:
    shown = _int_param(q, "queued", DEFAULT_QUEUED_SHOWN, 0, MAX_COUNT)
    n = o.nodes.get(key)  # full uuid: managers too, dead ones too
    if n is None:
        n = o.resolve_runtime(key)
    if n is None:
        return 404, {"error": f"no runtime with uuid, name or uuid suffix {key!r}"}
    return 200, runtime_entry(o, n, shown)


@dataclass(frozen=True)
class ModuleQuery:
    """A module list to fetch from SQLite; the service runs it outside the lock on a read connection."""

    statuses: tuple[str, ...]
    start: int
    count: int
    parent: str | None
    name: str | None = None


def module_query(o: Orchestrator, q: dict[str, list[str]], default: tuple[str, ...] = (ALIVE, EXITING)) -> Answer | ModuleQuery:
    start = _int_param(q, "start", 0, 0, 1 << 62)
    count = _int_param(q, "count", DEFAULT_COUNT, 0, MAX_COUNT)
    statuses = _statuses(q, default)
    parent = None
    if "runtime" in q:
        rt = o.resolve_runtime(q["runtime"][-1])
        if rt is None:
            return 404, {"error": f"no runtime with uuid, name or uuid suffix {q['runtime'][-1]!r}"}
        parent = rt.uuid
    name = q["name"][-1] if "name" in q else None
    return ModuleQuery(statuses, start, count, parent, name)


def run_module_query(r: Reader, mq: ModuleQuery) -> Answer:
    results = r.modules(mq.statuses, mq.start, mq.count, mq.parent, mq.name)
    return 200, _page(results, r.count_modules(mq.statuses, mq.parent, mq.name), mq.start)


def get_module(o: Orchestrator, key: str, q: dict[str, list[str]] | None = None) -> Answer:
    """By full uuid (dead ones too), then name / uuid suffix among those not dead; with `?all`,
    a dead module is found by name too (the newest of that name), so its exit status can be read."""
    row = o.store.module_by_uuid(key)  # full uuid: dead ones too
    if row is None:
        m = o.resolve_module(key)
        row = o.store.module_by_uuid(m.uuid) if m else None
    if row is None and q is not None and "all" in q:
        row = o.store.module_by_name(key, STATES)
    if row is None:
        return 404, {"error": f"no module with uuid, name or uuid suffix {key!r}"}
    return 200, row


def route(o: Orchestrator, path: str, query: str) -> Answer:
    """Answer a GET of `path?query` entirely from `o` (tests; the service uses `plan`)."""
    got = plan(o, path, query)
    if isinstance(got, campaigns.CampaignRead):
        return got.run(o.store.conn)
    return run_module_query(o.store, got) if isinstance(got, ModuleQuery) else got


def plan(o: Orchestrator, path: str, query: str) -> Answer | ModuleQuery | campaigns.CampaignRead:
    """Answer a GET of `path?query`, or say which module list to fetch (needs the lock)."""
    try:
        q = parse_qs(query, keep_blank_values=True)
        parts = [unquote(p) for p in path.split("/") if p]
        if len(parts) < 2 or parts[0] != "api":
            return 404, {"error": f"no such endpoint {path!r}; try /api/runtimes/, /api/modules/, /api/queued/"}
        what, rest = parts[1], parts[2:]
        if what == "runtimes" and not rest:
            return list_runtimes(o, q)
        if what == "runtimes" and len(rest) == 1:
            return get_runtime(o, rest[0], q)
        if what == "modules" and not rest:
            return module_query(o, q)
        if what == "modules" and len(rest) == 1:
            return get_module(o, rest[0], q)
        if what == "campaigns":
            return campaigns.route(rest, q)
        if what == "dashboard" and not rest:
            return 200, dashboard.snapshot(o, dead="all" in q)
        if what == "queued" and not rest:
            return module_query(o, {**q, "status": [QUEUED]})
        return 404, {"error": f"no such endpoint {path!r}; try /api/runtimes/, /api/modules/, /api/queued/"}
    except BadRequest as e:
        return 400, {"error": str(e)}

