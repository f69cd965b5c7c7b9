"""Launch SilverLine module(s) on every device of the manifest, through the orchestrator.

One `create` request per device and file goes to `{realm}/proc/control` on the MQTT broker of
the config file; the runtime is picked by name (a template, default `{name}`, i.e. a node
started with `start.py -n {name}`). Requests the orchestrator refuses are reported.
Templates (-f, -r, -n, -a, -e) may use the manifest fields and {file} (the file's name without
extension); write {{ and }} for literal braces.

Usage:
    manage.py runall [options] (-f FILE)... [-a ARG]... [-e ENV]... [--dir DIR]... [--engine ENGINE]... [-C CHANNEL]...

Options:
    -f FILE, --file=FILE        Module file as the runtimes see it (repeatable; templates allowed).
    -r RUNTIME, --runtime=RUNTIME  Runtime name/uuid/suffix on each device [default: {name}].
    -n NAME, --name=NAME        Module name [default: {file}.{name}].
    -a ARG, --argv=ARG          Module argument(s); each value is shell-split, repeat for more.
    -e ENV, --env=ENV           Environment variable KEY=VALUE; repeat for more.
    --dir=DIR                   WASI preopened directory (visible at the same path); repeat for more.
    -t NS, --period=NS          CPU reservation period in ns [default: 10000000].
    -u U, --utilization=U       CPU share of the period, 0 < U <= 1; 0 = no reservation [default: 0].
    -k N, --repeat=N            Benchmarking: number of runs [default: 0].
    --limit=SEC                 Benchmarking: time limit per run, seconds.
    --engine=ENGINE             Benchmarking: engine; repeat for several.
    --fault_crash=MODE          On a crash: ignore or restart.
    -C CHANNEL, --channel=CHANNEL  Grant a channel PATH[:MODE[:TOPIC]] (as `manage.py run`).
    --mqtt=HOST:PORT            MQTT broker (default: mqtt / mqtt_port of the config file).
    --realm=REALM               Realm (default: realm of the config file).
    --listen=SEC                Wait this long for refusals on proc/log [default: 2].
%s
"""
from __future__ import annotations

import os
from typing import Any

from cli._api import CliError
from cli.run import build_args, build_channels
from cluster.launch import LaunchError, Request, publish_creates
from cluster.options import COMMON_OPTIONS, UsageError, guard, load_context, parse

__doc__ = __doc__ % COMMON_OPTIONS
SUMMARY = "Launch Silverline module(s) across cluster nodes."


def _num(args: dict[str, Any], key: str, kind: type) -> Any:
    try:
        return kind(args[key])
    except (TypeError, ValueError):
        raise UsageError(f"{key} must be a number, got {args[key]!r}") from None


@guard
def main(argv: list[str]) -> int:
    args = parse(__doc__, "runall", argv)
    ctx = load_context(args)
    cfg = ctx.config
    if args["--mqtt"]:
        host, _, port = args["--mqtt"].rpartition(":")
        if not host or not port.isdigit():
            raise UsageError(f"--mqtt must be HOST:PORT, got {args['--mqtt']!r}")
        cfg.mqtt, cfg.mqtt_port = host, int(port)
    if args["--realm"]:
        cfg.realm = args["--realm"]
    try:  # the same `args`/`channels` as `manage.py run`
        mod_args = build_args(args)
        channels = build_channels(args["--channel"])
    except CliError as e:
        raise UsageError(str(e)) from None
    requests: list[Request] = []
    for d in ctx.devices:
        for ftemplate in args["--file"]:
            f = ctx.render(ftemplate, d)
            ctx.extra["file"] = os.path.splitext(os.path.basename(f))[0]
            per_device = dict(mod_args, argv=[ctx.render(a, d) for a in mod_args["argv"]],
                              env=[ctx.render(e, d) for e in mod_args["env"]])
            requests.append(Request(device=d.name, runtime=ctx.render(args["--runtime"], d), file=f,
                                    name=ctx.render(args["--name"], d), args=per_device, channels=channels))
    if ctx.dry_run:
        for r in requests:
            print(f"{r.device}: create {r.name} ({r.file}) on runtime {r.runtime}")
        return 0
    try:
        publish_creates(cfg, requests, listen_s=_num(args, "--listen", float))
    except LaunchError as e:
        raise UsageError(str(e)) from e
    width = max(12, *(len(r.device) for r in requests))
    for r in requests:
        state = "FAILED  " + r.error if r.error else f"created {r.uuid}"
        print(f"{r.device:<{width}}  {r.name}  on {r.runtime}: {state}")
    failed = sum(1 for r in requests if r.error)
    print(f"{len(requests)} module(s) on {len(ctx.devices)} device(s): {len(requests) - failed} sent, {failed} refused")
    return 0 if failed == 0 or ctx.ignore_err else 1
