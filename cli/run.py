"""Launch SilverLine module(s): one per (runtime, file, copy), sent to the orchestrator.

Without -r the orchestrator picks a runtime that can run the module (a plain module never goes to
a benchmarking runtime; the least loaded whose apis cover the module's). Runtimes are checked
against the orchestrator first: an unknown one is an error and nothing is launched.

By default it waits until the orchestrator took or refused each module, then --settle seconds
for a started module to fail at once (a missing file, not WebAssembly, ...). It prints one line
per module, `created NAME UUID FILE -> RUNTIME (UUID)` (`, queued` when it waits for a slot),
and one line on stderr per refusal or failure, with the reason; any of those exits 1. Then,
with --follow, it streams the module's stdout and exits with the module's exit status; with
the option --no-wait it only sends and returns.

Usage:
    manage.py run [options] (-f FILE)... [-r RUNTIME]... [-a ARG]... [-e ENV]... [-d DIR]... [--engine ENGINE]... [-C CHANNEL]...
    manage.py run -h | --help

Options:
    -f, --file FILE         Module file, as the runtime sees the path; several: `-f a b` or `-f a -f b`.
    -r, --runtime RUNTIME   Target runtime: name, uuid or uuid suffix; several: `-r x y`, `-r x -r y` or `-r x,y`.
    -n, --name NAME         Module name [default: module].
    --copy N                Launch N copies of each (runtime, file) [default: 1].
    -a, --argv ARG          Module arguments (`-a 10 20`); each value is also shell-split.
    -e, --env ENV           Environment variables KEY=VALUE (`-e A=1 B=2`).
    -d, --dir DIR           WASI preopened directories (each visible at the same path); also `--dirs`.
    -t, --period NS         CPU reservation period in ns [default: 10000000].
    -u, --utilization U     CPU share of the period, 0 < U <= 1; 0 = no reservation [default: 0].
    -k, --repeat N          Benchmarking: number of runs [default: 0].
    --limit SEC             Benchmarking: time limit per run, seconds.
    --engine ENGINE         Benchmarking: engine; repeat for several.
    --fault_crash MODE      On a crash: ignore or restart.
    --apis APIS             Comma list of apis the module needs (for the orchestrator's choice).
    -C, --channel CHANNEL   Grant a channel PATH[:MODE[:TOPIC]] (MODE r, w or rw, default rw; the module's
                            topics starting with PATH go to TOPIC, default PATH); repeat for more.
    -c, --cfg PATH          Config file (default: $SL_CONFIG, else config.json if present, else built-in defaults).
    --url URL               Orchestrator REST URL (default: http://{http}:{http_port} of the config).
    --timeout SEC           How long to wait for the orchestrator to take the modules [default: 10].
    --settle SEC            Then how long to watch a started module for an immediate failure [default: 1].
    -F, --follow            Stream the module's stdout (`NAME| line` for several) until it exits; exit
                            with its exit status (the first failing one's for several). Ctrl-C stops
                            the modules it started (exit 130), unless --detach.
    --detach                With --follow: Ctrl-C leaves the modules running (and says how to stop them).
    --no-wait               Send and return, without checking that the orchestrator took them.
    -v, --verbose LEVEL     Log level [default: WRN].

Examples:
    manage.py run -r node1 -n hello -f helloworld.wasm
    manage.py run -n hello -f helloworld.wasm --follow
"""
from __future__ import annotations

import queue
import re
import shlex
import sys
import threading
from collections import Counter
from typing import Any

from cli._api import CliError, UsageError, client, config, guard, number, parse, setup
from cli._compat import spellings
from silverline import Client, Module

SUMMARY = "Launch Silverline module(s)."

ORIGINAL_SPELLINGS = {"--dirs": "--dir"}  # the original's run.py option names


def build_args(opts: dict[str, Any]) -> dict[str, Any]:
    """The create message's `args` object from the options (docs/protocol.md, "Creating modules")."""
    argv: list[str] = []
    for a in opts["--argv"]:
        try:
            argv.extend(shlex.split(a))
        except ValueError as e:
            raise CliError(f"--argv {a!r}: {e}") from None
    for item in opts["--env"]:
        if "=" not in item or item.startswith("="):
            raise CliError(f"--env {item!r} must be KEY=VALUE")
    args: dict[str, Any] = {"argv": argv, "env": list(opts["--env"]), "dirs": list(opts["--dir"])}
    period = number(opts, "--period", int, 1)
    util = number(opts, "--utilization", float, 0.0, 1.0)
    if util:
        args["resources"] = {"period": period, "runtime": int(period * util)}
    repeat = number(opts, "--repeat", int, 0)
    if repeat:
        args["repeat"] = repeat
    limit = number(opts, "--limit", float, 0.0)
    if limit is not None:
        args["limit"] = limit
    if opts["--engine"]:
        args["engine"] = opts["--engine"][0] if len(opts["--engine"]) == 1 else list(opts["--engine"])
    if opts["--fault_crash"] is not None:
        if opts["--fault_crash"] not in ("ignore", "restart"):
            raise CliError(f"--fault_crash must be ignore or restart, got {opts['--fault_crash']!r}")
        args["fault_crash"] = opts["--fault_crash"]
    return args


