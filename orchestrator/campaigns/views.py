"""The campaigns' REST reads: `GET /api/campaigns/` (list), `GET /api/campaigns/ID/` (counts by
state), `GET /api/campaigns/ID/cells/?state=S&start=N&count=M` (the cells with their records).

A cell's state is its recorded outcome when its module sent `exited` (or its profile settled it),
`data_pending` for a `done` cell whose results no collector has acknowledged yet (data.py);
otherwise that of its current module: `queued`, `running`, or `lost` (killed with its runtime, or
dead without an exit), `killed` for a module deleted (benchmarking/plan.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import orjson

from benchmarking.plan import DATA_PENDING, FAILED, STATES
from orchestrator.model import ALIVE, DEAD, EXITING, QUEUED


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
        f"CASE WHEN c.outcome = 'done' AND c.data IS NULL THEN '{DATA_PENDING}'"
        " WHEN c.outcome IS NOT NULL THEN c.outcome"
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
                "done": counts["done"], "data_pending": counts[DATA_PENDING], "failed": failed, "queued": counts["queued"], "running": counts["running"],
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
