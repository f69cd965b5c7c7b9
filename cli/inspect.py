"""Show one module: where it runs (or ran), its args, its states with times, how it ended, and its
resource use where the runtime reports it (the last keepalive's CPU and memory). A name finds the
newest module of that name, ended ones too (the orchestrator keeps ended modules for a while:
`python -m orchestrator --keep-ended`).

Usage:
    manage.py inspect [options] MODULE
    manage.py inspect -h | --help

Options:
    --json                  Print one JSON object (module, runtime, states, resources).
    -c, --cfg PATH          Config file (default: $SL_CONFIG, else config.json if present, else built-in defaults).
    --url URL               Orchestrator REST URL (default: http://{http}:{http_port} of the config).
    -v, --verbose LEVEL     Log level [default: WRN].

Examples:
    manage.py inspect hello-0
"""
from __future__ import annotations

import json
import time
import urllib.parse
from typing import Any

from cli._api import Api, CliError, begin, guard

SUMMARY = "Show one module: placement, args, state history, exit, resource use."

STATE_NAMES = {"A": "running", "D": "ended", "E": "exiting", "K": "killed (its runtime died)", "Q": "queued"}


def find(api: Api, q: str) -> dict[str, Any]:
    """The module by uuid, name (the newest, ended ones too) or uuid suffix; CliError if none."""
    row = api.get(f"/api/modules/{urllib.parse.quote(q, safe='')}/", {"all": 1})
    if not isinstance(row, dict):
        raise CliError(f"unknown module {q!r}: no module has that name, uuid or uuid suffix at {api.url}"
                       " (ended modules are kept for a while only)")
    return row


def gather(api: Api, q: str) -> dict[str, Any]:
    m = find(api, q)
    rt = api.get(f"/api/runtimes/{m['parent']}/") if m.get("parent") else None
    hist = api.get(f"/api/history/{m['uuid']}/")
    res = None
    if isinstance(rt, dict):
        res = next(({k: c[k] for k in ("cpu_usage_percent", "mem_usage") if k in c}
                    for c in rt.get("children", []) if c.get("uuid") == m["uuid"]), None)
    return {"module": m, "runtime": {k: rt.get(k) for k in ("uuid", "name", "status", "manager")} if isinstance(rt, dict) else None,
            "states": (hist or {}).get("states", []), "resources": res or None}


def _t(x: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(x)) + f".{int(x % 1 * 1000):03d}"


def human(d: dict[str, Any]) -> str:
    m, rt = d["module"], d["runtime"]
    lines = [f"module {m['name']} {m['uuid']}: {STATE_NAMES.get(m['status'], m['status'])}",
             f"  file     {m.get('file')}",
             f"  runtime  {rt['name']} ({rt['uuid']}, {'alive' if rt['status'] == 'A' else 'dead'}, node {rt.get('manager')})"
             if rt else f"  runtime  {m.get('parent') or '-'}"]
    args = m.get("args") or {}
    if args.get("argv"):
        lines.append(f"  argv     {' '.join(map(str, args['argv']))}")
    if args.get("env"):
        lines.append(f"  env      {', '.join(str(e).split('=', 1)[0] for e in args['env'])} (names only)")
    other = {k: v for k, v in args.items() if k not in ("argv", "env") and v not in (None, [], {}, "")}
    if other:
        lines.append(f"  args     {json.dumps(other)}")
    if m.get("exit"):
        e = m["exit"]
        lines.append(f"  exit     {e.get('reason')}, code {e.get('code')}" + (f": {e['error']}" if e.get("error") else ""))
    if d["resources"]:
        r = d["resources"]
        lines.append(f"  use      cpu {r.get('cpu_usage_percent', '?')} %, memory {r.get('mem_usage', '?')}"
                     " (the runtime's last keepalive)")
    if d["states"]:
        lines.append("  states")
        t0 = d["states"][0]["time"]
        for s in d["states"]:
            lines.append(f"    {_t(s['time'])}  +{s['time'] - t0:8.3f} s  {STATE_NAMES.get(s['status'], s['status'])}"
                         + (f" on {s['runtime']}" if s.get("runtime") else ""))
    return "\n".join(lines)


@guard("inspect")
def main(argv: list[str]) -> int:
    opts, _, api = begin(__doc__, "inspect", argv)
    d = gather(api, opts["MODULE"])
    print(json.dumps(d, indent=2) if opts["--json"] else human(d))
    return 0
