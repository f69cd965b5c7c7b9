"""REST reads of declared deployments (orchestrator/deployments.py), from a read-only SQLite
connection: `GET /api/deployments/` (every deployment, desired vs running) and
`GET /api/deployments/NAME/` (one, with its slots and its newest events; `?events=N`, default 20).
Env values are never shown, only their names (common/deployspec.py `redacted`)."""
from __future__ import annotations

import sqlite3
from typing import Any

import orjson

from common.deployspec import redacted

Answer = tuple[int, dict[str, Any]]


def _slots(conn: sqlite3.Connection, name: str) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT s.slot, s.module, s.restarts, s.next_at, s.done, m.status, m.parent, n.name, m.exit"
        " FROM deployment_slots s LEFT JOIN modules m ON m.uuid = s.module LEFT JOIN nodes n ON n.uuid = m.parent"
        " WHERE s.deployment=? ORDER BY s.slot", (name,)).fetchall()
    return [{"slot": r[0], "name": f"{name}-{r[0]}", "module": r[1], "restarts": r[2], "next_start": r[3] or None,
             "done": r[4], "status": r[5] if r[1] else None, "runtime": r[6] if r[1] else None,
             "runtime_name": r[7] if r[1] else None} for r in rows]


def entry(conn: sqlite3.Connection, name: str, spec: bytes, rev: int, updated: float, events: int = 0) -> dict[str, Any]:
    s = orjson.loads(spec)
    slots = _slots(conn, name)
    by = [x["status"] for x in slots]
    out = {"name": name, "spec": redacted(s), "rev": rev, "updated": updated, "desired": s["count"],
           "running": by.count("A"), "queued": by.count("Q"), "killed": by.count("K"),
           "pending": sum(1 for x in slots if x["module"] is None and not x["done"]),
           "done": sum(1 for x in slots if x["done"]), "restarts": sum(x["restarts"] for x in slots), "slots": slots}
    if events:
        rows = conn.execute("SELECT time, step, module, runtime, description FROM deployment_events"
                            " WHERE deployment=? ORDER BY seq DESC LIMIT ?", (name, events)).fetchall()
        out["events"] = [{"time": r[0], "step": r[1], "module": r[2], "runtime": r[3], "description": r[4]}
                         for r in reversed(rows)]
    return out


def route(conn: sqlite3.Connection, rest: list[str], q: dict[str, list[str]]) -> Answer:
    try:
        n = int((q.get("events") or ["20"])[0])
    except ValueError:
        return 400, {"error": "events must be an integer (how many of the newest events to show)"}
    try:
        if not rest:
            rows = conn.execute("SELECT name, spec, rev, updated FROM deployments ORDER BY name").fetchall()
            res = [entry(conn, *r) for r in rows]
            return 200, {"count": len(res), "results": res}
        if len(rest) == 1:
            row = conn.execute("SELECT name, spec, rev, updated FROM deployments WHERE name=?", (rest[0],)).fetchone()
            if row is None:
                return 404, {"error": f"no deployment named {rest[0]!r}"}
            return 200, entry(conn, row[0], row[1], row[2], row[3], events=max(0, min(n, 1000)))
    except sqlite3.OperationalError as e:
        if "no such table" in str(e):  # a store that never had a deployment (a read-only connection cannot create it)
            return (200, {"count": 0, "results": []}) if not rest else (404, {"error": f"no deployment named {rest[0]!r}"})
        raise
    return 404, {"error": "no such endpoint; try /api/deployments/ or /api/deployments/NAME/"}
