"""The tidy table of collected runs: one row per run, every layout (benchmarking/layouts.py)
read into the same columns; CSV always, Parquet where pyarrow or polars is installed (neither is
a dependency). A module that sent our layout and the seed's copy of the same runs is read from
ours only (layouts.NEWER); opcode counts are not runs and are not in the table."""
from __future__ import annotations

import csv
import importlib
import importlib.util
import json
from collections import defaultdict
from typing import Any, Iterator

from benchmarking import layouts
from benchmarking.analysis import AnalysisError
from benchmarking.analysis.records import Record, latest_runtimes, margs
from benchmarking.engines.catalog import resolve

# (name, type): "str", "int", "bool", "float"
COLUMNS: tuple[tuple[str, str], ...] = (
    ("campaign", "str"), ("cell", "int"), ("node", "str"), ("runtime", "str"), ("runtime_uuid", "str"),
    ("cpu", "str"), ("cpufreq_hz", "int"), ("cores", "int"), ("platform", "str"),
    ("module", "str"), ("module_uuid", "str"), ("file", "str"), ("engine", "str"), ("argv", "str"),
    ("kind", "str"), ("loop", "int"), ("run", "int"),
    ("wall_ns", "int"), ("utime_us", "int"), ("stime_us", "int"), ("maxrss_kb", "int"),
    ("outcome", "str"), ("exit_code", "int"), ("signal", "int"), ("seed", "int"),
    ("compile_ns", "int"), ("instantiate_ns", "int"), ("execute_ns", "int"),
    ("inside", "bool"), ("layout", "str"), ("received", "float"),
)
NAMES = tuple(c for c, _t in COLUMNS)
Row = dict[str, Any]


def _obj(v: Any) -> dict[str, Any]:
    return v if isinstance(v, dict) else {}


def _int(v: Any) -> int | None:
    return int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _context(rec: Record, platforms: dict[str, tuple[float, dict[str, Any]]]) -> Row:
    """The columns every run of `rec` shares."""
    rt = rec.get("runtime") or {}
    mod = rec.get("module") or {}
    args = margs(rec)
    rtid = str(rt.get("uuid") or "")
    reg = platforms.get(rtid, (0.0, rt))[1]
    name = str(reg.get("name") or rt.get("name") or rtid)
    plat = _obj(reg.get("platform"))
    cpu = _obj(plat.get("cpu"))
    freq = cpu.get("cpufreq")
    if not freq and isinstance(cpu.get("mhz"), (int, float)):  # what our configure writes
        freq = cpu["mhz"] * 1e6
    argv = args["argv"] if isinstance(args.get("argv"), list) else []
    cell = args.get("cell")
    return {"campaign": args.get("campaign") if isinstance(args.get("campaign"), str) else None,
            "cell": cell if isinstance(cell, int) and not isinstance(cell, bool) else None,
            "node": name.split(".")[0], "runtime": name, "runtime_uuid": rtid,
            "cpu": cpu.get("cpu") or cpu.get("model"), "cpufreq_hz": _int(freq), "cores": _int(cpu.get("cores")),
            "platform": json.dumps(plat, sort_keys=True) if plat else None,
            "module": mod.get("name"), "module_uuid": mod.get("uuid"), "file": mod.get("file"),
            "argv": json.dumps([str(a) for a in argv]), "layout": rec.get("type"), "received": rec.get("received")}


def _engine(v: Any) -> str:
    return resolve(str(v[0] if isinstance(v, list) and v else v or "wasmtime"))


