"""The benchmarking runtimes: `benchmarking`, `benchmarking/seeded`, `benchmarking/interference`
(alias `if`) and `benchmarking/opcodes`: thin classes over benchmarking/runtime/.

Each class names its experiment (benchmarking/runtime/experiments/); the runner
(benchmarking/runtime/runner.py) queues the jobs and runs them one at a time on its thread, and
benchmarking/runtime/publish.py sends their profiles. What stays here is being a runtime: the
registration (max_nmodules 1 plus `queue_ahead` creates accepted ahead), the node's file policy and
engine gate, and the hooks of the worker's loop. Arguments: docs/protocol.md, "Creating modules";
docs: docs/benchmarking.md.
"""
from __future__ import annotations

import logging
import os
from typing import Any, ClassVar

from benchmarking import limits as child_limits
from benchmarking.runtime.experiments.interference import Interference
from benchmarking.runtime.experiments.opcodes import Opcodes
from benchmarking.runtime.experiments.repeat import Repeat
from benchmarking.runtime.experiments.seeded import Seeded
from benchmarking.runtime.job import default_limit
from benchmarking.runtime.runner import Runner
from benchmarking.runtime.strategy import Experiment
from runtimes.base import Module, Runtime
from runtimes.benchmarking.mounttable import MountTable
from runtimes.files import ModuleFileError, ModuleFiles

log = logging.getLogger("rt.benchmarking")


class BenchmarkingRuntime(Runtime):
    """`benchmarking`: `repeat` runs (or one per argv list) per engine; `benchmarking-v3` samples."""

    RUNTIME_TYPE = "benchmarking"
    QUEUE_AHEAD: ClassVar[int] = 3  # creates accepted beyond the one running (they wait here, FIFO)
    MAX_NMODULES = 1 + QUEUE_AHEAD  # the supervisor's slots; registered as max_nmodules 1 (registration_fields)
    APIS: ClassVar[list[str]] = ["wasm", "wasi", "profile:benchmarking", "benchmarking"]  # the original's, then ours
    DESCRIPTION = "generic benchmarking runtime"
    EXPERIMENT: ClassVar[type[Experiment]] = Repeat

    REPORTS_REGISTRATION = True  # registered once the worker has said which engines it has (below)

    @classmethod
    def registration(cls, settings: dict[str, Any]) -> dict[str, Any]:
        return {"metadata": {"queue_ahead": cls.QUEUE_AHEAD}}

    def registration_report(self) -> dict[str, Any]:
        """The engines this node runs: installed (their `--version` probes, ~0.25 s, here in the
        worker and not in the supervisor's loop) and enabled by its configuration."""
        from benchmarking.engines import launch as engines

        return {"metadata": {"engines": [n for n in engines.available_names() if self.runner.gate.enabled(n)]}}

    @classmethod
    def registration_fields(cls, settings: dict[str, Any]) -> dict[str, Any]:
        """max_nmodules 1: what runs at once, what an orchestrator places by (the original's counts
        the same); the slots beyond it take the `queue_ahead` creates that wait their turn."""
        return {**super().registration_fields(settings), "max_nmodules": 1}

    @classmethod
    def unavailable(cls, settings: dict[str, Any]) -> str | None:
        from benchmarking.engines.gate import EngineGate  # start.py asks this in a child process (supervisor/availability.py)

        try:
            EngineGate(settings)
            child_limits.from_settings(settings, f"runtimes.{cls.RUNTIME_TYPE}.child_limits")
            default_limit(settings, f"runtimes.{cls.RUNTIME_TYPE}.default_limit")
        except ValueError as e:
            return f"config.json runtimes: {e}"
        return None

    def setup(self) -> None:
        from benchmarking.engines.gate import EngineGate

        s = self.config.settings or {}
        files = ModuleFiles(s.get("module_root"), mounts=MountTable().points)  # cached until the table changes
        self.runner = Runner(self, self.EXPERIMENT(), s, files, EngineGate(s, self.config.runtime),
                             child_limits.from_settings(s), sorted(os.sched_getaffinity(0)), (ModuleFileError,))
        log.info("%s: module roots %s; %s; child limits %s; default limit %s s", self.config.name, files.roots,
                 self.runner.gate.describe(), self.runner.limits, self.runner.default_limit)

    def on_create(self, index: int, module: Module) -> None:
        self.runner.create(index, module.create)

    def on_delete(self, index: int) -> None:
        self.runner.delete(index)

    def on_stop(self) -> None:
        self.runner.close()


class SeededRuntime(BenchmarkingRuntime):
    """`benchmarking/seeded`: a random seed per run; the seed becomes an argument, a file of a
    directory (`dirmode`), or whatever a script prints for it (`scriptmode`); `seeded` samples."""

    RUNTIME_TYPE = "benchmarking/seeded"
    APIS: ClassVar[list[str]] = ["wasm", "wasi", "profile:benchmarking-seeded", "benchmarking/seeded"]
    DESCRIPTION = "benchmarking with a random seed per run"
    EXPERIMENT = Seeded


class InterferenceRuntime(BenchmarkingRuntime):
    """`benchmarking/interference`: `file` = N modules separated by ':' run at the same time, each
    over and over until `limit`, each pinned to its own CPU of this runtime's set."""

    RUNTIME_TYPE = "benchmarking/interference"
    APIS: ClassVar[list[str]] = ["wasm", "wasi", "profile:interference", "benchmarking/interference"]
    DESCRIPTION = "simultaneous interference runtime"
    EXPERIMENT = Interference


class OpcodesRuntime(BenchmarkingRuntime):
    """`benchmarking/opcodes`: exact counts of executed instructions by opcode byte (`opcodes`)
    and loop iteration counts (`instrumented`), from an instrumented module run on wasmtime."""

    RUNTIME_TYPE = "benchmarking/opcodes"
    APIS: ClassVar[list[str]] = ["wasm", "wasi", "profile:opcodes", "benchmarking/opcodes"]
    DESCRIPTION = "exact opcode counts (instrumented module on wasmtime)"
    EXPERIMENT = Opcodes
