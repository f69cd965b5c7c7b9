"""Run a benchmark campaign: a plan of cells (runtime x file x engine x argument set, each with
`--repeat` runs) that the orchestrator stores under a campaign id, runs unattended and remembers.

The plan goes to the orchestrator as one `create_campaign` message on `{realm}/proc/control`; it
expands it into one module per cell (stable cell ids), queued per runtime in a random order
whose seed is recorded (engines and files interleaved). Results arrive as profiling messages:
run the collector (`make profile`) to keep them, `manage.py report` to summarise. `--wait` shows
progress with an ETA and ends with a summary (done, failed by reason: error, trap, limit,
killed, lost, each with its first message); it exits 1 if any cell did not finish. The plan is
checked first (unknown runtimes and engines, engines off or missing on a runtime, missing files
when the node runs on this host): each problem is one line, and nothing is sent. Engine aliases
are normalised (`wasmtime` is `wasmtime-j`, see `manage.py engines`). After a node crash or an
orchestrator restart, `--resume ID` runs only the cells that are not done; `--status ID` shows
where it stands.
Against an orchestrator that keeps no campaigns (the original SilverLine one) the plan is expanded
here and sent as one `create_batch` per runtime (`data.parent`), as the original's benchmark does;
`--wait` follows the modules' `exited` messages; `--resume` and `--status` need this project's.

Usage:
    manage.py benchmark [options] (-f FILE...)... (-r RUNTIME...)... [--engine ENGINE...]... [-d DIR...]...
    manage.py benchmark [options] --resume ID
    manage.py benchmark [options] --status [ID]
    manage.py benchmark -h | --help

Options:
    -f, --file FILE...     Module files (paths on the nodes, e.g. `wasm/polybench/2mm.wasm`); several after
                           one flag as in the seed: `-f $(manage.py index -p DIR)`.
    -r, --runtime NAME...  Runtime names, uuids or uuid suffixes (several after one flag); `NODE.if` is
                           accepted for `NODE.interference` (and `.bench`, `.seed`, `.op`).
    --engine ENGINE...     Engines (see `manage.py engines`); one cell per engine [default: wasmtime].
    -d, --dir DIR...       Directories each module gets, as in `run -d`; relative ones lie inside the
                           node's module roots. Default `.`: the directory the suite expects as `.` (the
                           original always preopened `--dir=.`); `--no-dir` for none.
    --no-dir               Preopen no directory.
    -k, --repeat N         Runs per cell [default: 1].
    --warmup N             Runs per cell before the measured ones, discarded [default: 0].
    --limit SEC            Time limit of a whole cell (seconds).
    --ilimit SEC           Time limit of each run (seconds).
    --argv ARGS            Arguments of every module (shell-split).
    --argfile FILE         JSON object: file (path or base name) -> arguments (string or list);
                           with --norepeat a list of argument lists: one cell each, run once.
    --norepeat             One run per argument list of --argfile instead of --repeat runs.
    --seed N               Seed of the run order (default: drawn and printed; recorded with the campaign).
    --plan-order           Run in plan order (runtime, file, engine, argument set) instead of shuffled.
    --window N             Cells in flight per runtime: one runs, N-1 wait on the node, created ahead so
                           that dispatch overlaps with the run before them (still one run at a time);
                           1: the next cell is created when the last one exited [default: 3].
    --shuffle              The seed's flag: the order is shuffled by default (kept for old scripts).
    --eshuffle             The seed's flag: engines are interleaved by default (kept for old scripts).
    --max_seed N           Seeded runtimes: seeds are drawn from 0..N-1.
    --dirmode DIR          Seeded runtimes: each run gets a file of DIR picked by its seed.
    --scriptmode SCRIPT    Seeded runtimes: a Python script turns each seed into arguments.
    --interference N       Run the files N at a time (`a:b` modules for benchmarking/interference runtimes).
    --profile LAYOUT       Profile layouts the runtimes send: both, seed (the original collector's), ours
                           [default: both].
    --stdout PATH          Keep the modules' output in PATH on the node (default: discarded).
    --campaign ID          The campaign id (default: a new uuid).
    --wait                 Follow the campaign until every cell has finished, then summarise.
    --timeout SEC          How long --wait waits [default: 259200].
    --data-wait SEC        Once every cell ran, how long --wait waits more for a collector to store
                           the last cells' data (`data_pending` cells) [default: 60].
    --dry-run              Print the cells' create messages (JSON lines) and send nothing.
    -c, --cfg PATH         Config file (default: $SL_CONFIG, else config.json if present, else built-in defaults).
    --url URL              Orchestrator REST URL (default: http://{http}:{http_port} of the config).
    -v, --verbose LEVEL    Log level [default: WRN].

"""
from __future__ import annotations