def build_channels(specs: list[str]) -> list[dict[str, str]]:
    """`PATH[:MODE[:TOPIC]]` options -> the create message's `channels` list."""
    out = []
    for spec in specs:
        path, _, rest = spec.partition(":")
        mode, _, topic = rest.partition(":")
        mode = mode or "rw"
        if not path or mode not in ("r", "w", "rw"):
            raise CliError(f"--channel {spec!r} must be PATH[:MODE[:TOPIC]] with MODE r, w or rw")
        if "w" in mode and any(c in (topic or path) for c in "+#"):
            raise CliError(f"--channel {spec!r}: a channel that can write must not contain + or #")
        out.append({"path": path, "mode": mode, "topic": topic or path})
    return out


@guard("run")
def main(argv: list[str]) -> int:
    opts = parse(__doc__ or "", "run", spellings(argv, ORIGINAL_SPELLINGS), multi=("-f", "--file", "-r", "--runtime", "-a", "--argv", "-e", "--env",
                                                   "-d", "--dir", "--engine", "-C", "--channel"))
    setup(opts)
    cfg = config(opts)
    copies = number(opts, "--copy", int, 1)
    args = build_args(opts)
    channels = build_channels(opts["--channel"])
    timeout = number(opts, "--timeout", float, 0.0)
    settle = number(opts, "--settle", float, 0.0)
    follow, no_wait = bool(opts["--follow"]), bool(opts["--no-wait"])
    if follow and no_wait:
        raise UsageError("--follow and --no-wait exclude each other (--follow waits for the module's end)")
    apis = [a for a in (opts["--apis"] or "").split(",") if a]
    wanted = [r for item in opts["--runtime"] for r in item.split(",") if r]
    with client(opts, cfg, timeout=max(timeout, 5.0)) as c:
        if not wanted:
            c.rest.get("/api/runtimes/", {"count": 0})  # fail early and clearly if the orchestrator is not there
        started: list[Module] = []
        try:
            mods = c.run(opts["--file"], wanted or None, name=opts["--name"], copies=copies, apis=apis, channels=channels,
                         args=args, wait=not no_wait, timeout=timeout, settle=settle, stdout=follow)
            started = [m for m in mods if m.state != "refused"]
            failed = report(c, mods, no_wait, follow)
            if not follow:
                return 1 if failed else 0
            code = follow_modules(started)
        except KeyboardInterrupt:
            if not follow or not started:
                raise
            return interrupted(started, bool(opts["--detach"]))
        return code or (1 if failed else 0)


def report(c: Client, mods: list[Module], no_wait: bool, follow: bool = False) -> bool:
    """One line per module taken (stdout), one per refusal reason and per immediate failure (stderr;
    with `follow` the end of every module is reported by `follow_modules`); True when something
    was refused or failed."""
    names: dict[str, str] = {}
    refused: Counter[str] = Counter()
    for m in mods:
        if m.refused is not None:
            refused[re.sub(r"^request on \S+?(, module #\d+)?: ", "", m.refused)] += 1
            continue
        if m.runtime and m.runtime not in names:
            found = c.rest.runtime(m.runtime)
            names[m.runtime] = found["name"] if found else "?"
        where = f"{names[m.runtime]} ({m.runtime})" if m.runtime else "(the orchestrator picks)"
        state = ", queued" if m.state == "Q" else ""
        print(f"{'sent' if no_wait else 'created'} {m.name} {m.uuid} {m.file} -> {where}{state}")
    for why, n in refused.items():
        count = f" ({n} modules)" if n > 1 else ""
        print(f"manage.py run: refused by the orchestrator{count}: {why}", file=sys.stderr)
    failed = [] if follow else [m for m in mods if m.exit is not None and not m.exit.ok]
    for m in failed:
        print(f"manage.py run: {m.name} {m.uuid} failed at once: {m.exit}", file=sys.stderr)
    return bool(refused or failed)


def interrupted(mods: list[Module], detach: bool) -> int:
    """Ctrl-C while following: stop the modules still running (or, detached, say they go on)."""
    live = [m for m in mods if m.exit is None]
    for m in live:
        if detach:
            print(f"manage.py run: detached; {m.name} {m.uuid} keeps running (`manage.py stop -n {m.uuid}` stops it)",
                  file=sys.stderr)
        else:
            m.stop()
            print(f"manage.py run: stopping {m.name} {m.uuid} (Ctrl-C; --detach leaves it running)", file=sys.stderr)
    return 0 if detach else 130


def follow_modules(mods: list[Module]) -> int:
    """Print the modules' stdout as it comes; the exit status of the first failing module, else 0."""
    lines: "queue.Queue[tuple[Module, str | None]]" = queue.Queue()

    def pump(m: Module) -> None:
        try:
            for line in m.stdout:
                lines.put((m, line))
        finally:
            lines.put((m, None))

    for m in mods:
        threading.Thread(target=pump, args=(m,), name=f"follow-{m.uuid[:8]}", daemon=True).start()
    open_ = len(mods)
    while open_:
        m, line = lines.get()
        if line is None:
            open_ -= 1
            continue
        print(f"{m.name}| {line}" if len(mods) > 1 else line, flush=True)
    code = 0
    for m in mods:
        st = m.wait()
        if len(mods) > 1 or not st.ok:
            print(f"manage.py run: {m.name} {m.uuid} {st}", file=sys.stderr)
        if code == 0 and st.exit_code:
            code = st.exit_code
    return code
