"""Every profile layout, ours and the original's, defined once: the type names, which are the
seed's and which are ours, which older layout each of ours replaces, and the codecs. The
benchmarking runtimes encode with it, the collector decodes with it, `manage.py report` and
`manage.py export` read the collector's files by its names (docs/protocol.md, "Profiles").

Binary formats are little-endian; the topic's `{type}` names the format:

| type | payload | decoded (JSON) |
|---|---|---|
| `benchmarking` | per sample `[wall_us:u32][utime_us:u32][stime_us:u32]` (the seed's v1) | columns `wall_us, utime_us, stime_us` |
| `benchmarking-v2` | per sample `[wall_us][utime_us][stime_us][maxrss_kb]`, u32 each (ours; what we send) | + `maxrss_kb` |
| `seeded` | per sample `[wall][utime][stime][seed]`, u32 each | columns `wall_us, utime_us, stime_us, seed` |
| `interference` | JSON `{"{i}:{file}": [wall_us, ...]}`, 0 = failed run | the same object |
| `opcodes` | `[count:u64] x 256` by opcode byte | `counts` (256), `total` |
| `instrumented` | `[loop_count:u32] x N` | `loops` |
| `deployed` | records `[start:u64][wall:u32][utime:u32][stime:u32][maxrss:u32][ch_in:u32][ch_out:u32]` | columns |
| `benchmarking-v3` | JSON, every run with its outcome (ours, the current version; see below) | the same object |
| `interference-v2` | JSON, every loop's runs with start/end and the overlap window (ours) | the same object |

Values that do not fit a u32 are saturated to 2**32-1 on encoding (a run of more than 71 min);
that is why v3 exists: JSON integers (wall time in ns, u64 range), and a failed run is a row
with its outcome, never a 0 sample.

`benchmarking-v3` (benchmarking and benchmarking/seeded):
`{"v": 3, "runs": {COLUMN: [one value per run]}, "errors": {"<run>": "text"}, "env": {...},
"warmup": N, "part": [i, n]}`; columns `wall_ns, utime_us, stime_us, maxrss_kb, outcome,
exit_code, signal, engine` and, when present, `seed`, `compile_ns, instantiate_ns, execute_ns`
(None for a run without phase times). `outcome` is one of OUTCOMES.

`interference-v2`: `{"v": 2, "window_ns": [start, end] | None, "loops": [{"index", "file",
"engine", "runs": {"start_ns", "wall_ns", "outcome", "inside"}}], "env": {...}}`: times on the
node's monotonic clock; `inside` is true for a run that lies wholly in the window in which
every co-runner was running.
Python 3.10 compatible.
"""
from __future__ import annotations

import struct
from typing import Any

import orjson

U32_MAX = 0xFFFFFFFF
U64_MAX = (1 << 64) - 1


class PayloadError(ValueError):
    """A payload that does not match its type's format; the text says how."""


# the type names (the topic's `{type}`, the last part of a collector file's name)
BENCHMARKING_SEED = "benchmarking"
BENCHMARKING_V2 = "benchmarking-v2"
SEEDED = "seeded"
DEPLOYED = "deployed"
INTERFERENCE = "interference"
OPCODES = "opcodes"
INSTRUMENTED = "instrumented"
BENCHMARKING_V3 = "benchmarking-v3"
INTERFERENCE_V2 = "interference-v2"

# type -> (struct of one record, column names)
_RECORDS: dict[str, tuple[struct.Struct, tuple[str, ...]]] = {
    BENCHMARKING_SEED: (struct.Struct("<3I"), ("wall_us", "utime_us", "stime_us")),
    BENCHMARKING_V2: (struct.Struct("<4I"), ("wall_us", "utime_us", "stime_us", "maxrss_kb")),
    SEEDED: (struct.Struct("<4I"), ("wall_us", "utime_us", "stime_us", "seed")),
    DEPLOYED: (struct.Struct("<Q6I"), ("start", "wall_us", "utime_us", "stime_us", "maxrss_kb", "ch_in", "ch_out")),
}
TYPES = tuple(_RECORDS) + (INTERFERENCE, OPCODES, INSTRUMENTED, BENCHMARKING_V3, INTERFERENCE_V2)
BENCHMARKING = BENCHMARKING_V3  # the type our benchmarking runtime sends (with the seed's, see LAYOUTS)
# what the original collector (RM services/profile) parses: it drops every other type
SEED_TYPES = (BENCHMARKING_SEED, SEEDED, INTERFERENCE, OPCODES, INSTRUMENTED, DEPLOYED)
# the timed layouts of u32 records (wall_us first), where a failed run is an all-zero record
TIMED_SEED = (BENCHMARKING_SEED, BENCHMARKING_V2, SEEDED)
# ours, which say which part of how many a message is (`part`) and every run's outcome
OURS = (BENCHMARKING_V3, INTERFERENCE_V2)
# an older layout -> ours that carries the same runs (a module with both is read from ours)
NEWER = {BENCHMARKING_SEED: BENCHMARKING_V3, BENCHMARKING_V2: BENCHMARKING_V3, SEEDED: BENCHMARKING_V3,
         INTERFERENCE: INTERFERENCE_V2}