import json
import os
import random
import shlex
import sys
import threading
import time
from typing import Any

from benchmarking.plan import FAILED, PlanError, cell_module, expand, outcome_of
from cli._api import Api, CliError, Session, config, envelope, guard, number, parse, setup, topics
from cli._campaign import finish, first_messages, follow, progress_line, record_message, show_status
from cli._plancheck import engine_names, find_runtimes, refuse, runtime_problems
from common.config import Config
from common.jsonfile import JsonFileError, read_object
from common.wire import new_uuid

SUMMARY = "Run (runtimes x files x engines) benchmarking."


def load_argfile(path: str, norepeat: bool) -> dict[str, Any]:
    try:
        data = read_object(path, "an object mapping file -> arguments")
    except JsonFileError as e:
        raise CliError(f"--argfile {e}") from None
    out: dict[str, Any] = {}
    for k, v in data.items():
        if norepeat:
            if not isinstance(v, list) or not v:
                raise CliError(f"--argfile {path}: with --norepeat, {k!r} needs a list of argument lists")
            out[k] = [shlex.split(a) if isinstance(a, str) else [str(x) for x in a] for a in v]
        else:
            out[k] = shlex.split(v) if isinstance(v, str) else [str(x) for x in v]
    return out


MULTI = ("-f", "--file", "-r", "--runtime", "--engine", "-d", "--dir")


def build_plan(opts: dict[str, Any], runtimes: list[str], engines: list[str], rng: random.Random) -> dict[str, Any]:
    """The campaign plan (benchmarking/plan.py `expand`) from the options, for these runtimes and engines."""
    files: list[str] = list(opts["--file"])
    n_if = number(opts, "--interference", int, 1)
    if n_if and n_if > 1:
        if len(files) < n_if:
            raise CliError(f"--interference {n_if} needs at least {n_if} files, got {len(files)}")
        files = [":".join(files[i:i + n_if]) for i in range(0, len(files) - n_if + 1, n_if)]
    norepeat = bool(opts["--norepeat"])
    if norepeat and not opts["--argfile"]:
        raise CliError("--norepeat needs --argfile (the argument lists to run once each)")
    argfile = load_argfile(opts["--argfile"], norepeat) if opts["--argfile"] else {}
    base_argv = shlex.split(opts["--argv"]) if opts["--argv"] else []
    by_file: dict[str, list[list[str]]] = {}
    for f in files:
        got = argfile.get(f, argfile.get(os.path.basename(f))) if argfile else None
        if norepeat:
            if got is None:
                raise CliError(f"--argfile has no argument lists for {f!r}")
            by_file[f] = got
        elif got is not None:
            by_file[f] = [got]
    args: dict[str, Any] = {"repeat": 1 if norepeat else number(opts, "--repeat", int, 1),
                            "warmup": number(opts, "--warmup", int, 0), "profile": opts["--profile"]}
    if opts["--profile"] not in ("both", "seed", "ours"):
        raise CliError(f"--profile must be both, seed or ours, got {opts['--profile']!r}")
    for key, name, kind in (("--limit", "limit", float), ("--ilimit", "ilimit", float), ("--max_seed", "max_seed", int)):
        v = number(opts, key, kind, 0)
        if v is not None:
            args[name] = v
    for key, name in (("--dirmode", "dirmode"), ("--scriptmode", "scriptmode"), ("--stdout", "stdout")):
        if opts[key]:
            args[name] = opts[key]
    if not opts["--no-dir"]:
        args["dirs"] = list(opts["--dir"]) or ["."]
    seed = number(opts, "--seed", int) if opts["--seed"] is not None else rng.randrange(2**31)
    window = number(opts, "--window", int, 1, 64)
    return {"runtimes": runtimes, "files": files, "engines": engines,
            "argsets": [base_argv], "argsets_by_file": by_file, "seed": seed,
            "order": "plan" if opts["--plan-order"] else "shuffle", "args": args, "window": window}


