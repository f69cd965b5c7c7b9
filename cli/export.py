"""Write collected benchmark data as a tidy table (`--table`) or in the layout Pitot's
preprocessing reads (`--pitot`).

Reads the collector's results store (`DIR/results.sqlite`) where a DIR has one, else its files
(`DIR/<date>/<runtime>/<module>.<uuid>.<type>.json`); DIR defaults to `data`.

`--table BASE`: one row per run, every layout in the same columns: campaign, cell, node,
runtime, runtime_uuid, cpu, cpufreq_hz, cores, platform (JSON; the latest registration's), module,
module_uuid, file, engine (canonical name), argv (JSON), kind (alone, interference-N), loop (the
co-runner's index), run, wall_ns, utime_us, stime_us, maxrss_kb, outcome, exit_code, signal,
seed, compile_ns, instantiate_ns, execute_ns, inside (the run lies in the window in which every
co-runner ran), layout, received. Written to BASE.csv, and to BASE.parquet where pyarrow or
polars is installed.

`--pitot OUT` output (docs/compatibility.md, "Pitot's preprocessing"):
- `OUT/runtimes.json`: {runtime uuid: {"uuid", "name" (the device), "runtime_type", "platform"}},
  one runtime per device and only devices with data in OUT (Pitot makes one platform per entry
  and engine: a device twice fails its dataset step); the device's runtime with the latest
  registration stands for it, and its platform is that registration's: `platform.cpu.cpu`,
  `platform.cpu.cpufreq` (Hz) and `platform.mem.*` (`manage.py configure` on the node; our
  `cpu.model` / `cpu.mhz` stand in for missing `cpu.cpu` / `cpufreq`);
- `OUT/<device>/<module name>.<uuid>.benchmarking.json`: {"wall", "utime", "stime" (us, 0 = failed
  run, as the original), "module": {"uuid", "name", "parent" (the device's runtime), "runtime"
  (the module's own), "file", "args"}};
- `OUT/<device>/<module name>.<uuid>.interference.json`: {"<i>:<file_i>": [us, ...], "module"}
  with the runs inside the window in which every co-runner ran (all runs when none was);
- `OPCODES/<device>/<module name>.<uuid>.opcodes.json`: {"opcodes": [256 counts], "module"}, one
  per workload (the latest).
Modules whose runs all failed are left out and counted. `module.file` is the `wasm/...` path
(relative to --root, else from its last `wasm/` part), also for AOT engines, and
`module.args.engine` the engine's canonical name (`wasmtime` -> `wasmtime-j`), so Pitot's
workload and platform names come out right.

Usage:
    manage.py export --table BASE [options] [DIR]...
    manage.py export --pitot OUT [options] [DIR]...
    manage.py export -h | --help

Options:
    --table BASE         Write the runs as BASE.csv (and BASE.parquet where pyarrow or polars is installed).
    --pitot OUT          Session directory to write (created; must be empty or absent).
    --opcodes DIR        Where the opcodes tree goes [default: OUT-opcodes].
    --root PREFIX        Make module files relative to PREFIX (e.g. /srv/bench: /srv/bench/wasm/x.wasm -> wasm/x.wasm).
    --device MODE        Device name: `node` (the runtime name before its first '.') or `runtime` (the
                         whole name) [default: node].
    --campaign ID        Only the runs (the modules) of this campaign.
    --check              Check the written layout as Pitot's platforms, opcodes, dataset and
                         interference steps read it (one platform per engine and device, every
                         field they read); exit 1 on problems.
    -v, --verbose LEVEL  Log level [default: WRN].
"""
from __future__ import annotations

import os
import sys
from typing import Any

from benchmarking.analysis import pitot, pitot_check, records, tidy
from cli._api import CliError, guard, parse, setup

SUMMARY = "Export collected data: a tidy table of runs (CSV, Parquet) or Pitot's layout."

# what tests and scripts reach through this module
workload_name = pitot.workload_name
pitot_problems = pitot_check.pitot_problems


@guard("export")
def main(argv: list[str]) -> int:
    opts = parse(__doc__ or "", "export", argv)
    setup(opts)
    return _export(opts)


def _table(opts: dict[str, Any], dirs: list[str]) -> int:
    base = opts["--table"]
    base = base[:-4] if base.endswith(".csv") else base
    loaded = records.read(dirs)
    table = list(tidy.rows(records.of_campaign(loaded.records, opts["--campaign"])))
    scope = f" of campaign {opts['--campaign']}" if opts["--campaign"] else ""
    if not table:
        raise CliError(f"no runs{scope} under {', '.join(dirs)}")
    os.makedirs(os.path.dirname(os.path.abspath(base)), exist_ok=True)
    tidy.write_csv(table, base + ".csv")
    written = [base + ".csv"]
    writer = tidy.parquet_writer()
    if writer:
        tidy.write_parquet(table, base + ".parquet", writer)
        written.append(base + ".parquet")
    src = f"the results store {', '.join(loaded.stores)}" if loaded.stores else "the collector's files"
    print(f"wrote {len(table)} runs{scope} from {src} to {' and '.join(written)}"
          + ("" if writer else " (no Parquet: neither pyarrow nor polars is installed)"), file=sys.stderr)
    return 0


def _export(opts: dict[str, Any]) -> int:
    dirs = records.check_dirs(opts["DIR"])
    if opts["--table"]:
        return _table(opts, dirs)
    out = opts["--pitot"]
    if os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)):
        raise CliError(f"--pitot {out!r} exists and is not an empty directory (Pitot reads every file in it)")
    if opts["--device"] not in ("node", "runtime"):
        raise CliError(f"--device must be node or runtime, got {opts['--device']!r}")
    opcodes_dir = out.rstrip("/") + "-opcodes" if opts["--opcodes"] == "OUT-opcodes" else opts["--opcodes"]
    loaded = records.read(dirs)
    recs = records.of_campaign(loaded.records, opts["--campaign"])
    res = pitot.export(recs, out, opcodes_dir, opts["--root"], opts["--device"],
                       loaded.records if opts["--campaign"] else None)
    scope = f" of campaign {opts['--campaign']}" if opts["--campaign"] else ""
    if not res.written():
        failed = f" ({len(res.all_failed)} module(s) whose runs all failed)" if res.all_failed else ""
        raise CliError(f"no benchmark data{scope} under {', '.join(dirs)}{failed}")
    print(f"wrote {res.benchmarking} benchmarking and {res.interference} interference files{scope} of "
          f"{len(res.devices)} device(s) to {out}, {res.opcodes} opcodes files to {opcodes_dir}"
          + (f"; left out {len(res.all_failed)} module(s) whose runs all failed" if res.all_failed else ""),
          file=sys.stderr)
    for m in res.all_failed:
        print(f"  all runs failed: {m}", file=sys.stderr)
    for n in res.notes:
        print(f"note: {n}", file=sys.stderr)
    if opts["--check"]:
        c = pitot_check.check(out, opcodes_dir)
        for n in c.notes:
            print(f"note: {n}", file=sys.stderr)
        for p in c.problems:
            print(p, file=sys.stderr)
        if c.problems:
            print(f"{len(c.problems)} problem(s) for Pitot's preprocessing", file=sys.stderr)
            return 1
        print("layout ok for Pitot's preprocessing", file=sys.stderr)
    return 0
