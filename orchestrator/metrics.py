"""Prometheus metrics of the orchestrator (issue #27): `GET /metrics` on the REST port, in the text
exposition format 0.0.4 (written here: a few gauges, counters and one histogram do not need the
prometheus-client package). Built from the published snapshot and a read-only SQLite connection,
like every REST read: a scrape never waits for a decision. docs/orchestrator.md, "Metrics", has a
scrape config and the panels to draw.

- `silverline_nodes{kind,state}`: managers and runtimes by state (A alive, D dead);
- `silverline_modules{state}`: modules by state (A running, E exiting, Q queued, K killed, D ended
  and still kept); `silverline_queued_modules`: the Q ones;
- `silverline_decision_seconds`: histogram of the time from a message's arrival to the commit of
  the decision it caused (its wait in the inbound queue included);
- `silverline_campaign_cells{state}`: cells of every campaign by outcome (`pending`: none yet);
- `silverline_deployment_desired{deployment}`, `silverline_deployment_running{deployment}`;
- `silverline_messages_total`, `silverline_fences_total`, `silverline_pauses_total`,
  `silverline_inbound_waiting`, `silverline_mqtt_connected`, `silverline_scrape_seconds`.
"""
from __future__ import annotations

import bisect
import sqlite3
import threading
import time
from typing import TYPE_CHECKING, Any, Iterable

from orchestrator.model import MANAGER, RUNTIME, STATES

if TYPE_CHECKING:
    from orchestrator.reads import Snapshot

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PATHS = ("/metrics", "/metrics/")
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Histogram:
    """Cumulative buckets, a sum and a count; observed by the decision thread, read by HTTP threads."""

    def __init__(self, buckets: tuple[float, ...] = BUCKETS) -> None:
        self.buckets = buckets
        self._counts = [0] * (len(buckets) + 1)
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe_many(self, values: Iterable[float]) -> None:
        with self._lock:
            for v in values:
                self._counts[bisect.bisect_left(self.buckets, v)] += 1
                self._sum += v

    def lines(self, name: str, help_: str) -> list[str]:
        with self._lock:
            counts, total = list(self._counts), self._sum
        out = [f"# HELP {name} {help_}", f"# TYPE {name} histogram"]
        acc = 0
        for le, n in zip(self.buckets, counts):
            acc += n
            out.append(f'{name}_bucket{{le="{le:g}"}} {acc}')
        acc += counts[-1]
        out += [f'{name}_bucket{{le="+Inf"}} {acc}', f"{name}_sum {total:.6f}", f"{name}_count {acc}"]
        return out


DECISIONS = Histogram()  # fed by Orchestrator.handle_batch (core.py)


def _esc(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _gauge(out: list[str], name: str, help_: str, samples: Iterable[tuple[dict[str, str], float]], kind: str = "gauge") -> None:
    out += [f"# HELP {name} {help_}", f"# TYPE {name} {kind}"]
    for labels, v in samples:
        lab = ",".join(f'{k}="{_esc(x)}"' for k, x in labels.items())
        out.append(f"{name}{{{lab}}} {v:g}" if lab else f"{name} {v:g}")


def _table_exists(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)).fetchone() is not None


def text(snap: "Snapshot", conn: sqlite3.Connection, stats: dict[str, Any]) -> bytes:
    """The exposition of one scrape. `stats`: the service's counters (messages, fences, paused,
    inbound_waiting, mqtt_connected)."""
    t0 = time.perf_counter()
    out: list[str] = []
    nodes = [((k, s), len(snap.uuids(frozenset({k}), frozenset({s})))) for k in (MANAGER, RUNTIME) for s in ("A", "D")]
    _gauge(out, "silverline_nodes", "Managers and runtimes by state (A alive, D dead).",
           (({"kind": k, "state": s}, n) for (k, s), n in nodes))
    by = dict.fromkeys(STATES, 0)
    by.update({s: n for s, n in conn.execute("SELECT status, count(*) FROM modules GROUP BY status")})
    _gauge(out, "silverline_modules", "Modules by state (A running, E exiting, Q queued, K killed, D ended, kept).",
           (({"state": s}, n) for s, n in sorted(by.items())))
    _gauge(out, "silverline_queued_modules", "Modules waiting for a slot on their runtime.", [({}, by["Q"])])
    out += DECISIONS.lines("silverline_decision_seconds",
                           "From a message's arrival to the commit of the decision it caused.")
    cells: dict[str, int] = {}
    if _table_exists(conn, "cells"):
        cells = {(o or "pending"): n for o, n in conn.execute("SELECT outcome, count(*) FROM cells GROUP BY outcome")}
    _gauge(out, "silverline_campaign_cells", "Benchmark campaign cells by outcome (pending: none yet).",
           (({"state": s}, n) for s, n in sorted(cells.items())))
    deps: list[tuple[str, int, int]] = []
    if _table_exists(conn, "deployments"):
        import orjson
        running = dict(conn.execute(
            "SELECT s.deployment, count(*) FROM deployment_slots s JOIN modules m ON m.uuid = s.module"
            " WHERE m.status='A' GROUP BY s.deployment").fetchall())
        deps = [(n, int(orjson.loads(spec)["count"]), int(running.get(n, 0)))
                for n, spec in conn.execute("SELECT name, spec FROM deployments ORDER BY name")]
    _gauge(out, "silverline_deployment_desired", "Modules a deployment declares.", (({"deployment": n}, d) for n, d, _ in deps))
    _gauge(out, "silverline_deployment_running", "Modules of a deployment running.", (({"deployment": n}, r) for n, _, r in deps))
    for key, name, help_ in (("messages", "silverline_messages_total", "MQTT messages decided on."),
                             ("fences", "silverline_fences_total", "Keepalive fences sent."),
                             ("paused", "silverline_pauses_total", "Times the process was found paused or starved.")):
        _gauge(out, name, help_, [({}, float(stats.get(key, 0)))], "counter")
    _gauge(out, "silverline_inbound_waiting", "Messages waiting for the decision thread.", [({}, float(stats.get("inbound_waiting", 0)))])
    _gauge(out, "silverline_mqtt_connected", "1 while connected to the broker.", [({}, 1.0 if stats.get("mqtt_connected") else 0.0)])
    _gauge(out, "silverline_scrape_seconds", "How long this answer took to build.", [({}, time.perf_counter() - t0)])
    return ("\n".join(out) + "\n").encode()