def submit(cfg: Config, api: Api, action: str, data: dict[str, Any], cid: str, timeout: float = 60.0) -> dict[str, Any]:
    """Send a campaign request; wait until the orchestrator shows it (or reports why not)."""
    before = api.get(f"/api/campaigns/{cid}/")
    if action == "create_campaign" and before is not None:  # else its record would read as the answer
        raise CliError(f"campaign {cid} exists already (resume it with `manage.py benchmark --resume {cid}`)")
    with Session(cfg) as sess:
        sess.watch_log()
        sess.publish([(topics(cfg).control(), envelope(action, data))])
        deadline = time.monotonic() + timeout
        while True:
            why = sess.refusal(lambda sent: sent.get("campaign") == cid)
            if why is not None:
                raise CliError(f"the orchestrator refused campaign {cid}: {why}")
            try:
                s = api.get(f"/api/campaigns/{cid}/")
            except CliError:  # busy expanding a big plan (reads wait for its transaction): ask again
                s = None
            if s is not None and (before is None or s["resumes"] > before["resumes"]):
                return dict(s)
            if time.monotonic() > deadline:
                raise CliError(f"the orchestrator at {api.url} did not take campaign {cid} within {timeout:g} s "
                               "(is it subscribed to the broker in the config?)")
            time.sleep(0.05)


def keeps_campaigns(api: Api) -> bool:
    return api.get("/api/campaigns/") is not None


def expanded(plan: dict[str, Any]) -> list[tuple[int, str, str, str, list[str]]]:
    """The plan's cells (benchmarking/plan.py), a bad plan as a CliError."""
    try:
        return expand(plan)
    except PlanError as e:
        raise CliError(str(e)) from None


BATCH = 2000  # modules per create_batch: a 100k-cell plan is 50 messages of ~1 MB, not one of 50 MB


def run_without_campaigns(cfg: Config, api: Api, plan: dict[str, Any], cid: str, wait: bool, timeout: float) -> int:
    """The plan against an orchestrator that keeps no campaigns (the original's): expanded here (same
    order, seed and warm-up), sent as the original's benchmark sends it, one `create_batch` per
    runtime with `data.parent` (several for a very large plan); `wait` follows the `exited` messages."""
    from silverline.client import _uuids_in

    uuids: dict[str, str] = {}
    for name in plan["runtimes"]:
        rec = api.runtime(name)
        if rec is None:
            raise CliError(f"runtime {name!r} is unknown to the orchestrator at {api.url} (see `manage.py list`)")
        uuids[name] = str(rec["uuid"])
    groups: dict[str, list[dict[str, Any]]] = {}
    for idx, rt, f, e, a in expanded(plan):
        mod = cell_module(cid, idx, uuids[rt], f, e, a, plan["args"], new_uuid())
        groups.setdefault(mod.pop("parent"), []).append(mod)
    pending = {m["uuid"]: m for mods in groups.values() for m in mods}
    failed = {k: 0 for k in FAILED}
    messages: dict[str, str] = {}  # reason -> its first message
    s: dict[str, Any] = {"id": cid, "cells": len(pending), "done": 0, "data_pending": 0, "failed": failed, "running": 0,
                         "queued": 0, "finished": False}
    lock = threading.Lock()

    def on_control(topic: str, payload: bytes) -> None:
        if b'"exited"' not in payload:
            return
        try:
            msg = json.loads(payload)
        except ValueError:
            return
        data = msg.get("data") if isinstance(msg, dict) and msg.get("action") == "exited" else None
        with lock:
            if isinstance(data, dict) and pending.pop(str(data.get("uuid")), None) is not None:
                outcome, record = outcome_of(data)  # status "exited" (the original runtimes) or ours
                if outcome == "done":
                    s["done"] += 1
                else:
                    failed[outcome] += 1
                    messages.setdefault(outcome, record_message(record, outcome))

    with Session(cfg) as sess:
        sess.watch_log()
        if wait:
            sess.subscribe([topics(cfg).control("+")], on_control)
        sess.publish([(topics(cfg).control(), envelope("create_batch", {"modules": mods[i:i + BATCH], "parent": parent}))
                      for parent, mods in groups.items() for i in range(0, len(mods), BATCH)])
        print(f"benchmark: {s['cells']} modules ({len(plan['runtimes'])} runtimes x {len(plan['files'])} files x "
              f"{len(plan['engines'])} engines x argument sets), seed {plan['seed']}, sent as create_batch per runtime: the "
              f"orchestrator at {api.url} keeps no campaigns (--resume, --status, stored outcomes need this project's)",
              file=sys.stderr)
        print(cid)
        if not wait:
            return 0
        t0, last = time.monotonic(), 0.0
        while True:
            for err in sess.errors():
                with lock:
                    for u in _uuids_in(err):
                        if pending.pop(u, None) is not None:
                            failed["error"] += 1
                            messages.setdefault("error", f"refused: {err.get('desc') or err.get('description')}")
                            print(f"benchmark: refused {u}: {err.get('desc') or err.get('description')}", file=sys.stderr)
            with lock:
                left = len(pending)
                s["running"] = left
                s["finished"] = not left
            if not left:
                break
            if time.monotonic() - t0 > timeout:
                print(f"benchmark: {left} modules had not exited after {timeout:g} s", file=sys.stderr)
                break
            if time.monotonic() - last >= 10:
                print(progress_line(s, None)[1], file=sys.stderr, flush=True)
                last = time.monotonic()
            time.sleep(0.2)
    return finish(s, resumable=False, messages=messages)