# args.profile / the runtime setting `profile`: which layouts a benchmarking runtime publishes
LAYOUTS = ("both", "seed", "ours")
DEFAULT_LAYOUT = "both"
OUTCOMES = ("ok", "exit", "trap", "signal", "limit", "oom", "error")
V3_COLUMNS = ("wall_ns", "utime_us", "stime_us", "maxrss_kb", "outcome", "exit_code", "signal", "engine")
V3_OPTIONAL = ("seed", "compile_ns", "instantiate_ns", "execute_ns")


def _u32(v: int) -> int:
    v = int(v)
    if v < 0:
        raise PayloadError(f"negative value {v} in a u32 field")
    return min(v, U32_MAX)


def encode(ptype: str, value: Any) -> bytes:
    """Encode `value` (records as lists/tuples or dicts of columns; see the table) as `ptype`."""
    if ptype in _RECORDS:
        st, cols = _RECORDS[ptype]
        rows = value
        if isinstance(value, dict):
            rows = list(zip(*(value[c] for c in cols)))
        out = bytearray()
        for row in rows:
            if len(row) != len(cols):
                raise PayloadError(f"{ptype}: a record has {len(cols)} fields ({', '.join(cols)}), got {len(row)}")
            if ptype == DEPLOYED:
                out += st.pack(min(int(row[0]), U64_MAX), *(_u32(v) for v in row[1:]))
            else:
                out += st.pack(*(_u32(v) for v in row))
        return bytes(out)
    if ptype == INTERFERENCE:
        _check_interference(value)
        return orjson.dumps(value)
    if ptype == BENCHMARKING_V3:
        _check_v3(value)
        return orjson.dumps(value)
    if ptype == INTERFERENCE_V2:
        _check_if2(value)
        return orjson.dumps(value)
    if ptype == OPCODES:
        counts = list(value)
        if len(counts) != 256:
            raise PayloadError(f"opcodes: need 256 counts, got {len(counts)}")
        return struct.pack("<256Q", *(int(c) & U64_MAX for c in counts))
    if ptype == INSTRUMENTED:
        counts = list(value)
        return struct.pack(f"<{len(counts)}I", *(_u32(c) for c in counts))
    raise PayloadError(f"unknown profile type {ptype!r} (known: {', '.join(TYPES)})")


def decode(ptype: str, payload: bytes) -> dict[str, Any]:
    """Decode a payload of type `ptype` into a JSON-able dict; PayloadError says what is wrong."""
    if ptype in _RECORDS:
        st, cols = _RECORDS[ptype]
        if len(payload) % st.size:
            raise PayloadError(f"{ptype}: {len(payload)} bytes is not a whole number of {st.size}-byte records")
        rows = [st.unpack_from(payload, off) for off in range(0, len(payload), st.size)]
        return {c: [r[i] for r in rows] for i, c in enumerate(cols)}
    if ptype == INTERFERENCE:
        try:
            value = orjson.loads(payload)
        except orjson.JSONDecodeError as e:
            raise PayloadError(f"interference: not JSON: {e}") from e
        _check_interference(value)
        return dict(value)
    if ptype in (BENCHMARKING_V3, INTERFERENCE_V2):
        try:
            value = orjson.loads(payload)
        except orjson.JSONDecodeError as e:
            raise PayloadError(f"{ptype}: not JSON: {e}") from e
        (_check_v3 if ptype == BENCHMARKING_V3 else _check_if2)(value)
        return dict(value)
    if ptype == OPCODES:
        if len(payload) != 256 * 8:
            raise PayloadError(f"opcodes: need 2048 bytes (256 x u64), got {len(payload)}")
        counts = list(struct.unpack("<256Q", payload))
        return {"counts": counts, "total": sum(counts)}
    if ptype == INSTRUMENTED:
        if len(payload) % 4:
            raise PayloadError(f"instrumented: {len(payload)} bytes is not a whole number of u32 counts")
        return {"loops": list(struct.unpack(f"<{len(payload) // 4}I", payload))}
    raise PayloadError(f"unknown profile type {ptype!r} (known: {', '.join(TYPES)})")


