"""The measured runs of a job, with their outcomes, in the columns of `benchmarking-v3`
(benchmarking/layouts.py), and what the `exited` message says of them."""
from __future__ import annotations

from typing import Any

from benchmarking import harness
from benchmarking import layouts


class Samples:
    """Every measured run of a module with its outcome, in the columns of `benchmarking-v3`.

    A failed run is a row with its outcome (never a 0 sample); for the seed's layouts it becomes
    the seed's all-zero record (what the original collector and Pitot expect)."""

    PHASES = ("compile_ns", "instantiate_ns", "execute_ns")

    def __init__(self, seeded: bool = False) -> None:
        self.cols: dict[str, list[Any]] = {c: [] for c in layouts.V3_COLUMNS}
        if seeded:
            self.cols["seed"] = []
        self.errors: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self.cols["wall_ns"])

    def add(self, r: harness.RunResult, engine: str, seed: int | None = None) -> None:
        c = self.cols
        n = len(self)
        outcome = r.outcome
        for k, v in (("wall_ns", r.wall_ns), ("utime_us", r.utime_us), ("stime_us", r.stime_us),
                     ("maxrss_kb", r.maxrss_kb), ("outcome", outcome), ("exit_code", r.exit_code),
                     ("signal", r.signal), ("engine", engine)):
            c[k].append(v)
        if "seed" in c:
            c["seed"].append(seed)
        if r.phases:
            for k in self.PHASES:
                c.setdefault(k, [None] * n)
        for k in self.PHASES:
            if k in c:
                c[k].append((r.phases or {}).get(k))
        if outcome != "ok":
            self.errors[str(n)] = r.describe()

    def ok(self) -> int:
        return sum(1 for o in self.cols["outcome"] if o == "ok")

    def seed_rows(self) -> list[tuple[int, ...]]:
        """Records of the seed's `benchmarking` (wall, utime, stime in us) or `seeded` (+ seed)."""
        out: list[tuple[int, ...]] = []
        c = self.cols
        for i in range(len(self)):
            row: tuple[int, ...] = (c["wall_ns"][i] // 1000, c["utime_us"][i], c["stime_us"][i]) \
                if c["outcome"][i] == "ok" else (0, 0, 0)
            if "seed" in c:
                row += (c["seed"][i] or 0,)
            out.append(row)
        return out

    def v3(self, start: int, stop: int, env: dict[str, Any], warmup: int, part: tuple[int, int]) -> dict[str, Any]:
        errors = {k: v for k, v in self.errors.items() if start <= int(k) < stop}
        return {"v": 3, "runs": {k: v[start:stop] for k, v in self.cols.items()}, "errors": errors,
                "env": env, "warmup": warmup, "part": list(part), "first_run": start}

    def summary(self) -> dict[str, Any]:
        """What the `exited` message carries: counts by outcome, median phase times."""
        by: dict[str, int] = {}
        for o in self.cols["outcome"]:
            by[o] = by.get(o, 0) + 1
        out: dict[str, Any] = {"runs": len(self), "outcomes": by}
        phases = {}
        for k in self.PHASES:
            vals = sorted(v for v in self.cols.get(k, []) if v is not None)
            if vals:
                phases[k] = vals[len(vals) // 2]
        if phases:
            out["phases_median"] = phases
        return out
