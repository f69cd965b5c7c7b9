"""Large sample sets leave the worker as several profile messages cut on record boundaries
(the IPC ring takes at most half its size per message)."""
from __future__ import annotations

from common.profile import decode_profile
from runtimes.base import WorkerConfig
from benchmarking import layouts
from runtimes.benchmarking.runtime import BenchmarkingRuntime


class RecordingEndpoint:
    """Stands in for the IPC endpoint: keeps what the runtime sends (the ring is tested in tests/ipc)."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, int, bytes]] = []

    def send(self, h1: int, h2: int, payload: bytes) -> None:
        self.sent.append((h1, h2, payload))


def test_send_records_splits_on_record_boundaries() -> None:
    ep = RecordingEndpoint()
    rt = BenchmarkingRuntime(ep, WorkerConfig(sid=1, slot=0, backend="posix", runtime="benchmarking", name="n.b", uuid="u"))
    rt.CHUNK_BYTES = 1000  # 62 records of 16 bytes per message
    rows = [(i, i + 1, i + 2, i + 3) for i in range(200)]
    rt.send_records(0, "benchmarking-v2", rows)
    parts = [decode_profile(p) for _h1, _h2, p in ep.sent]
    assert len(parts) == 4 and all(t == "benchmarking-v2" for t, _ in parts)
    assert all(len(d) % 16 == 0 and len(d) <= 1000 for _, d in parts)
    merged = layouts.decode("benchmarking-v2", b"".join(d for _, d in parts))
    assert merged["wall_us"] == list(range(200))
    ep.sent.clear()
    rt.send_records(0, "seeded", [])
    assert [decode_profile(p) for _a, _b, p in ep.sent] == [("seeded", b"")]
