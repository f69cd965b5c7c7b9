"""Stop SilverLine module(s): each is looked up on the orchestrator (uuid, name or uuid suffix)
and a delete is sent; running modules exit, queued or killed ones are dropped. A name that
several modules share stops every one of them with --all, and is refused with their count
without it. An unknown module is an error and nothing is sent.

Usage:
    manage.py stop [options] (-n MODULE)...
    manage.py stop -h | --help

Options:
    -n, --name MODULE       Module: name, uuid or uuid suffix; several: `-n a b`, `-n a -n b` or `-n a,b`;
                            also `--modules` (the original's spelling).
    --all                   Stop every module of a name that several share (default: refuse, with the count).
    -c, --cfg PATH          Config file (default: $SL_CONFIG, else config.json if present, else built-in defaults).
    --url URL               Orchestrator REST URL (default: http://{http}:{http_port} of the config).
    -v, --verbose LEVEL     Log level [default: WRN].

Examples:
    manage.py stop -n worker --all
"""
from __future__ import annotations

from cli._api import client, config, guard, parse, setup
from cli._compat import spellings

SUMMARY = "Stop Silverline module(s)."

ORIGINAL_SPELLINGS = {"--modules": "--name"}  # the original's stop.py option name


@guard("stop")
def main(argv: list[str]) -> int:
    opts = parse(__doc__ or "", "stop", spellings(argv, ORIGINAL_SPELLINGS), multi=("-n", "--name"))
    setup(opts)
    cfg = config(opts)
    with client(opts, cfg) as c:
        # every name is looked up before anything is sent: a mistake stops nothing
        found = {q: c.find(q, every=bool(opts["--all"])) for q in [x for item in opts["--name"] for x in item.split(",") if x]}
        c.delete([m for mods in found.values() for m in mods])
        for q, mods in found.items():
            for m in mods:
                print(f"stopping {m['name']} {m['uuid']} (state {m['status']}, runtime {m.get('parent')})")
            if len(mods) > 1:
                print(f"stopping {len(mods)} modules named {q!r}")
    return 0
