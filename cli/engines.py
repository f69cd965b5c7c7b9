"""List the benchmark engines this node can run (embedded and command-line, seed names).

Usage:
    manage.py engines [--json] [--available]
    manage.py engines -h | --help

Options:
    --json       One JSON object: name -> {"available", "kind", "detail"}.
    --available  Only the engines that can run here.
"""
from __future__ import annotations

import json
from typing import Any

from cli._api import guard, parse

SUMMARY = "List the benchmark engines this node can run."


def engine_table(only_available: bool = False) -> dict[str, dict[str, Any]]:
    from runtimes.benchmarking import engines

    out: dict[str, dict[str, Any]] = {}
    for name in engines.all_names():
        ok, detail = engines.availability(name)
        if only_available and not ok:
            continue
        kind = "embedded" if name in engines.EMBEDDED else "cli"
        desc = engines.EMBEDDED.get(name) or engines.CLI[name][3]
        out[name] = {"available": ok, "kind": kind, "description": desc, "detail": detail}
    return out


@guard("engines")
def main(argv: list[str]) -> int:
    opts = parse(__doc__ or "", "engines", argv)
    table = engine_table(bool(opts["--available"]))
    if opts["--json"]:
        print(json.dumps(table))
        return 0
    width = max(len(n) for n in table) if table else 6
    print(f"{'engine':<{width}}  {'kind':<8}  {'here':<4}  detail")
    for name, e in table.items():
        print(f"{name:<{width}}  {e['kind']:<8}  {'yes' if e['available'] else 'no':<4}  {e['description']}: {e['detail']}")
    return 0
