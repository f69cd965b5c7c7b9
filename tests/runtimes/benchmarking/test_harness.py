"""The per-run harness and engines: real forks and execs, wait4 figures, limits, affinity, output."""
from __future__ import annotations

import os
import stat

import pytest

from benchmarking import harness
from benchmarking.engines import launch as engines


def test_wasmtime_runs_measured(wasm: dict[str, str]) -> None:
    prep = engines.prepare("wasmtime", engines.Invocation(wasm["spin"], ["spin", "5"]))
    r = engines.run_once(prep, limit=60)
    assert r.exit_code == 0 and not r.failed, r.describe()
    assert r.wall_us > 1000 and r.utime_us > 1000 and r.maxrss_kb > 1000
    assert r.utime_us + r.stime_us <= r.wall_us * 2 + 10_000


def test_limit_kills_and_fails(wasm: dict[str, str]) -> None:
    prep = engines.prepare("wasmtime-aot", engines.Invocation(wasm["spin"], ["spin", "100000"]))
    r = engines.run_once(prep, limit=0.5)
    assert r.killed and r.failed and r.signal == 9
    assert "time limit" in r.describe()


def test_exit_code_and_child_error(wasm: dict[str, str]) -> None:
    prep = engines.prepare("wasmtime", engines.Invocation(wasm["kernels"], ["kernels", "3", "quiet"]))
    r = engines.run_once(prep, limit=60)
    assert r.exit_code not in (0, None) and r.failed  # kernels returns acc & 63
    bad = harness.run(exec_argv=["/nonexistent/engine"])
    assert bad.failed and "No such file" in bad.describe()


def test_output_discarded_unless_asked(wasm: dict[str, str], tmp_path, capfd) -> None:  # type: ignore[no-untyped-def]
    prep = engines.prepare("wasmtime", engines.Invocation(wasm["kernels"], ["kernels", "4"]))
    engines.run_once(prep, limit=60)
    out = tmp_path / "out.txt"
    engines.run_once(prep, limit=60, stdout=str(out))
    assert capfd.readouterr().out == ""
    assert out.read_text() == "n=4 acc=" + out.read_text().split("acc=")[1] and out.read_text().startswith("n=4 acc=")


def test_child_inherits_affinity_and_can_be_pinned(tmp_path) -> None:  # type: ignore[no-untyped-def]
    mine = sorted(os.sched_getaffinity(0))

    def report(fd: int) -> int:
        os.write(fd, ",".join(map(str, sorted(os.sched_getaffinity(0)))).encode())
        return 0

    assert harness.run(report).result.decode() == ",".join(map(str, mine))
    assert harness.run(report, cpus=[mine[-1]]).result.decode() == str(mine[-1])
    # an exec'd (native) engine: the child reads its own affinity from inside
    script = tmp_path / "affinity"
    out = tmp_path / "aff.txt"
    script.write_text("#!/bin/sh\ngrep Cpus_allowed_list /proc/self/status > \"$1\"\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    prep = engines.prepare("native", engines.Invocation(str(script), ["affinity", str(out)]))
    r = engines.run_once(prep, limit=30, cpus=[mine[0]])
    assert r.exit_code == 0
    assert out.read_text().split()[-1] == str(mine[0])


def test_engine_list_and_unavailable_engine(wasm: dict[str, str]) -> None:
    names = engines.all_names()
    for seed_name in ("iwasm-i", "iwasm-a", "wasmer-j-cl", "wasmer-a-cl", "wasmer-j-ll", "wasmer-a-ll", "wasmer-j-sp",
                      "wasmedge-i", "wasmedge-j", "wasmedge-a", "wasmtime-j", "wasmtime-a", "wasm3-i", "native"):
        assert seed_name in names
    assert engines.availability("wasmtime")[0] and engines.availability("pywasm")[0]
    with pytest.raises(engines.EngineNotAvailable, match="engine 'nosuch' is not available on this node: unknown engine"):
        engines.prepare("nosuch", engines.Invocation(wasm["spin"], ["spin"]))
    if not engines.availability("iwasm-i")[0]:
        with pytest.raises(engines.EngineNotAvailable, match="engine 'iwasm-i' .*`iwasm` is not on PATH"):
            engines.prepare("iwasm-i", engines.Invocation(wasm["spin"], ["spin"]))


def test_native_and_pywasm_engines(wasm: dict[str, str]) -> None:
    r = engines.run_once(engines.prepare("native", engines.Invocation(wasm["spin"], ["spin", "1"])), limit=30)
    assert r.exit_code == 0
    r = engines.run_once(engines.prepare("pywasm", engines.Invocation(wasm["spin"], ["spin", "0"])), limit=60)
    assert r.exit_code == 0, r.describe()
