"""Launch SilverLine module(s): one per (runtime, file, copy), sent to the orchestrator.

Without -r the orchestrator picks a runtime (least loaded whose apis cover the module's).
Runtimes are checked against the orchestrator first: an unknown one is an error and
nothing is launched. Then it waits (--timeout) until the orchestrator has taken every
module, and prints what it refused (from proc/log) as errors. Prints one line per module:
`created NAME UUID FILE -> RUNTIME`.

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
    --no-wait               Send and return, without checking that the orchestrator took them.
    -v, --verbose LEVEL     Log level [default: WRN].
"""
from __future__ import annotations

import re
import shlex
import sys
from collections import Counter
import time
from typing import Any


from cli._api import Api, CliError, Session, config, envelope, guard, number, parse, setup, topics
from cli._compat import error_text, is_runtime, spellings
from common.wire import new_uuid

SUMMARY = "Launch Silverline module(s)."

ORIGINAL_SPELLINGS = {"--dirs": "--dir"}  # the original's run.py option names


def build_args(opts: dict[str, Any]) -> dict[str, Any]:
    """The create message's `args` object from the options (PROTOCOL.md section 1)."""
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
    opts = parse(__doc__, "run", spellings(argv, ORIGINAL_SPELLINGS), multi=("-f", "--file", "-r", "--runtime", "-a", "--argv", "-e", "--env",
                                             "-d", "--dir", "--engine", "-C", "--channel"))
    setup(opts)
    cfg = config(opts)
    api = Api.from_opts(opts, cfg)
    copies = number(opts, "--copy", int, 1)
    args = build_args(opts)
    channels = build_channels(opts["--channel"])
    apis = [a for a in (opts["--apis"] or "").split(",") if a]
    wanted = [r for item in opts["--runtime"] for r in item.split(",") if r]
    targets: list[dict[str, Any] | None] = []
    for q in wanted:
        rt = api.runtime(q)
        if rt is None:
            raise CliError(f"unknown runtime {q!r}: no runtime has that name, uuid or uuid suffix at {api.url}")
        if not is_runtime(rt) or rt.get("status") != "A":
            raise CliError(f"runtime {q!r} ({rt['uuid']}) is not an alive runtime (state {rt.get('status')})")
        targets.append(rt)
    if not targets:
        api.get("/api/runtimes/", {"count": 0})  # fail early and clearly if the orchestrator is not there
        targets = [None]
    mods: list[tuple[dict[str, Any], dict[str, Any] | None]] = []
    for rt in targets:
        for f in opts["--file"]:
            for _ in range(copies):
                data: dict[str, Any] = {"type": "module", "uuid": new_uuid(), "name": opts["--name"], "file": f,
                                        "apis": apis, "args": args, "channels": channels}
                if rt is not None:
                    data["parent"] = rt["uuid"]
                mods.append((data, rt))
    timeout = number(opts, "--timeout", float, 0.0)
    t = topics(cfg)
    msgs = messages([m for m, _ in mods])
    with Session(cfg, timeout=max(timeout, 5.0)) as s:
        if not opts["--no-wait"]:
            s.watch_log()
        s.publish([(t.control(), m) for m in msgs])
        taken: dict[str, dict[str, Any]] = {}
        last_of_each = [(m["data"]["modules"] if m["action"] == "create_batch" else [m["data"]])[-1]["uuid"] for m in msgs]
        refused = {} if opts["--no-wait"] else wait_taken(api, s, [m["uuid"] for m, _ in mods], timeout, taken,
                                                          last_of_each)
    names: dict[str, str] = {}
    for data, rt in mods:
        if data["uuid"] in refused:
            continue
        parent = rt["uuid"] if rt else taken.get(data["uuid"], {}).get("parent")
        if rt is not None:
            names[rt["uuid"]] = rt["name"]
        elif parent and parent not in names:
            found = api.runtime(parent)
            names[parent] = found["name"] if found else "?"
        where = f"{names[parent]} ({parent})" if parent else "(the orchestrator picks)"
        print(f"created {data['name']} {data['uuid']} {data['file']} -> {where}")
    if refused:
        reasons = Counter(re.sub(r"^request on \S+?(, module #\d+)?: ", "", why) for why in refused.values())
        for why, n in reasons.items():
            count = f" ({n} modules)" if n > 1 else ""
            print(f"manage.py run: refused by the orchestrator{count}: {why}", file=sys.stderr)
        return 1
    return 0


def messages(mods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One `create`, or one `create_batch` per runtime naming it once as `data.parent` (as the
    original's run sends it: the original orchestrator reads only that), plus one batch without
    parent for the modules the orchestrator places."""
    if len(mods) == 1:
        return [envelope("create", mods[0])]
    groups: dict[str | None, list[dict[str, Any]]] = {}
    for m in mods:
        groups.setdefault(m.get("parent"), []).append({k: v for k, v in m.items() if k != "parent"})
    out = []
    for parent, group in groups.items():
        data: dict[str, Any] = {"type": "module", "modules": group}
        if parent is not None:
            data["parent"] = parent
        out.append(envelope("create_batch", data))
    return out


def _uuid_in(err: dict[str, Any]) -> str | None:
    """The module uuid a proc/log error is about (a create envelope, or one module of a batch)."""
    d = err.get("data")
    if isinstance(d, dict) and isinstance(d.get("data"), dict):
        d = d["data"]
    u = d.get("uuid") if isinstance(d, dict) else None
    return u if isinstance(u, str) else None


def wait_taken(api: Api, s: Session, uuids: list[str], timeout: float, taken: dict[str, dict[str, Any]],
               last_of_each: list[str] | None = None) -> dict[str, str]:
    """Wait until the orchestrator has each module (REST; rows into `taken`) or refused it
    (proc/log); returns uuid -> reason of the refused ones."""
    refused: dict[str, str] = {}
    # a batch is one transaction: once its last module is visible, every refusal was published
    probes = list(uuids) if len(uuids) <= 20 else list(last_of_each or uuids[-1:])
    deadline = time.monotonic() + timeout
    wanted = set(uuids)
    while True:
        for err in s.errors():
            u = _uuid_in(err)
            if u in wanted:
                refused[u] = error_text(err)
        still = []
        for u in probes:
            row = None if u in refused else api.module(u)
            if row is not None:
                taken[u] = row
            elif u not in refused:
                still.append(u)
        probes = still
        if not probes:
            time.sleep(0.2)  # refusals are published right after the commit that made the others visible
            for err in s.errors():
                u = _uuid_in(err)
                if u in wanted:
                    refused[u] = error_text(err)
            return refused
        if time.monotonic() > deadline:
            raise CliError(f"the orchestrator at {api.url} did not take module {probes[0]} within {timeout:g} s "
                           f"(is it connected to the broker at {s.where}, realm {s.cfg.realm!r}?)")
        time.sleep(0.05)
