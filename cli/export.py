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

import glob
import json
import os
import sys
from collections import defaultdict
from typing import Any

from benchmarking import layouts
from cli._api import CliError, guard, parse, setup
from cli.report import data_dirs

SUMMARY = "Export collected data in Pitot's layout (runtimes.json, one file per module, opcodes tree)."

TIMED_OURS = layouts.BENCHMARKING_V3
TIMED_SEED = layouts.TIMED_SEED
PITOT_MEM = ("l1d_size", "l1i_size", "l2_size", "l2_line", "l3_size")
WORKLOAD_PATTERNS = ((".wasm", ""), ("wasm/", ""), ("data/apps/python/", ""), ("apps/wasi-python3.13", "python"),
                     ("apps/python", "python"))


def workload_name(module: dict[str, Any]) -> str:
    """The workload name Pitot derives from a module record (docs/compatibility.md, "Pitot's preprocessing")."""
    name = ":".join([module["file"]] + list((module.get("args") or {}).get("argv", [])))
    for k, v in WORKLOAD_PATTERNS:
        name = name.replace(k, v)
    return name


def pitot_file(path: str, root: str | None) -> str:
    """`wasm/...` for a module path on the node."""
    if root:
        rel = os.path.relpath(path, root)
        if not rel.startswith(".."):
            return rel
    i = path.rfind("wasm/")
    if i > 0 and path[i - 1] == "/":
        return path[i:]
    return path.lstrip("/") if i != 0 else path


def _platform(rt: dict[str, Any]) -> dict[str, Any]:
    plat = dict(rt.get("platform") or {})
    given = plat.get("cpu")
    cpu = dict(given) if isinstance(given, dict) else {}
    if not cpu.get("cpu") and cpu.get("model"):
        cpu["cpu"] = cpu["model"]
    if not cpu.get("cpufreq") and cpu.get("mhz"):
        cpu["cpufreq"] = int(float(cpu["mhz"]) * 1e6)
    plat["cpu"] = cpu
    plat["mem"] = dict(plat.get("mem") or {})
    return plat


def load_records(dirs: list[str]) -> list[dict[str, Any]]:
    out = []
    for path in sorted(p for d in dirs for p in glob.glob(os.path.join(d, "**", "*.json"), recursive=True)):
        try:
            with open(path) as f:
                rec = json.load(f)
        except (OSError, ValueError):
            continue
        if isinstance(rec, dict) and "data" in rec and isinstance(rec.get("module"), dict):
            out.append(rec)
    return out


def export(dirs: list[str], out: str, opcodes_dir: str, root: str | None, device_mode: str) -> dict[str, int]:
    """Write the layout; returns counts of files written by kind."""
    records = load_records(dirs)
    by_module: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for rec in records:
        by_module[str(rec["module"].get("uuid"))].append(rec)
    runtimes: dict[str, dict[str, Any]] = {}
    counts = {"benchmarking": 0, "interference": 0, "opcodes": 0}
    os.makedirs(out, exist_ok=True)
    for uuid, recs in sorted(by_module.items()):
        rt = recs[0].get("runtime") or {}
        rtid = str(rt.get("uuid") or "unknown")
        name = str(rt.get("name") or rtid)
        device = name.split(".")[0] if device_mode == "node" else name
        runtimes[rtid] = {"uuid": rtid, "name": device, "runtime_type": rt.get("runtime_type"), "platform": _platform(rt)}
        mod = recs[0]["module"]
        files = [pitot_file(f, root) for f in str(mod.get("file") or "").split(":")]
        module = {"uuid": uuid, "name": mod.get("name"), "parent": rtid, "file": ":".join(files),
                  "args": dict(mod.get("args") or {})}
        module["args"].setdefault("argv", [])
        if isinstance(module["args"].get("engine"), list):
            module["args"]["engine"] = module["args"]["engine"][0]
        types = {r["type"] for r in recs}
        base = f"{_safe(str(mod.get('name') or uuid))}.{uuid}"
        if TIMED_OURS in types or types & set(TIMED_SEED):
            body = _timed(recs, TIMED_OURS in types)
            _write(os.path.join(out, device, f"{base}.benchmarking.json"), {**body, "module": module})
            counts["benchmarking"] += 1
        if types & {layouts.INTERFERENCE, layouts.INTERFERENCE_V2}:
            body = _interference(recs, files, layouts.INTERFERENCE_V2 in types)
            _write(os.path.join(out, device, f"{base}.interference.json"), {**body, "module": module})
            counts["interference"] += 1
        ops = [r for r in recs if r["type"] == layouts.OPCODES]
        if ops:
            _write(os.path.join(opcodes_dir, device, f"{base}.opcodes.json"),
                   {"opcodes": ops[0]["data"]["counts"], "module": module})
            counts["opcodes"] += 1
    _write(os.path.join(out, "runtimes.json"), runtimes, indent=4)
    return counts


