"""Large sample sets leave the worker as several profile messages cut on record boundaries
(the IPC ring takes at most half its size per message)."""
from __future__ import annotations

from benchmarking import layouts
from benchmarking.runtime.publish import Publisher


class RecordingSink:
    """Stands in for the runtime's send_profile (the ring is tested in tests/ipc): keeps what is sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, str, bytes]] = []

    def send_profile(self, index: int, ptype: str, data: bytes) -> None:
        self.sent.append((index, ptype, data))


def test_records_split_on_record_boundaries() -> None:
    sink = RecordingSink()
    pub = Publisher(sink)
    pub.CHUNK_BYTES = 1000  # 62 records of 16 bytes per message
    rows = [(i, i + 1, i + 2, i + 3) for i in range(200)]
    pub.records(0, "benchmarking-v2", rows)
    assert len(sink.sent) == 4 and all(t == "benchmarking-v2" for _i, t, _d in sink.sent)
    assert all(len(d) % 16 == 0 and len(d) <= 1000 for _i, _t, d in sink.sent)
    merged = layouts.decode("benchmarking-v2", b"".join(d for _i, _t, d in sink.sent))
    assert merged["wall_us"] == list(range(200))
    sink.sent.clear()
    pub.records(0, "seeded", [])
    assert sink.sent == [(0, "seeded", b"")]


def test_every_v3_part_carries_its_own_result_id() -> None:
    """The node's spool and the collector know a result by its id (common/results.py): each
    benchmarking-v3 message, also each part of a split sample set, has a fresh one."""
    from benchmarking.harness import RunResult
    from benchmarking.runtime.job import Job
    from benchmarking.runtime.samples import Samples
    from common.results import result_id

    sink = RecordingSink()
    pub = Publisher(sink)
    pub.V3_ROWS = 2
    samples = Samples()
    for i in range(5):
        samples.add(RunResult(1000 + i, 900, 5, 2048, 0, None, False, b""), "wasmtime")
    job = Job(0, "x.wasm", [[]], False, 5, None, None, ["wasmtime"], {}, [], None, {}, layout="ours")
    for _ in range(2):
        pub.samples(job, samples, {})
    ids = [layouts.decode(t, d)["id"] for _i, t, d in sink.sent]
    assert len(ids) == 6 and len(set(ids)) == 6
    assert [result_id("t", d) for _i, _t, d in sink.sent] == ids
