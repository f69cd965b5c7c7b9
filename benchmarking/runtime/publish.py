"""Every profile a benchmarking runtime sends: the one place results leave it.

A job's profiles go up the worker's IPC ring (`Sink.send_profile`, the runtime's), before its
`exited`; the supervisor publishes each on `REALM/proc/profile/TYPE/RUNTIME/MODULE` and the
collector stores it. The layouts (the seed's and ours) and their codecs are benchmarking/layouts.py;
which ones a job sends is its `profile` argument (`Job.layout`: `seed`, `ours` or `both`).
Each `benchmarking-v3` / `interference-v2` message carries a fresh result id (`"id"`, a uuid): the
node's spool keeps it until a collector acknowledges that id (common/results.py).
"""
from __future__ import annotations

import uuid
from typing import Any, Protocol, Sequence

from benchmarking import layouts
from benchmarking.runtime.job import Job
from benchmarking.runtime.samples import Samples


class Sink(Protocol):
    """Where a profile message goes (`runtimes.base.Runtime.send_profile`)."""

    def send_profile(self, index: int, ptype: str, data: bytes) -> None: ...


class Publisher:
    """Encodes a job's results and sends them to its sink, cut to what the IPC ring takes."""

    V3_ROWS = 2000  # runs per benchmarking-v3 message (~100 bytes each: well under CHUNK_BYTES)

    # the IPC ring takes messages up to half its size (512 KiB by default): bigger sample sets go out
    # as several profile messages split on record boundaries (the collector numbers the files,
    # `manage.py report` merges them)
    CHUNK_BYTES = 256 * 1024

    def __init__(self, sink: Sink) -> None:
        self.sink = sink

    def samples(self, job: Job, samples: Samples, env: dict[str, Any]) -> None:
        """The seed's layout (`benchmarking`/`seeded`) and/or ours (`benchmarking-v3`), per `job.layout`."""
        if job.layout in ("both", "seed"):
            self.records(job.index, "seeded" if "seed" in samples.cols else "benchmarking", samples.seed_rows())
        if job.layout in ("both", "ours"):
            n = len(samples)
            parts = max(1, -(-n // self.V3_ROWS))
            for p in range(parts):
                body = samples.v3(p * self.V3_ROWS, (p + 1) * self.V3_ROWS, env, job.warmup, (p, parts))
                body["id"] = uuid.uuid4().hex
                self.sink.send_profile(job.index, layouts.BENCHMARKING_V3, layouts.encode(layouts.BENCHMARKING_V3, body))

    def records(self, index: int, ptype: str, rows: Sequence[tuple[int, ...]]) -> None:
        """Samples of a fixed-size record type, in as many messages as needed."""
        blob = layouts.encode(ptype, rows)
        rec = len(blob) // len(rows) if rows else 1
        step = max(rec, self.CHUNK_BYTES - self.CHUNK_BYTES % rec)
        for off in range(0, max(len(blob), 1), step):
            self.sink.send_profile(index, ptype, blob[off:off + step])

    def interference(self, job: Job, loops: list[dict[str, Any]], window: list[int] | None, env: dict[str, Any]) -> None:
        """The seed's `interference` (every run per co-runner, 0 = failed) and/or our `interference-v2`."""
        if job.layout in ("both", "seed"):
            seed = {f"{lp['index']}:{lp['file']}": [0 if o != "ok" else max(1, w // 1000)
                                                   for w, o in zip(lp["runs"]["wall_ns"], lp["runs"]["outcome"])]
                    for lp in loops}
            self.sink.send_profile(job.index, "interference", layouts.encode("interference", seed))
        if job.layout in ("both", "ours"):
            body = {"v": 2, "id": uuid.uuid4().hex, "window_ns": window, "loops": loops, "env": env}
            self.sink.send_profile(job.index, layouts.INTERFERENCE_V2, layouts.encode(layouts.INTERFERENCE_V2, body))

    def counts(self, index: int, opcodes: Any, loops: Any) -> None:
        """One counting run of `benchmarking/opcodes`: `opcodes` (by opcode byte) and `instrumented` (loop iterations)."""
        self.sink.send_profile(index, "opcodes", layouts.encode("opcodes", opcodes))
        self.sink.send_profile(index, "instrumented", layouts.encode("instrumented", loops))