@guard("benchmark")
def main(argv: list[str]) -> int:
    opts = parse(__doc__ or "", "benchmark", argv, multi=MULTI)
    setup(opts)
    cfg = config(opts)
    timeout = number(opts, "--timeout", float, 0)
    engines, problems = engine_names(list(opts["--engine"]) or ["wasmtime"])
    data_wait = number(opts, "--data-wait", float, 0)
    if opts["--dry-run"]:
        refuse(problems)
        plan = build_plan(opts, list(opts["--runtime"]), engines, random.Random())
        for idx, rt, f, e, a in expanded(plan):
            print(json.dumps(cell_module("dry-run", idx, rt, f, e, a, plan["args"], new_uuid())))
        return 0
    api = Api.from_opts(opts, cfg)
    if (opts["--status"] or opts["--resume"]) and not keeps_campaigns(api):
        raise CliError(f"the orchestrator at {api.url} keeps no benchmark campaigns (no /api/campaigns/; the original "
                       f"SilverLine orchestrator?): --{'status' if opts['--status'] else 'resume'} needs this project's "
                       "orchestrator")
    if opts["--status"]:
        if opts["--wait"] and opts["ID"]:
            s = follow(api, opts["ID"], timeout, data_wait=data_wait)
            return finish(s, messages=first_messages(api, s), api=api)
        return show_status(api, opts["ID"])
    if opts["--resume"]:
        cid = opts["ID"]
        s = submit(cfg, api, "resume_campaign", {"campaign": cid}, cid)
        print(f"campaign {cid} resumed: {s['queued'] + s['running']} cells to run", file=sys.stderr)
    else:
        rts, bad = find_runtimes(api, list(opts["--runtime"]))
        problems = bad + problems
        plan = build_plan(opts, [str(r["name"]) for r in rts], engines, random.Random())
        for rec in rts:
            problems += runtime_problems(rec, engines, plan["files"])
        refuse(problems)  # one line each, nothing sent
        cid = opts["--campaign"] or new_uuid()
        if not keeps_campaigns(api):  # e.g. the original SilverLine orchestrator (docs/compatibility.md)
            return run_without_campaigns(cfg, api, plan, cid, bool(opts["--wait"]), timeout)
        t0 = time.perf_counter()
        s = submit(cfg, api, "create_campaign", {"campaign": cid, "plan": plan}, cid)
        print(f"benchmark: campaign {cid}: {s['cells']} cells ({len(plan['runtimes'])} runtimes x {len(plan['files'])} files"
              f" x {len(plan['engines'])} engines x argument sets), seed {plan['seed']}, submitted in "
              f"{time.perf_counter() - t0:.1f} s", file=sys.stderr)
    print(cid)
    if not opts["--wait"]:
        print(f"follow it with: manage.py benchmark --status {cid} --wait", file=sys.stderr)
        return 0
    s = follow(api, cid, timeout, data_wait=data_wait)
    return finish(s, messages=first_messages(api, s), api=api)
