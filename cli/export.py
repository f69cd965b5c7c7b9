"""Write collected benchmark data in the layout Pitot's preprocessing reads (and the original
collector writes): a session directory with `runtimes.json` and one JSON file per module, and
the opcode counts in a tree of their own.

Reads our collector's files (`DIR/<date>/<runtime>/<module>.<uuid>.<type>.json`, default `data`).
Output (docs/compatibility.md, "Pitot's preprocessing"):
- `OUT/runtimes.json`: {runtime uuid: {"uuid", "name" (the device), "runtime_type", "platform"}};
  `platform.cpu.cpu` and `platform.cpu.cpufreq` (Hz) and `platform.mem.*` come from the node's
  registration (`manage.py configure` on the node); where our configure wrote `cpu.model` /
  `cpu.mhz` those stand in;
- `OUT/<device>/<module name>.<uuid>.benchmarking.json`: {"wall", "utime", "stime" (us, 0 = failed
  run, as the original), "module": {"uuid", "name", "parent", "file", "args"}};
- `OUT/<device>/<module name>.<uuid>.interference.json`: {"<i>:<file_i>": [us, ...], "module"}
  with the runs inside the window in which every co-runner ran (all runs when none was);
- `OPCODES/<device>/<module name>.<uuid>.opcodes.json`: {"opcodes": [256 counts], "module"}.
`module.file` is the `wasm/...` path (relative to --root, else from its last `wasm/` part), also
for AOT engines (the engine is `module.args.engine`), so Pitot's workload names come out right.

Usage:
    manage.py export --pitot OUT [options] [DIR]...
    manage.py export -h | --help

Options:
    --pitot OUT          Session directory to write (created; must be empty or absent).
    --opcodes DIR        Where the opcodes tree goes [default: OUT-opcodes].
    --root PREFIX        Make module files relative to PREFIX (e.g. /srv/bench: /srv/bench/wasm/x.wasm -> wasm/x.wasm).
    --device MODE        Device name: `node` (the runtime name before its first '.') or `runtime` (the
                         whole name) [default: node].
    --check              Check the written layout as Pitot's preprocessing reads it; exit 1 on problems.
    -v, --verbose LEVEL  Log level [default: WRN].
"""
from __future__ import annotations

import os
import sys
from typing import Any

from benchmarking.analysis import AnalysisError, pitot, pitot_check, records
from cli._api import CliError, guard, parse, setup

SUMMARY = "Export collected data in Pitot's layout (runtimes.json, one file per module, opcodes tree)."

# what tests and scripts reach through this module
workload_name = pitot.workload_name
pitot_problems = pitot_check.pitot_problems


@guard("export")
def main(argv: list[str]) -> int:
    opts = parse(__doc__ or "", "export", argv)
    setup(opts)
    try:
        return _export(opts)
    except AnalysisError as e:
        raise CliError(str(e)) from None


def _export(opts: dict[str, Any]) -> int:
    dirs = records.check_dirs(opts["DIR"])
    out = opts["--pitot"]
    if os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)):
        raise CliError(f"--pitot {out!r} exists and is not an empty directory (Pitot reads every file in it)")
    if opts["--device"] not in ("node", "runtime"):
        raise CliError(f"--device must be node or runtime, got {opts['--device']!r}")
    opcodes_dir = out.rstrip("/") + "-opcodes" if opts["--opcodes"] == "OUT-opcodes" else opts["--opcodes"]
    counts = pitot.export(records.read(dirs).records, out, opcodes_dir, opts["--root"], opts["--device"])
    if not any(counts.values()):
        raise CliError(f"no benchmark data under {', '.join(dirs)}")
    print(f"wrote {counts['benchmarking']} benchmarking and {counts['interference']} interference files to {out}, "
          f"{counts['opcodes']} opcodes files to {opcodes_dir}", file=sys.stderr)
    if opts["--check"]:
        problems = pitot_check.pitot_problems(out, opcodes_dir)
        for p in problems:
            print(p, file=sys.stderr)
        if problems:
            return 1
        print("layout ok for Pitot's preprocessing", file=sys.stderr)
    return 0