def rows(records: list[Record]) -> Iterator[Row]:
    """One row per run of `records` (every column of COLUMNS, None where a layout has no value)."""
    platforms = latest_runtimes(records)
    types_of: dict[str, set[str]] = defaultdict(set)
    for rec in records:
        types_of[str((rec.get("module") or {}).get("uuid"))].add(str(rec.get("type")))
    for rec in records:
        ptype, data = str(rec.get("type")), rec.get("data")
        if not isinstance(data, dict) or layouts.NEWER.get(ptype) in types_of[str((rec.get("module") or {}).get("uuid"))]:
            continue
        base = _context(rec, platforms)
        if ptype == layouts.BENCHMARKING_V3:
            runs = data.get("runs") or {}
            first = _int(data.get("first_run")) or 0
            for i in range(len(runs.get("wall_ns") or [])):
                def col(c: str) -> Any:
                    v = runs.get(c)
                    return v[i] if isinstance(v, list) and i < len(v) else None
                yield {**base, "engine": _engine(col("engine")), "kind": "alone", "loop": None, "run": first + i,
                       **{c: col(c) for c in ("wall_ns", "utime_us", "stime_us", "maxrss_kb", "outcome", "exit_code",
                                              "signal", "seed", "compile_ns", "instantiate_ns", "execute_ns")},
                       "inside": None}
        elif ptype in layouts.TIMED_SEED:  # u32 records, 0 = a failed run (the seed does not say how)
            walls = data.get("wall_us") or []
            for i, w in enumerate(walls):
                def col(c: str) -> Any:
                    v = data.get(c)
                    return v[i] if isinstance(v, list) and i < len(v) else None
                yield {**base, "engine": _engine(margs(rec).get("engine")), "kind": "alone", "loop": None, "run": i,
                       "wall_ns": int(w) * 1000 if w else None, "utime_us": col("utime_us") if w else None,
                       "stime_us": col("stime_us") if w else None, "maxrss_kb": col("maxrss_kb") if w else None,
                       "outcome": "ok" if w else "failed", "exit_code": None, "signal": None, "seed": col("seed"),
                       "compile_ns": None, "instantiate_ns": None, "execute_ns": None, "inside": None}
        elif ptype == layouts.INTERFERENCE_V2:
            loops = data.get("loops") or []
            for lp in loops:
                r = lp.get("runs") or {}
                for i, (w, o) in enumerate(zip(r.get("wall_ns") or [], r.get("outcome") or [])):
                    inside = r.get("inside") or []
                    yield {**base, "file": lp.get("file"), "engine": _engine(lp.get("engine")),
                           "kind": f"interference-{len(loops)}", "loop": _int(lp.get("index")), "run": i,
                           "wall_ns": w, "utime_us": None, "stime_us": None, "maxrss_kb": None, "outcome": o,
                           "exit_code": None, "signal": None, "seed": None, "compile_ns": None,
                           "instantiate_ns": None, "execute_ns": None, "inside": inside[i] if i < len(inside) else None}
        elif ptype == layouts.INTERFERENCE:
            engs = margs(rec).get("engine")
            for key, walls in data.items():
                idx, _, file = str(key).partition(":")
                k = int(idx) if idx.isdigit() else 0
                eng = engs[k % len(engs)] if isinstance(engs, list) and engs else engs
                for i, w in enumerate(walls if isinstance(walls, list) else []):
                    yield {**base, "file": file, "engine": _engine(eng), "kind": f"interference-{len(data)}", "loop": k,
                           "run": i, "wall_ns": int(w) * 1000 if w else None, "utime_us": None, "stime_us": None,
                           "maxrss_kb": None, "outcome": "ok" if w else "failed", "exit_code": None, "signal": None,
                           "seed": None, "compile_ns": None, "instantiate_ns": None, "execute_ns": None, "inside": None}


def write_csv(table: list[Row], path: str) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=NAMES, extrasaction="ignore")
        w.writeheader()
        for r in table:
            w.writerow({k: ("" if r.get(k) is None else r[k]) for k in NAMES})


def parquet_writer() -> str | None:
    """`pyarrow` or `polars`, whichever is installed (None: neither)."""
    for name in ("pyarrow", "polars"):
        if importlib.util.find_spec(name) is not None:
            return name
    return None


def write_parquet(table: list[Row], path: str, writer: str) -> None:
    """`table` as Parquet with typed columns (nulls where a layout has no value)."""
    cols = {c: [r.get(c) for r in table] for c in NAMES}
    try:
        if writer == "pyarrow":
            pa = importlib.import_module("pyarrow")
            pq = importlib.import_module("pyarrow.parquet")
            types = {"str": pa.string(), "int": pa.int64(), "bool": pa.bool_(), "float": pa.float64()}
            pq.write_table(pa.table({c: pa.array(cols[c], type=types[t]) for c, t in COLUMNS}), path)
        else:
            pl = importlib.import_module("polars")
            ptypes = {"str": pl.Utf8, "int": pl.Int64, "bool": pl.Boolean, "float": pl.Float64}
            pl.DataFrame({c: pl.Series(c, cols[c], dtype=ptypes[t]) for c, t in COLUMNS}).write_parquet(path)
    except (ImportError, OSError, ValueError, TypeError) as e:
        raise AnalysisError(f"{path}: Parquet with {writer} failed: {type(e).__name__}: {e}") from None
