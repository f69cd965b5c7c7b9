"""What every experiment (benchmarking/runtime/experiments/) is given and gives back.

An experiment is the part of a job that differs between the runtime types: which checks it adds
and what it does with its runs. The runner (runner.py) owns the rest: the queue, the file policy,
the engine gate, the child limits, one run, deletes and the `exited` message.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from benchmarking.limits import ChildLimits
from benchmarking.runtime.job import Job
from benchmarking.runtime.publish import Publisher

if TYPE_CHECKING:
    from benchmarking.engines.invocation import Invocation, Prepared
    from benchmarking.harness import RunResult


@dataclass
class Ending:
    """How a job ended: the `exited` status (reason, code, error) and its extra fields."""
    reason: str = "exited"
    code: int | None = 0
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class FilePolicy(Protocol):
    """The node's file policy (runtimes/files.py `ModuleFiles`): each raises naming `what` when a
    path is outside the module roots or not of its kind."""

    def resolve(self, name: object, what: str = ...) -> str: ...

    def resolve_file(self, name: object, what: str) -> str: ...

    def resolve_dir(self, name: object, what: str) -> str: ...

    def resolve_executable(self, name: object, what: str) -> str: ...

    def resolve_output(self, name: object, what: str) -> str: ...

    def preopens(self, dirs: Any, what: str = ...) -> list[str]: ...


class Runs(Protocol):
    """What an experiment uses of the runner."""

    cpus: list[int]
    limits: ChildLimits
    files: FilePolicy
    publish: Publisher

    def prepare(self, eng: str, inv: Invocation) -> Prepared: ...

    def run_one(self, job: Job, prep: Prepared, cpus: list[int] | None = None) -> RunResult | None: ...

    def check_engines(self, job: Job) -> None: ...

    def log(self, job: Job, level: int, text: str) -> None: ...


class Experiment:
    """One runtime type's way of running a job (a strategy of the runner)."""

    SPLIT_FILES: ClassVar[bool] = False  # `file` names several modules separated by ':' (interference)
    DEFAULT_LIMIT: ClassVar[float | None] = None  # its own `limit` when the create gives none, before the runtime's

    def check(self, runs: Runs, job: Job) -> None:
        """More checks before any run; raise ArgError / EngineNotAvailable. By default: every engine is there."""
        runs.check_engines(job)

    def execute(self, runs: Runs, job: Job) -> Ending:
        """Run everything, publish the results (runs.publish) and say how the job ended."""
        raise NotImplementedError

    @staticmethod
    def progress(runs: Runs, job: Job, done: int, total: int) -> None:
        if done == total or done % max(1, total // 10) == 0:
            runs.log(job, logging.DEBUG, f"{done}/{total} runs")