def _timed(recs: list[dict[str, Any]], ours: bool) -> dict[str, list[int]]:
    wall: list[int] = []
    ut: list[int] = []
    st: list[int] = []
    if ours:
        parts = sorted((r for r in recs if r["type"] == TIMED_OURS), key=lambda r: r["data"].get("first_run", 0))
        for r in parts:
            runs = r["data"]["runs"]
            for w, u, s, o in zip(runs["wall_ns"], runs["utime_us"], runs["stime_us"], runs["outcome"]):
                ok = o == "ok"
                wall.append(max(1, w // 1000) if ok else 0)
                ut.append(u if ok else 0)
                st.append(s if ok else 0)
    else:
        for r in sorted((r for r in recs if r["type"] in TIMED_SEED), key=lambda r: r.get("received", 0)):
            d = r["data"]
            wall += d.get("wall_us", [])
            ut += d.get("utime_us", [])
            st += d.get("stime_us", [])
    return {"wall": wall, "utime": ut, "stime": st}


def _interference(recs: list[dict[str, Any]], files: list[str], ours: bool) -> dict[str, list[int]]:
    if ours:
        data = next(r["data"] for r in recs if r["type"] == layouts.INTERFERENCE_V2)
        out: dict[str, list[int]] = {}
        for lp in data["loops"]:
            r = lp["runs"]
            inside = [i for i, x in enumerate(r["inside"]) if x] or list(range(len(r["wall_ns"])))
            out[f"{lp['index']}:{files[lp['index']]}"] = [
                max(1, r["wall_ns"][i] // 1000) if r["outcome"][i] == "ok" else 0 for i in inside]
        return out
    data = next(r["data"] for r in recs if r["type"] == layouts.INTERFERENCE)
    return {f"{k.partition(':')[0]}:{files[int(k.partition(':')[0])]}": v for k, v in data.items()}


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-@+=" else "_" for c in name)[:64] or "unnamed"


def _write(path: str, obj: Any, indent: int | None = None) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(obj, f, indent=indent)


def pitot_problems(out: str, opcodes_dir: str | None = None) -> list[str]:
    """What Pitot's preprocessing would trip over in `out` (and the opcodes tree), read its way:
    every JSON below `out` except runtimes.json; platform = engine:device; workload from
    module.file + argv; `wall` with a positive sample; interference keys `<i>:<file_i>`."""
    problems: list[str] = []
    try:
        with open(os.path.join(out, "runtimes.json")) as f:
            rts = json.load(f)
    except (OSError, ValueError) as e:
        return [f"{out}/runtimes.json: {e}"]
    for rtid, rt in rts.items():
        cpu = ((rt.get("platform") or {}).get("cpu")) or {}
        if not isinstance(rt.get("name"), str) or not rt["name"]:
            problems.append(f"runtimes.json[{rtid}]: no name (the device)")
        if not isinstance(cpu.get("cpu"), str) or not cpu["cpu"]:
            problems.append(f"runtimes.json[{rtid}]: platform.cpu.cpu is missing (run `manage.py configure` on the node)")
        if not isinstance(cpu.get("cpufreq"), (int, float)) or cpu["cpufreq"] <= 0:
            problems.append(f"runtimes.json[{rtid}]: platform.cpu.cpufreq (Hz) is missing")
        for k in PITOT_MEM:
            v = ((rt.get("platform") or {}).get("mem") or {}).get(k)
            if v is not None and (not isinstance(v, int) or v < 0):  # 0 = none (the presence flag)
                problems.append(f"runtimes.json[{rtid}]: platform.mem.{k} must be a non-negative integer, got {v!r}")
    for path in sorted(glob.glob(os.path.join(out, "**", "*"), recursive=True)):
        if os.path.isdir(path) or os.path.basename(path) == "runtimes.json":
            continue
        try:
            with open(path) as f:
                d = json.load(f)
            m = d["module"]
            if m["parent"] not in rts:
                problems.append(f"{path}: module.parent {m['parent']} is not in runtimes.json")
            if not isinstance(m["args"]["engine"], str) or not isinstance(m["args"].get("argv", []), list):
                problems.append(f"{path}: module.args.engine must be a string and argv a list")
            for f_ in m["file"].split(":"):
                if not f_.startswith("wasm/"):
                    problems.append(f"{path}: module.file part {f_!r} does not start with wasm/")
            name = workload_name(m)
            if not name or name.startswith("/"):
                problems.append(f"{path}: workload name {name!r} is not a relative name")
            if "wall" in d:
                if not all(isinstance(x, int) and x >= 0 for x in d["wall"]) or not any(x > 0 for x in d["wall"]):
                    problems.append(f"{path}: wall needs non-negative integers with at least one > 0")
            else:
                for i, f_ in enumerate(m["file"].split(":")):
                    if not isinstance(d.get(f"{i}:{f_}"), list):
                        problems.append(f"{path}: no key {i}:{f_} (interference)")
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            problems.append(f"{path}: {type(e).__name__}: {e}")
    if opcodes_dir and os.path.isdir(opcodes_dir):
        for path in sorted(glob.glob(os.path.join(opcodes_dir, "**", "*"), recursive=True)):
            if os.path.isdir(path):
                continue
            try:
                with open(path) as f:
                    d = json.load(f)
                if len(d["opcodes"]) != 256 or not d["module"]["file"].startswith("wasm/"):
                    problems.append(f"{path}: opcodes must be 256 counts of a wasm/ module")
            except (OSError, ValueError, KeyError, TypeError) as e:
                problems.append(f"{path}: not an opcodes file ({type(e).__name__}: {e}); the opcodes tree must hold only those")
    return problems


@guard("export")
def main(argv: list[str]) -> int:
    opts = parse(__doc__ or "", "export", argv)
    setup(opts)
    dirs = data_dirs(opts)
    out = opts["--pitot"]
    if os.path.exists(out) and (not os.path.isdir(out) or os.listdir(out)):
        raise CliError(f"--pitot {out!r} exists and is not an empty directory (Pitot reads every file in it)")
    if opts["--device"] not in ("node", "runtime"):
        raise CliError(f"--device must be node or runtime, got {opts['--device']!r}")
    opcodes_dir = out.rstrip("/") + "-opcodes" if opts["--opcodes"] == "OUT-opcodes" else opts["--opcodes"]
    counts = export(dirs, out, opcodes_dir, opts["--root"], opts["--device"])
    if not any(counts.values()):
        raise CliError(f"no benchmark data under {', '.join(dirs)}")
    print(f"wrote {counts['benchmarking']} benchmarking and {counts['interference']} interference files to {out}, "
          f"{counts['opcodes']} opcodes files to {opcodes_dir}", file=sys.stderr)
    if opts["--check"]:
        problems = pitot_problems(out, opcodes_dir)
        for p in problems:
            print(p, file=sys.stderr)
        if problems:
            return 1
        print("layout ok for Pitot's preprocessing", file=sys.stderr)
    return 0
