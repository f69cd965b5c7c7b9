"""List runtimes and the modules running (and queued) on each, from the orchestrator.

The table fits the terminal: past its width the runtime uuid is shortened to its last 8
characters, then the columns UUID, Node, Type and Queued are dropped in that order, and module
lines wrap. --wide shows every column in full, as does output to a pipe (unless --width N).

Usage:
    manage.py list [options]
    manage.py list -h | --help

Options:
    -w, --watch SECONDS     Redraw every SECONDS until ^C (0: print once) [default: 0].
    -q, --queued N          Show up to N queued modules per runtime [default: 5].
    -a, --all               Also list dead runtimes, and the newest ended modules with how they ended.
    --ended N               With --all: how many ended modules [default: 20].
    --json                  Print the orchestrator's runtime entries as JSON instead of a table.
    -W, --wide              Every column in full, whatever the terminal's width.
    --width N               Fit N columns (default: the terminal's width; output to a pipe is not cut).
    -c, --cfg PATH          Config file (default: $SL_CONFIG, else config.json if present, else built-in defaults).
    --url URL               Orchestrator REST URL (default: http://{http}:{http_port} of the config).
    -v, --verbose LEVEL     Log level [default: WRN].
"""
from __future__ import annotations

import json
import shutil
import sys
import time
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from cli._api import Api, CliError, begin, guard, number
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


COLUMNS = ("Runtime", "UUID", "Node", "Type", "State", "Running", "Queued", "Modules")
# how a table too wide for the terminal gets narrower, one step at a time
NARROWING = ("short-uuid", "UUID", "Node", "Type", "Queued")
MODULES_MIN = 24  # the Modules column wraps, but narrower than this it is unreadable


def rows(runtimes: list[dict[str, Any]], queued_shown: int) -> list[dict[str, Any]]:
    """One dict per runtime: column -> cell (str, or Text for State and Modules)."""
    out = []
    for rt in runtimes:
        mods = [_mod_line(m) for m in rt.get("children", [])]
        queued = rt.get("queued", [])[:queued_shown]
        mods += [_mod_line(m) for m in queued]
        more = nqueued(rt) - len(queued)
        if more > 0:
            mods.append(Text(f"... and {more} more queued", style="cyan"))
        limit = rt.get("max_nmodules") or 0
        running = f"{len(rt.get('children', []))}/{limit}" if limit else str(len(rt.get("children", [])))
        out.append({"Runtime": rt["name"], "UUID": rt["uuid"], "Node": node_of(rt), "Type": rt.get("runtime_type") or "-",
                    "State": Text(rt.get("status", "?"), style=_STATE_STYLE.get(rt.get("status", ""), "")),
                    "Running": running, "Queued": str(nqueued(rt)),
                    "Modules": Text("\n").join(mods) if mods else Text("-", style="dim")})
    return out


def _cell_width(v: Any) -> int:
    return max((len(line) for line in str(v).split("\n")), default=0)


def layout(cells: list[dict[str, Any]], width: int | None) -> tuple[list[str], bool]:
    """The columns to show and whether uuids are shortened, for a terminal `width` (None: all)."""
    cols, short = list(COLUMNS), False
    if width is None:
        return cols, short

    def need() -> int:
        total = 4 + 3 * (len(cols) - 1)  # rich's borders and padding
        for c in cols:
            w = max([len(c)] + [_cell_width(r[c]) for r in cells])
            if c == "UUID" and short:
                w = 8
            if c == "Modules":
                w = min(w, MODULES_MIN)
            total += w
        return total

    for step in NARROWING:
        if need() <= width:
            break
        if step == "short-uuid":
            short = True
        elif step in cols:
            cols.remove(step)
    return cols, short


