"""Profile layouts and their codecs (benchmarking/layouts.py): every format (docs/protocol.md, "Profiles") round-trips; bad payloads say why."""
from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from benchmarking import layouts as P

u32 = st.integers(0, P.U32_MAX)


@given(st.lists(st.tuples(u32, u32, u32, u32), max_size=50))
def test_four_column_formats_roundtrip(rows: list[tuple[int, int, int, int]]) -> None:
    for ptype in ("benchmarking-v2", "seeded"):
        d = P.decode(ptype, P.encode(ptype, rows))
        assert list(zip(*d.values())) == rows or (rows == [] and all(v == [] for v in d.values()))


def test_every_type_roundtrips() -> None:
    samples = {
        "benchmarking": [(100, 90, 5)],
        "benchmarking-v2": [(100, 90, 5, 2048), (101, 91, 6, 2050)],
        "seeded": [(100, 90, 5, 7)],
        "deployed": [(1_700_000_000_000_000, 10, 9, 1, 512, 3, 4)],
        "interference": {"0:a.wasm": [1200, 0, 1300], "1:b.wasm": [900]},
        "opcodes": list(range(256)),
        "instrumented": [3, 0, 70000],
        "benchmarking-v3": {"v": 3, "runs": {"wall_ns": [5_000_000_000_000, 7], "utime_us": [1, 2], "stime_us": [0, 0],
                                             "maxrss_kb": [10, 11], "outcome": ["ok", "trap"], "exit_code": [0, 125],
                                             "signal": [None, None], "engine": ["wasmtime", "wasmtime"],
                                             "compile_ns": [3, None]},
                            "errors": {"1": "wasm trap: unreachable"}, "env": {}, "warmup": 0},
        "interference-v2": {"v": 2, "window_ns": [10, 90], "loops": [{"index": 0, "file": "a.wasm", "engine": "wasmtime",
                            "runs": {"start_ns": [5, 20], "wall_ns": [10, 30], "outcome": ["ok", "ok"], "inside": [False, True]}}]},
    }
    assert set(samples) == set(P.TYPES)
    for ptype, value in samples.items():
        d = P.decode(ptype, P.encode(ptype, value))
        if ptype in ("interference", "benchmarking-v3", "interference-v2"):
            assert d == value
        elif ptype == "opcodes":
            assert d["counts"] == value and d["total"] == sum(value)
        elif ptype == "instrumented":
            assert d["loops"] == value
        else:
            assert [tuple(r) for r in zip(*d.values())] == [tuple(r) for r in value]


def test_columns_and_saturation() -> None:
    d = P.decode("benchmarking-v2", P.encode("benchmarking-v2", {"wall_us": [5_000_000_000], "utime_us": [1], "stime_us": [2], "maxrss_kb": [3]}))
    assert d == {"wall_us": [P.U32_MAX], "utime_us": [1], "stime_us": [2], "maxrss_kb": [3]}


@pytest.mark.parametrize("ptype,payload,msg", [
    ("benchmarking-v2", b"\x00" * 15, "not a whole number of 16-byte records"),
    ("benchmarking", b"\x00" * 13, "12-byte records"),
    ("opcodes", b"\x00" * 2047, "need 2048 bytes"),
    ("instrumented", b"\x00" * 5, "whole number of u32"),
    ("interference", b"{not json", "not JSON"),
    ("interference", b'{"x": [1]}', "is not '<index>:<file>'"),
    ("interference", b'{"0:a": [-1]}', "non-negative"),
    ("nosuch", b"", "unknown profile type 'nosuch'"),
    ("benchmarking-v3", b'{"v": 2}', '"v": 3'),
    ("benchmarking-v3", b'{"v": 3, "runs": {"wall_ns": [1]}}', "lacks the column"),
    ("benchmarking-v3", b'{"v": 3, "runs": {"wall_ns": [1], "utime_us": [], "stime_us": [], "maxrss_kb": [], "outcome": [],'
                        b' "exit_code": [], "signal": [], "engine": []}}', "same length"),
    ("benchmarking-v3", b'{"v": 3, "runs": {"wall_ns": [1], "utime_us": [1], "stime_us": [1], "maxrss_kb": [1], "outcome": ["meh"],'
                        b' "exit_code": [0], "signal": [null], "engine": ["x"]}}', "outcome 'meh'"),
    ("interference-v2", b'{"v": 2, "window_ns": [1], "loops": []}', "window_ns"),
])
def test_bad_payloads(ptype: str, payload: bytes, msg: str) -> None:
    with pytest.raises(P.PayloadError, match=msg):
        P.decode(ptype, payload)


def test_one_table_of_layout_names() -> None:
    """The seed's layouts and ours, and which of ours replaces which, are named once (layouts.py);
    report, export, the collector and the orchestrator read these names."""
    assert set(P.TYPES) == set(P.SEED_TYPES) | set(P.OURS) | {P.BENCHMARKING_V2}
    assert set(P.NEWER) == set(P.TIMED_SEED) | {P.INTERFERENCE} and set(P.NEWER.values()) == set(P.OURS)
    assert P.BENCHMARKING in P.OURS and not set(P.OURS) & set(P.SEED_TYPES)
    for t in P.TIMED_SEED:  # u32 records with the wall time first
        width = 3 if t == P.BENCHMARKING_SEED else 4
        assert P.decode(t, P.encode(t, [[5] + [1] * (width - 1)]))["wall_us"] == [5]
