"""List declared deployments (`manage.py apply`): desired vs running, with their placement and
restart policy; with a NAME, its slots (module, state, runtime, restarts) and newest events.

Usage:
    manage.py deployments [options] [NAME]
    manage.py deployments -h | --help

Options:
    -n, --events N          With NAME: show its N newest events [default: 10].
    --json                  Print the orchestrator's entries as JSON.
    -c, --cfg PATH          Config file (default: $SL_CONFIG, else config.json if present, else built-in defaults).
    --url URL               Orchestrator REST URL (default: http://{http}:{http_port} of the config).
    -v, --verbose LEVEL     Log level [default: WRN].

Examples:
    manage.py deployments
    manage.py deployments hello --events 5
"""
from __future__ import annotations

import json
import time
import urllib.parse
from typing import Any

from cli._api import CliError, begin, guard, number

SUMMARY = "List declared deployments, desired vs running."


def placement(spec: dict[str, Any]) -> str:
    p = spec.get("placement") or {}
    parts = []
    if p.get("runtimes"):
        parts.append("on " + ",".join(p["runtimes"]))
    if p.get("kind"):
        parts.append(f"kind={p['kind']}")
    if p.get("apis"):
        parts.append("apis=" + ",".join(p["apis"]))
    parts += [f"{k}={v}" for k, v in sorted((p.get("platform") or {}).items())]
    return " ".join(parts) or "any"


def table(results: list[dict[str, Any]]) -> str:
    head = ("NAME", "DESIRED", "RUNNING", "QUEUED", "WAITING", "RESTARTS", "RESTART", "FILE", "PLACEMENT")
    rows = [head] + [(d["name"], str(d["desired"]), str(d["running"]), str(d["queued"]),
                      str(d["pending"] + d["killed"]), str(d["restarts"]), d["spec"]["restart"], d["spec"]["file"],
                      placement(d["spec"])) for d in results]
    w = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w[i]) for i, c in enumerate(r)).rstrip() for r in rows)


def detail(d: dict[str, Any]) -> str:
    lines = [table([d]), ""]
    for s in d["slots"]:
        if s["module"]:
            where = f"{s['status']} on {s['runtime_name'] or '?'}"
        elif s["done"]:
            where = f"finished ({s['done']})"
        elif s["next_start"]:
            where = f"restarting in {max(0.0, s['next_start'] - time.time()):.1f} s"
        else:
            where = "waiting for a runtime"
        lines.append(f"  {s['name']:<20} {(s['module'] or '-'):<36} {where}, {s['restarts']} restarts")
    for e in d.get("events", []):
        lines.append(f"  {time.strftime('%H:%M:%S', time.localtime(e['time']))} {e['step']:<9} {e['description']}")
    return "\n".join(lines)


@guard("deployments")
def main(argv: list[str]) -> int:
    opts, _, api = begin(__doc__, "deployments", argv)
    if opts["NAME"]:
        n = number(opts, "--events", int, 0)
        d = api.get(f"/api/deployments/{urllib.parse.quote(opts['NAME'], safe='')}/", {"events": n})
        if d is None:
            raise CliError(f"no deployment named {opts['NAME']!r} (`manage.py deployments` lists them)")
        print(json.dumps(d, indent=2) if opts["--json"] else detail(d))
        return 0
    page = api.get("/api/deployments/") or {"results": []}
    if opts["--json"]:
        print(json.dumps(page["results"], indent=2))
    elif not page["results"]:
        print("no deployments (declare some with `manage.py apply FILE`)")
    else:
        print(table(page["results"]))
    return 0
