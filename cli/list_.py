"""List runtimes and the modules running (and queued) on each, from the orchestrator.

Usage:
    manage.py list [options]
    manage.py list -h | --help

Options:
    -w, --watch SECONDS     Redraw every SECONDS until ^C (0: print once) [default: 0].
    -q, --queued N          Show up to N queued modules per runtime [default: 5].
    -a, --all               Also list dead runtimes.
    --json                  Print the orchestrator's runtime entries as JSON instead of a table.
    -c, --cfg PATH          Config file (default: $SL_CONFIG, else config.json if present, else built-in defaults).
    --url URL               Orchestrator REST URL (default: http://{http}:{http_port} of the config).
    -v, --verbose LEVEL     Log level [default: WRN].
"""
from __future__ import annotations

import json
import sys
import time
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from cli._api import Api, CliError, config, guard, parse, setup
from cli._compat import module_file, node_of, nqueued

SUMMARY = "List runtimes and modules running on each runtime."

_STATE_STYLE = {"A": "bold bright_green", "D": "bold bright_red", "E": "yellow", "K": "red", "Q": "cyan"}


def _mod_line(m: dict[str, Any]) -> Text:
    t = Text(f"{m['name']}", style="bold")
    t.append(f" {m['uuid'][-8:]}", style="dim")
    t.append(f" {module_file(m)}")
    if m.get("status") and m["status"] != "A":
        t.append(f" [{m['status']}]", style=_STATE_STYLE.get(m["status"], ""))
    if "cpu_usage_percent" in m:
        t.append(f" cpu {m['cpu_usage_percent']:.0f}%", style="dim")
    return t


def table(runtimes: list[dict[str, Any]], queued_shown: int) -> Table:
    """A rich table: one row per runtime, its modules and the head of its queue."""
    tab = Table(title=f"{len(runtimes)} runtime(s)", title_justify="left", show_lines=True)
    for col in ("Runtime", "UUID", "Node", "Type", "State", "Running", "Queued", "Modules"):
        tab.add_column(Text(col, style="bold"), no_wrap=col in ("UUID", "State", "Running", "Queued"))
    for rt in runtimes:
        mods = [_mod_line(m) for m in rt.get("children", [])]
        queued = rt.get("queued", [])[:queued_shown]
        mods += [_mod_line(m) for m in queued]
        more = nqueued(rt) - len(queued)
        if more > 0:
            mods.append(Text(f"... and {more} more queued", style="cyan"))
        limit = rt.get("max_nmodules") or 0
        running = f"{len(rt.get('children', []))}/{limit}" if limit else str(len(rt.get("children", [])))
        tab.add_row(rt["name"], rt["uuid"], node_of(rt), rt.get("runtime_type") or "-",
                    Text(rt.get("status", "?"), style=_STATE_STYLE.get(rt.get("status", ""), "")),
                    running, str(nqueued(rt)), Text("\n").join(mods) if mods else Text("-", style="dim"))
    return tab


def _runtimes(api: Api, queued: int, show_all: bool) -> list[dict[str, Any]]:
    if show_all:
        page = api.get("/api/runtimes/", {"status": "all", "count": 100000, "queued": queued})
        return list(page["results"]) if page else []
    return api.runtimes(queued=queued)


def _snapshot(api: Api, queued: int, show_all: bool) -> Table:
    return table(_runtimes(api, queued, show_all), queued)


@guard("list")
def main(argv: list[str]) -> int:
    opts = parse(__doc__, "list", argv)
    setup(opts)
    cfg = config(opts)
    api = Api.from_opts(opts, cfg)
    try:
        watch = float(opts["--watch"])
        queued = int(opts["--queued"])
    except ValueError:
        raise CliError(f"--watch must be seconds and --queued a count, got {opts['--watch']!r} / {opts['--queued']!r}") from None
    if opts["--json"]:
        print(json.dumps(_runtimes(api, queued, opts["--all"]), indent=2))
        return 0
    console = Console() if sys.stdout.isatty() else Console(width=200)
    if watch <= 0:
        console.print(_snapshot(api, queued, opts["--all"]))
        return 0
    with Live(_snapshot(api, queued, opts["--all"]), console=console, auto_refresh=False) as live:
        while True:
            time.sleep(watch)
            try:
                view: Any = _snapshot(api, queued, opts["--all"])
            except CliError as e:  # keep watching through an orchestrator restart
                view = Group(Text(str(e), style="bold red"))
            live.update(view, refresh=True)