def _check_interference(value: Any) -> None:
    if not isinstance(value, dict):
        raise PayloadError(f"interference: expected a JSON object, got {type(value).__name__}")
    for k, v in value.items():
        head, sep, _rest = str(k).partition(":")
        if not sep or not head.isdigit():
            raise PayloadError(f"interference: key {k!r} is not '<index>:<file>'")
        if not isinstance(v, list) or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in v):
            raise PayloadError(f"interference: {k!r} must be a list of wall times (non-negative integers, 0 = failed)")


def _is_count(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


def _check_columns(where: str, runs: Any, required: tuple[str, ...], optional: tuple[str, ...]) -> int:
    """Check a column table (every column a list of the same length); return the number of rows."""
    if not isinstance(runs, dict):
        raise PayloadError(f"{where}: 'runs' must be an object of columns")
    missing = [c for c in required if c not in runs]
    if missing:
        raise PayloadError(f"{where}: 'runs' lacks the column(s) {', '.join(missing)}")
    unknown = [c for c in runs if c not in required + optional]
    if unknown:
        raise PayloadError(f"{where}: unknown column(s) {', '.join(unknown)}")
    lengths = {c: len(v) if isinstance(v, list) else -1 for c, v in runs.items()}
    if -1 in lengths.values() or len(set(lengths.values())) > 1:
        raise PayloadError(f"{where}: every column must be a list of the same length, got {lengths}")
    return next(iter(lengths.values()), 0)


def _check_v3(value: Any) -> None:
    w = BENCHMARKING_V3
    if not isinstance(value, dict) or value.get("v") != 3:
        raise PayloadError(f"{w}: expected a JSON object with \"v\": 3")
    runs: dict[str, list[Any]] = value.get("runs")  # type: ignore[assignment]  # checked next
    _check_columns(w, runs, V3_COLUMNS, V3_OPTIONAL)
    for c in ("wall_ns", "utime_us", "stime_us", "maxrss_kb"):
        if not all(_is_count(x) for x in runs[c]):
            raise PayloadError(f"{w}: column {c} must hold non-negative integers")
    for c in ("compile_ns", "instantiate_ns", "execute_ns", "seed"):
        if c in runs and not all(x is None or _is_count(x) for x in runs[c]):
            raise PayloadError(f"{w}: column {c} must hold non-negative integers or null")
    bad = [o for o in runs["outcome"] if o not in OUTCOMES]
    if bad:
        raise PayloadError(f"{w}: outcome {bad[0]!r} is not one of {', '.join(OUTCOMES)}")
    if not isinstance(value.get("errors", {}), dict):
        raise PayloadError(f"{w}: 'errors' must map a run number to its message")


def _check_if2(value: Any) -> None:
    w = INTERFERENCE_V2
    if not isinstance(value, dict) or value.get("v") != 2:
        raise PayloadError(f"{w}: expected a JSON object with \"v\": 2")
    win = value.get("window_ns")
    if win is not None and not (isinstance(win, list) and len(win) == 2 and all(_is_count(x) for x in win)):
        raise PayloadError(f"{w}: window_ns must be [start, end] (integers) or null")
    loops = value.get("loops")
    if not isinstance(loops, list) or not all(isinstance(lp, dict) for lp in loops):
        raise PayloadError(f"{w}: 'loops' must be a list of objects")
    for lp in loops:
        _check_columns(f"{w} loop {lp.get('index')}", lp.get("runs"), ("start_ns", "wall_ns", "outcome", "inside"), ())
        if not all(_is_count(x) for x in lp["runs"]["wall_ns"] + lp["runs"]["start_ns"]):
            raise PayloadError(f"{w}: loop {lp.get('index')}: start_ns/wall_ns must be non-negative integers")
