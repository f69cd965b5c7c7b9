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
