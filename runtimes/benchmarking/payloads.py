"""Profiling payload codecs (PROTOCOL.md section 5), shared by the runtimes and the collector.

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

Values that do not fit a u32 are saturated to 2**32-1 on encoding (a run of more than 71 min).
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


# type -> (struct of one record, column names)
_RECORDS: dict[str, tuple[struct.Struct, tuple[str, ...]]] = {
    "benchmarking": (struct.Struct("<3I"), ("wall_us", "utime_us", "stime_us")),
    "benchmarking-v2": (struct.Struct("<4I"), ("wall_us", "utime_us", "stime_us", "maxrss_kb")),
    "seeded": (struct.Struct("<4I"), ("wall_us", "utime_us", "stime_us", "seed")),
    "deployed": (struct.Struct("<Q6I"), ("start", "wall_us", "utime_us", "stime_us", "maxrss_kb", "ch_in", "ch_out")),
}
TYPES = tuple(_RECORDS) + ("interference", "opcodes", "instrumented")
BENCHMARKING = "benchmarking-v2"  # the type our benchmarking runtime sends


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
            if ptype == "deployed":
                out += st.pack(min(int(row[0]), U64_MAX), *(_u32(v) for v in row[1:]))
            else:
                out += st.pack(*(_u32(v) for v in row))
        return bytes(out)
    if ptype == "interference":
        _check_interference(value)
        return orjson.dumps(value)
    if ptype == "opcodes":
        counts = list(value)
        if len(counts) != 256:
            raise PayloadError(f"opcodes: need 256 counts, got {len(counts)}")
        return struct.pack("<256Q", *(int(c) & U64_MAX for c in counts))
    if ptype == "instrumented":
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
    if ptype == "interference":
        try:
            value = orjson.loads(payload)
        except orjson.JSONDecodeError as e:
            raise PayloadError(f"interference: not JSON: {e}") from e
        _check_interference(value)
        return dict(value)
    if ptype == "opcodes":
        if len(payload) != 256 * 8:
            raise PayloadError(f"opcodes: need 2048 bytes (256 x u64), got {len(payload)}")
        counts = list(struct.unpack("<256Q", payload))
        return {"counts": counts, "total": sum(counts)}
    if ptype == "instrumented":
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
