"""The REST API's answers (docs/protocol.md, "REST API"), computed from the orchestrator's state.

`answer(snapshot, reader, path, query)` answers (status, JSON object) from a snapshot the
decision thread published (reads.py) and a read-only SQLite connection: no lock, so no read
ever holds up a decision (issue #26: a 7.8 MB list built under the decision lock starved the
keepalives of 10k runtimes). Lists are `{"count", "start", "results"}` with
`?start=N&count=M` pagination; a miss is 404 with `{"error": ...}`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote

from orchestrator import campaigns, dashboard, deployviews, history
from orchestrator.core import Orchestrator
from orchestrator.model import ALIVE, EXITING, MANAGER, NOT_DEAD, QUEUED, RUNTIME, STATES
from orchestrator.reads import QUEUED_IN_ENTRY, Snapshot
from orchestrator.store import Reader

DEFAULT_COUNT = 1000
MAX_COUNT = 100_000
DEFAULT_QUEUED_SHOWN = QUEUED_IN_ENTRY  # a runtime entry lists this many of its queued modules (`nqueued` has the total)

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


def _page(results: list[dict[str, Any]], total: int, start: int) -> dict[str, Any]:
    return {"count": total, "start": start, "results": results}


def list_runtimes(snap: Snapshot, r: Reader, q: dict[str, list[str]]) -> Answer:
    start = _int_param(q, "start", 0, 0, 1 << 62)
    count = _int_param(q, "count", DEFAULT_COUNT, 0, MAX_COUNT)
    shown = _int_param(q, "queued", DEFAULT_QUEUED_SHOWN, 0, MAX_COUNT)
    kind = q.get("type", [RUNTIME])[-1]
    kinds = {RUNTIME: {RUNTIME}, MANAGER: {MANAGER}, "all": {RUNTIME, MANAGER}}.get(kind)
    if kinds is None:
        raise BadRequest(f"query parameter 'type' must be runtime, manager or all, got {kind!r}")
    want = _statuses(q, (ALIVE,))
    uuids = snap.uuids(frozenset(kinds), frozenset(want))
    return 200, _page([_entry(snap, r, u, shown) for u in uuids[start:start + count]], len(uuids), start)


def _entry(snap: Snapshot, r: Reader, uuid: str, shown: int) -> dict[str, Any]:
    e = snap.entry(uuid)
    if shown < len(e["queued"]):
        e["queued"] = e["queued"][:shown]
    elif shown > len(e["queued"]) and e["nqueued"] > len(e["queued"]):  # more than the snapshot keeps
        e["queued"] = r.queued_short(uuid, shown)
    return e


def get_runtime(snap: Snapshot, r: Reader, key: str, q: dict[str, list[str]]) -> Answer:
    shown = _int_param(q, "queued", DEFAULT_QUEUED_SHOWN, 0, MAX_COUNT)
    uuid: str | None = key if key in snap.entries else None  # full uuid: managers too, dead ones too
    if uuid is None:
        uuid = snap.resolve_runtime(key)
    if uuid is None:
        return 404, {"error": f"no runtime with uuid, name or uuid suffix {key!r}"}
    return 200, _entry(snap, r, uuid, shown)


@dataclass(frozen=True)
class ModuleQuery:
    """A module list to fetch from SQLite (on a read-only connection)."""

    statuses: tuple[str, ...]
    start: int
    count: int
    parent: str | None
    name: str | None = None


def module_query(snap: Snapshot, q: dict[str, list[str]], default: tuple[str, ...] = (ALIVE, EXITING)) -> Answer | ModuleQuery:
    start = _int_param(q, "start", 0, 0, 1 << 62)
    count = _int_param(q, "count", DEFAULT_COUNT, 0, MAX_COUNT)
    statuses = _statuses(q, default)
    parent = None
    if "runtime" in q:
        parent = snap.resolve_runtime(q["runtime"][-1])
        if parent is None:
            return 404, {"error": f"no runtime with uuid, name or uuid suffix {q['runtime'][-1]!r}"}
    name = q["name"][-1] if "name" in q else None
    return ModuleQuery(statuses, start, count, parent, name)


def run_module_query(r: Reader, mq: ModuleQuery) -> Answer:
    results = r.modules(mq.statuses, mq.start, mq.count, mq.parent, mq.name)
    return 200, _page(results, r.count_modules(mq.statuses, mq.parent, mq.name), mq.start)


def get_module(r: Reader, key: str, q: dict[str, list[str]] | None = None) -> Answer:
    """By full uuid (dead ones too), then name (newest) / uuid suffix among those not dead; with `?all`,
    a dead module is found by name too (the newest of that name), so its exit status can be read."""
    row = r.module_by_uuid(key) if key else None  # full uuid: dead ones too
    if row is None and key:
        row = r.module_by_name(key, NOT_DEAD) or r.module_by_suffix(key, NOT_DEAD)
    if row is None and key and q is not None and "all" in q:
        row = r.module_by_name(key, STATES)
    if row is None:
        return 404, {"error": f"no module with uuid, name or uuid suffix {key!r}"}
    return 200, row


def route(o: Orchestrator, path: str, query: str) -> Answer:
    """Answer a GET of `path?query` from `o` in process (tests): a fresh snapshot and the store's connection."""
    return answer(o.snapshots.publish(), o.store, path, query)


def answer(snap: Snapshot, r: Reader, path: str, query: str) -> Answer:
    """Answer a GET of `path?query` from a published snapshot and a read connection: no lock, no
    access to the orchestrator's live state (reads.py)."""
    try:
        q = parse_qs(query, keep_blank_values=True)
        parts = [unquote(p) for p in path.split("/") if p]
        if len(parts) < 2 or parts[0] != "api":
            return 404, {"error": f"no such endpoint {path!r}; try /api/runtimes/, /api/modules/, /api/queued/"}
        what, rest = parts[1], parts[2:]
        if what == "runtimes" and not rest:
            return list_runtimes(snap, r, q)
        if what == "runtimes" and len(rest) == 1:
            return get_runtime(snap, r, rest[0], q)
        if what == "modules" and not rest:
            got = module_query(snap, q)
            return run_module_query(r, got) if isinstance(got, ModuleQuery) else got
        if what == "modules" and len(rest) == 1:
            return get_module(r, rest[0], q)
        if what == "campaigns":
            return campaigns.route(rest, q).run(r.conn)
        if what == "deployments":
            return deployviews.route(r.conn, rest, q)
        if what == "history":
            return history.route(r.conn, rest)
        if what == "logs":
            return history.LOGS.answer(path, query)
        if what == "dashboard" and not rest:
            return 200, dashboard.snapshot(snap, r, dead="all" in q)
        if what == "queued" and not rest:
            got = module_query(snap, {**q, "status": [QUEUED]})
            return run_module_query(r, got) if isinstance(got, ModuleQuery) else got
        return 404, {"error": f"no such endpoint {path!r}; try /api/runtimes/, /api/modules/, /api/queued/"}
    except BadRequest as e:
        return 400, {"error": str(e)}
