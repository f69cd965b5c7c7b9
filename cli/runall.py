"""Launch SilverLine module(s) on every device of the manifest, through the orchestrator.

One `create` request per device and file goes to `{realm}/proc/control` on the MQTT broker of
the config file; the runtime is picked by name (a template, default `{name}`, i.e. a node
started with `start.py -n {name}`). Requests the orchestrator refuses are reported.
Templates may use the manifest fields and {file} (the file's name without extension).

Usage:
    manage.py runall [options] (-f FILE)... [-r RUNTIME] [-n NAME] [-a ARGV] [(-e ENV)...]

Options:
    -f FILE, --file=FILE        Module file as the runtimes see it (repeatable; templates allowed).
    -r RUNTIME, --runtime=RUNTIME  Runtime name/uuid/suffix on each device [default: {name}].
    -n NAME, --name=NAME        Module name [default: {file}.{name}].
    -a ARGV, --argv=ARGV        Arguments passed to the module (one shell-quoted string).
    -e ENV, --env=ENV           Environment variable K=V for the module (repeatable).
    --engine=ENGINE             Engine for benchmarking runtimes (args.engine).
    --repeat=N                  Run each module N times (benchmarking runtimes).
    --limit=SEC                 Time limit in seconds (args.limit).
    --mqtt=HOST:PORT            MQTT broker (default: mqtt / mqtt_port of the config file).
    --realm=REALM               Realm (default: realm of the config file).
    --listen=SEC                Wait this long for refusals on proc/log [default: 2].
%s
"""
from __future__ import annotations

import os
import shlex
from typing import Any

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
    env = list(args["--env"] or [])
    bad = [e for e in env if "=" not in e]
    if bad:
        raise UsageError(f"-e wants K=V, got {bad[0]!r}")
    try:
        mod_argv = shlex.split(args["--argv"] or "")
    except ValueError as e:
        raise UsageError(f"-a: {e}") from None
    extra: dict[str, Any] = {}
    if args["--engine"]:
        extra["engine"] = args["--engine"]
    if args["--repeat"]:
        extra["repeat"] = _num(args, "--repeat", int)
    if args["--limit"]:
        extra["limit"] = _num(args, "--limit", float)
    requests: list[Request] = []
    for d in ctx.devices:
        for ftemplate in args["--file"]:
            f = ctx.render(ftemplate, d)
            stem = os.path.splitext(os.path.basename(f))[0]
            fields = {"file": stem}
            ctx.extra.update(fields)
            requests.append(Request(device=d.name, runtime=ctx.render(args["--runtime"], d), file=f, name=ctx.render(args["--name"], d)))
    if ctx.dry_run:
        for r in requests:
            print(f"{r.device}: create {r.name} ({r.file}) on runtime {r.runtime}")
        return 0
    try:
        publish_creates(cfg, requests, argv=mod_argv, env=env, extra_args=extra, listen_s=_num(args, "--listen", float))
    except LaunchError as e:
        raise UsageError(str(e)) from e
    width = max(12, *(len(r.device) for r in requests))
    for r in requests:
        state = "FAILED  " + r.error if r.error else f"created {r.uuid}"
        print(f"{r.device:<{width}}  {r.name}  on {r.runtime}: {state}")
    failed = sum(1 for r in requests if r.error)
    print(f"{len(requests)} module(s) on {len(ctx.devices)} device(s): {len(requests) - failed} sent, {failed} refused")
    return 0 if failed == 0 or ctx.ignore_err else 1
