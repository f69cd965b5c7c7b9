"""Placement by kind: a module without `parent` goes only to a runtime that can run it. A plain
module never lands on a benchmarking runtime, a benchmark never on a plain (`linux`) runtime,
judged by the apis the runtimes register (ours: `benchmarking`; the original's: `profile:*`)."""
from __future__ import annotations

from typing import Iterator

import pytest

from orchestrator.scheduler import BENCHMARK, PLAIN, module_kind, runtime_kind
from tests.orchestrator.test_core import Harness


def test_kinds_from_apis_and_args() -> None:
    assert runtime_kind(["wasm", "wasi", "benchmarking"]) == BENCHMARK
    assert runtime_kind(["wasm", "wasi", "profile:benchmarking-seeded"]) == BENCHMARK  # the original's names
    assert runtime_kind(["wasm", "wasi", "channels", "profile:deployed"]) == PLAIN  # linux profiles itself
    assert runtime_kind([]) == PLAIN
    assert module_kind([], {"argv": []}) == PLAIN
    assert module_kind([], {"argv": [], "repeat": 0, "limit": 5.0}) == PLAIN  # a limit alone is no benchmark
    assert module_kind([], {"repeat": 10}) == BENCHMARK and module_kind([], {"engine": "wasmtime"}) == BENCHMARK
    assert module_kind(["profile:opcodes"], {}) == BENCHMARK


def test_plain_modules_never_land_on_benchmarking_runtimes(h: Harness) -> None:
    h.manager()
    h.runtime("rt-bench", "node1.bench", max_n=1, apis=["wasm", "wasi", "benchmarking"])
    h.runtime("rt-linux", "node1.linux", max_n=128, apis=["wasm", "wasi", "channels", "stdout"])
    for i in range(6):  # the bench runtime is idle and less loaded every time: it must still not be picked
        h.create(f"plain{i}")
    assert len(h.creates("rt-linux")) == 6 and h.creates("rt-bench") == []
    assert h.errors() == []


def test_benchmarks_never_land_on_plain_runtimes(h: Harness) -> None:
    h.manager()
    h.runtime("rt-linux", "node1.linux", max_n=128, apis=["wasm", "wasi"])
    h.runtime("rt-bench", "node1.bench", max_n=1, apis=["wasm", "wasi", "benchmarking"])
    for i in range(3):  # the bench runtime is full after one: the others queue there, not on linux
        h.create(f"b{i}", args={"repeat": 5, "engine": "wasmtime"})
    assert h.creates("rt-bench") == ["b0"] and h.creates("rt-linux") == []
    assert h.status("b1") == "Q" and h.status("b2") == "Q"


def test_no_runtime_of_the_kind_is_a_refusal_that_says_so(h: Harness) -> None:
    h.manager()
    h.runtime("rt-bench", "node1.bench", max_n=1, apis=["wasm", "wasi", "benchmarking"])
    h.create("plain")
    errs = h.errors()
    assert len(errs) == 1 and "for a plain module" in errs[0]["description"]
    assert "benchmarking runtimes take only benchmarks" in errs[0]["description"]
    h.create("explicit", parent="node1.bench")  # an explicit parent is the operator's choice
    assert h.creates("rt-bench") == ["explicit"]