def table(runtimes: list[dict[str, Any]], queued_shown: int, width: int | None = None) -> Table:
    """A rich table: one row per runtime, its modules and the head of its queue; fits `width`."""
    cells = rows(runtimes, queued_shown)
    cols, short = layout(cells, width)
    tab = Table(title=f"{len(runtimes)} runtime(s)", title_justify="left", show_lines=True)
    others = sum(max([len(c)] + [_cell_width(r[c]) for r in cells]) + 3 for c in cols if c != "Modules") + 4
    room = width is not None and width - others >= MODULES_MIN  # else rich shares out what there is
    for col in cols:
        tab.add_column(Text(col, style="bold"), no_wrap=col != "Modules", overflow="ellipsis" if col != "Modules" else "fold",
                       min_width=MODULES_MIN if col == "Modules" and room else None)
    for r in cells:
        tab.add_row(*[(r[c][-8:] if c == "UUID" and short else r[c]) for c in cols])
    return tab


def _runtimes(api: Api, queued: int, show_all: bool) -> list[dict[str, Any]]:
    if show_all:
        page = api.get("/api/runtimes/", {"status": "all", "count": 100000, "queued": queued})
        return list(page["results"]) if page else []
    return api.runtimes(queued=queued)


def ended(api: Api, n: int) -> list[dict[str, Any]]:
    """The newest `n` ended modules (state D), newest first."""
    total = (api.get("/api/modules/", {"status": "D", "count": 0}) or {}).get("count", 0)
    page = api.get("/api/modules/", {"status": "D", "count": n, "start": max(0, total - n)}) or {}
    return list(reversed(page.get("results", [])))


def ended_table(mods: list[dict[str, Any]], names: dict[str, str]) -> Table:
    tab = Table(title="Ended modules (newest first)", title_justify="left")
    for c in ("Module", "UUID", "File", "Runtime", "Reason", "Code", "Error"):
        tab.add_column(c)
    for m in mods:
        e = m.get("exit") or {}
        tab.add_row(m["name"], m["uuid"][-8:], module_file(m), names.get(m.get("parent") or "", m.get("parent") or "-"),
                    str(e.get("reason")), "" if e.get("code") is None else str(e.get("code")), str(e.get("error") or "")[:60])
    return tab


def _snapshot(api: Api, queued: int, show_all: bool, width: int | None = None, n_ended: int = 20) -> Any:
    rts = _runtimes(api, queued, show_all)
    if not show_all:
        return table(rts, queued, width)
    names = {r["uuid"]: r["name"] for r in rts}
    return Group(table(rts, queued, width), ended_table(ended(api, n_ended), names))


@guard("list")
def main(argv: list[str]) -> int:
    opts, _, api = begin(__doc__, "list", argv)
    try:
        watch = float(opts["--watch"])
        queued = int(opts["--queued"])
        n_ended = int(opts["--ended"])
    except ValueError:
        raise CliError(f"--watch must be seconds and --queued a count, got {opts['--watch']!r} / {opts['--queued']!r}") from None
    if opts["--json"]:
        rts: Any = _runtimes(api, queued, opts["--all"])
        print(json.dumps({"runtimes": rts, "ended": ended(api, n_ended)} if opts["--all"] else rts, indent=2))
        return 0
    forced = number(opts, "--width", int, 20)
    fit = not opts["--wide"] and (sys.stdout.isatty() or forced is not None)
    console = (Console(width=forced) if forced else Console()) if fit else Console(width=max(200, shutil.get_terminal_size().columns))
    width = console.width if fit else None
    if watch <= 0:
        console.print(_snapshot(api, queued, opts["--all"], width, n_ended), crop=False)
        return 0
    with Live(_snapshot(api, queued, opts["--all"], width, n_ended), console=console, auto_refresh=False) as live:
        while True:
            time.sleep(watch)
            try:
                view: Any = _snapshot(api, queued, opts["--all"], console.width if fit else None, n_ended)
            except CliError as e:  # keep watching through an orchestrator restart
                view = Group(Text(str(e), style="bold red"))
            live.update(view, refresh=True)
