"""Resource limits of benchmark children (benchmarking/limits.py), on real runs of
harness.run: a memory hog, an output flood, a fork bomb and a spin end as `limit` with the cause,
forked and spawned alike. Every program here is bounded on its own (the fork bomb forks at most
400 sleepers), so a limit that failed to apply cannot take the machine down."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest

from benchmarking import harness, limits
from benchmarking.limits import ChildLimits
from testbed.node import ROOT

MiB = 1 << 20
HOG = "b = []\nfor _ in range(256):\n    b.append(bytearray(16 << 20))\n"  # up to 4 GiB, 16 MiB at a time
BOMB = "for i in $(seq 400); do sleep 3 & done; wait"
processes_limited = limits.pids_cgroup_parent() is not None or os.geteuid() != 0


def _hog(_fd: int) -> int:
    exec(HOG)
    return 0


SPAWN_HOG = f"""
import json, sys
from benchmarking import harness
from benchmarking.limits import ChildLimits
r = harness.run(exec_argv=[sys.executable, "-c", {HOG!r}], limit=60, limits=ChildLimits(memory_bytes=256 << 20))
print(json.dumps({{"failed": r.failed, "limit_hit": r.limit_hit, "oom": r.oom, "maxrss_kb": r.maxrss_kb}}))
"""


def test_memory_hog_ends_as_limit_with_its_cause() -> None:
    lim = ChildLimits(memory_bytes=256 * MiB)
    # spawned from a process of a worker's size: a parent whose own data is past the child's limit
    # (pytest after a thousand tests) applies it only just after the spawn (RunLimits.spawning)
    out = subprocess.run([sys.executable, "-c", SPAWN_HOG], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    spawned = json.loads(out.stdout.splitlines()[-1])
    assert spawned["failed"] and spawned["limit_hit"] == "memory_bytes" and spawned["oom"], spawned
    assert spawned["maxrss_kb"] * 1024 < 400 * MiB  # stopped near the limit (+ its margin), not at 4 GiB
    forked = harness.run(_hog, limit=60, limits=lim)
    assert forked.failed and forked.limit_hit == "memory_bytes" and forked.oom and "MemoryError" in forked.describe() + forked.result.decode()
    free = harness.run(exec_argv=[sys.executable, "-c", "b = bytearray(64 << 20)"], limit=60, limits=lim)
    assert not free.failed and free.limit_hit is None  # the control: under the limit nothing happens


def test_output_flood_ends_as_limit_with_its_cause(tmp_path: Any) -> None:
    out = tmp_path / "out.txt"
    r = harness.run(exec_argv=["sh", "-c", "exec yes flood"], stdout=str(out), limit=60, limits=ChildLimits(file_bytes=MiB))
    assert r.limit_hit == "file_bytes" and r.outcome == "limit" and "file_bytes" in r.describe(), r
    assert out.stat().st_size <= MiB

    def flood(_fd: int) -> int:
        with open(1, "wb", closefd=False) as f:
            while True:
                f.write(b"x" * 65536)

    out2 = tmp_path / "out2.txt"
    r2 = harness.run(flood, stdout=str(out2), limit=60, limits=ChildLimits(file_bytes=MiB))
    assert r2.limit_hit == "file_bytes" and out2.stat().st_size <= MiB, r2


def test_cpu_time_backs_the_wall_limit() -> None:
    r = harness.run(exec_argv=["sh", "-c", "while :; do :; done"], limit=60, limits=ChildLimits(cpu_seconds=1))
    assert r.limit_hit == "cpu_seconds" and r.outcome == "limit" and not r.killed, r
    assert r.utime_us + r.stime_us >= 900_000 and r.wall_us < 30_000_000
    assert ChildLimits().with_time(2.5).cpu_seconds == 4.0 and ChildLimits(cpu_seconds=9).with_time(1).cpu_seconds == 9


@pytest.mark.skipif(not processes_limited, reason="root without a writable pids cgroup: RLIMIT_NPROC does not bind root")
def test_fork_bomb_ends_as_limit_with_its_cause() -> None:
    r = harness.run(exec_argv=["sh", "-c", BOMB], limit=60, limits=ChildLimits(processes=16))
    assert r.failed and r.limit_hit in ("processes", None) and r.wall_us < 30_000_000, r
    if limits.pids_cgroup_parent() is not None:
        assert r.limit_hit == "processes" and r.outcome == "limit"
    ok = harness.run(exec_argv=["sh", "-c", "sleep 0.1 & sleep 0.1 & wait"], limit=60, limits=ChildLimits(processes=16))
    assert not ok.failed and ok.limit_hit is None
    left = [d for d in os.listdir(limits.pids_cgroup_parent() or "/nonexistent") if d.startswith(f"sl-run-{os.getpid()}-")] \
        if limits.pids_cgroup_parent() else []
    assert left == []  # every run's cgroup is removed


def test_settings_are_checked_and_named() -> None:
    base = limits.from_settings({})
    assert base.memory_bytes and base.file_bytes == 1 << 30 and base.processes == 64 and base.cpu_seconds is None
    assert limits.from_settings({"child_limits": {"processes": 8, "memory_bytes": None}}).memory_bytes is None
    for bad, key in (({"child_limits": {"procs": 1}}, "procs"), ({"child_limits": {"processes": -1}}, "processes"),
                     ({"child_limits": {"file_bytes": 1.5}}, "file_bytes"), ({"child_limits": 3}, "child_limits")):
        with pytest.raises(ValueError, match=key):
            limits.from_settings(bad)


def test_a_wasm_memory_hog_ends_at_the_store_limit(wasm: dict[str, str]) -> None:
    """wasmtime reserves linear memory (PROT_NONE) and makes it writable as it grows: RLIMIT_DATA does
    not see that, so the wasmtime-py child bounds it with a store limit and reports the cause."""
    from benchmarking.engines import launch as engines

    hog = os.path.join(os.path.dirname(__file__), "..", "..", "..", "build", "modules", "memhog.wasm")
    if not os.path.exists(hog):
        pytest.fail("build/modules/memhog.wasm is missing: run `make modules`")
    prep = engines.prepare("wasmtime-j", engines.Invocation(hog, ["memhog"]))
    r = engines.run_once(prep, limit=60, limits=ChildLimits(memory_bytes=128 * MiB))
    assert r.failed and r.limit_hit == "memory_bytes" and r.oom and r.wall_us < 30_000_000, r
    ok = engines.run_once(engines.prepare("wasmtime-j", engines.Invocation(hog, ["memhog", "16"])), limit=60,
                          limits=ChildLimits(memory_bytes=128 * MiB))
    assert not ok.failed and ok.limit_hit is None  # 16 MiB: under the limit
