"""Stop SilverLine module(s): each is looked up on the orchestrator (uuid, name or uuid
suffix) and a delete is sent; running modules exit, queued or killed ones are dropped.
An unknown module is an error and nothing is sent.

Usage:
    manage.py stop [options] (-n MODULE)...
    manage.py stop -h | --help

Options:
    -n, --name MODULE       Module: name, uuid or uuid suffix; several: `-n a b`, `-n a -n b` or `-n a,b`;
                            also `--modules` (the original's spelling).
    -c, --cfg PATH          Config file (default: $SL_CONFIG, else config.json if present, else built-in defaults).
    --url URL               Orchestrator REST URL (default: http://{http}:{http_port} of the config).
    -v, --verbose LEVEL     Log level [default: WRN].
"""
from __future__ import annotations

from typing import Any

from cli._api import Api, CliError, config, envelope, guard, parse, publish, setup, topics
from cli._compat import spellings

SUMMARY = "Stop Silverline module(s)."

_GONE = ("D",)
ORIGINAL_SPELLINGS = {"--modules": "--name"}  # the original's stop.py option name


@guard("stop")
def main(argv: list[str]) -> int:
    opts = parse(__doc__, "stop", spellings(argv, ORIGINAL_SPELLINGS), multi=("-n", "--name"))
    setup(opts)
    cfg = config(opts)
    api = Api.from_opts(opts, cfg)
    found: list[dict[str, Any]] = []
    for q in [x for item in opts["--name"] for x in item.split(",") if x]:
        m = api.module(q)
        if m is None:
            raise CliError(f"unknown module {q!r}: no module has that name, uuid or uuid suffix at {api.url}")
        if m.get("status") in _GONE:
            raise CliError(f"module {q!r} ({m['uuid']}) has already exited")
        found.append(m)
    t = topics(cfg)
    publish(cfg, [(t.control(), envelope("delete", {"type": "module", "uuid": m["uuid"]})) for m in found])
    for m in found:
        print(f"stopping {m['name']} {m['uuid']} (state {m['status']}, runtime {m.get('parent')})")
    return 0
