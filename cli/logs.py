"""Show a module's output: the lines the orchestrator kept (the newest `--log-lines` of each
module, also after it ended), then with --follow what it prints from now on, until it ends.
A name finds the newest module of that name.

Usage:
    manage.py logs [options] MODULE
    manage.py logs -h | --help

Options:
    -f, --follow            Then print new output as it comes, until the module ends (or ^C).
    -n, --tail N            Only the newest N lines kept (default: all kept).
    -c, --cfg PATH          Config file (default: $SL_CONFIG, else config.json if present, else built-in defaults).
    --url URL               Orchestrator REST URL (default: http://{http}:{http_port} of the config).
    -v, --verbose LEVEL     Log level [default: WRN].

Examples:
    manage.py logs hello-0 --tail 20
"""
from __future__ import annotations

import queue
import sys
import time

from cli._api import begin, client, guard, number
from cli.inspect import find
from common.wire import Topics

SUMMARY = "Show a module's output (kept by the orchestrator), --follow for more."


@guard("logs")
def main(argv: list[str]) -> int:
    opts, cfg, api = begin(__doc__, "logs", argv)
    tail = number(opts, "--tail", int, 0)
    m = find(api, opts["MODULE"])
    if not opts["--follow"]:
        got = api.get(f"/api/logs/{m['uuid']}/", {"tail": tail} if tail is not None else None) or {}
        for ln in got.get("lines", []):
            print(ln["line"])
        return 0
    with client(opts, cfg) as c:
        sub = c.subscribe(Topics(cfg.realm).stdio(m["uuid"]))  # first: nothing printed meanwhile is missed
        got = api.get(f"/api/logs/{m['uuid']}/", {"tail": tail} if tail is not None else None) or {}
        for ln in got.get("lines", []):
            print(ln["line"], flush=True)
        ended = m.get("status") == "D"
        next_poll = time.monotonic() + 1.0
        try:
            while True:
                try:
                    _, payload = sub.get(timeout=0.2)
                except (queue.Empty, TimeoutError):
                    if ended:
                        return 0
                    if time.monotonic() >= next_poll:
                        next_poll = time.monotonic() + 1.0
                        row = api.get(f"/api/modules/{m['uuid']}/")
                        ended = not isinstance(row, dict) or row.get("status") == "D"  # one more round for late output
                    continue
                sys.stdout.write(payload.decode("utf-8", "replace"))
                sys.stdout.flush()
        except KeyboardInterrupt:
            return 0
