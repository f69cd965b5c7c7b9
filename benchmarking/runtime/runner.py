"""The runner of a benchmarking runtime: its queue of jobs and the one thread that runs them.

One module at a time, and up to `queue_ahead` more created ahead: they wait here in order and
run back to back on the runner thread, still one module, and so one measured run, at a time.
Each run is a child forked (and exec'd for command-line engines) by `harness.run`: the worker
never runs wasm, so children inherit its CPU set from `start.py -g`. A module's `limit` counts
from when its runs start, not from its create. The experiment (experiments/) decides what the
runs are; this file is the skeleton around it: checks, engine gate, file policy, deletes, `exited`.
"""
from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from benchmarking.limits import ChildLimits
from benchmarking.runtime.job import ArgError, Job, default_limit, parse_job
from common.schema import ModuleCreate
from benchmarking.runtime.publish import Publisher
from benchmarking.runtime.strategy import Ending, Experiment, FilePolicy

if TYPE_CHECKING:
    from benchmarking.engines.gate import EngineGate
    from benchmarking.engines.invocation import Invocation, Prepared
    from benchmarking.harness import RunResult

log = logging.getLogger("rt.benchmarking")


class Host(Protocol):
    """What the runner uses of its runtime (runtimes.base.Runtime): thread-safe sends up the ring."""

    def send_exited(self, index: int, reason: str = "exited", code: int | None = None, error: str | None = None,
                    **extra: Any) -> None: ...

    def module_log(self, index: int, level: int, text: str) -> None: ...

    def send_profile(self, index: int, ptype: str, data: bytes) -> None: ...


@dataclass
class Runner:
    """The jobs of one benchmarking runtime (by slot: the running one and the ones waiting): the
    runtime it reports through, its experiment, and the node's policies each job goes through."""

    host: Host
    experiment: Experiment
    settings: dict[str, Any]
    files: FilePolicy
    gate: EngineGate
    limits: ChildLimits
    cpus: list[int]
    user_errors: tuple[type[Exception], ...] = ()  # errors of the create (the file policy's): one line, no traceback

    def __post_init__(self) -> None:
        self.publish = Publisher(self.host)
        self.default_limit = default_limit(self.settings)  # checked at start (the runtime's `unavailable`)
        self.jobs: dict[int, Job] = {}
        self._waiting: deque[Job] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._run_queue, name="bench-runner", daemon=True)
        self._thread.start()

    # -- the runtime's hooks (its loop thread)

    def create(self, index: int, data: ModuleCreate) -> None:
        """The arguments are checked now (a bad one ends the module at once); the file policy, the
        engine gate and the engines' own checks when its turn comes (`_job`): a create that
        arrives during another module's run costs that run only its receipt and this parse."""
        try:
            job = parse_job(index, data, self.settings)
        except ArgError as e:
            self.host.module_log(index, logging.ERROR, str(e))
            self.host.send_exited(index, "error", None, str(e))
            return
        with self._cond:
            self.jobs[index] = job
            self._waiting.append(job)
            self._cond.notify()

    def delete(self, index: int) -> None:
        with self._cond:
            job = self.jobs.get(index)
            waiting = job is not None and job in self._waiting
            if waiting:
                assert job is not None
                self._waiting.remove(job)
                del self.jobs[index]
        if job is None or waiting:
            self.host.send_exited(index, "deleted")
            return
        self._cancel(job)  # the runner reports `deleted` when its child is gone

    def close(self) -> None:
        with self._cond:
            self._closing = True
            for job in list(self.jobs.values()):
                self._cancel(job)
            self._cond.notify()
        self._thread.join(10)

    @staticmethod
    def _cancel(job: Job) -> None:
        job.stop.set()
        if job.pid:
            try:
                os.kill(job.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    # -- the runner thread

    def _run_queue(self) -> None:
        """The waiting modules in order, one at a time, back to back, until the runtime stops."""
        while (job := self._next()) is not None:
            self._job(job)

    def _next(self) -> Job | None:
        with self._cond:
            self._cond.wait_for(lambda: self._waiting or self._closing)
            return self._waiting.popleft() if self._waiting else None

    def _job(self, job: Job) -> None:
        """One module's turn: its checks, its runs, its profiles, then its `exited`."""
        from benchmarking.engines.catalog import EngineNotAvailable

        user: tuple[type[Exception], ...] = (ArgError, EngineNotAvailable, FileNotFoundError) + self.user_errors
        end = Ending("deleted", None)
        if not job.stop.is_set():
            job.started = time.monotonic()
            if job.limit is None:  # no module runs without an end: a spin ends as `limit`, the queue goes on
                job.limit = self.experiment.DEFAULT_LIMIT or self.default_limit
                job.limit_from = "its experiment's default" if self.experiment.DEFAULT_LIMIT else "the runtime setting default_limit"
            try:
                self.experiment.check(self, job)
                for e in job.engines:  # native and command-line engines are opt-in (gate.py)
                    self.gate.check(e)
                self.confine(job)
                end = self.experiment.execute(self, job)
            except user as e:
                self.host.module_log(job.index, logging.ERROR, str(e))
                end = Ending("error", None, str(e))
            except Exception as e:  # a bug or an engine that fails to prepare: the module ends, the worker stays
                log.exception("benchmark of %s failed", job.file)
                end = Ending("error", None, f"{type(e).__name__}: {e}")
        if job.stop.is_set():
            end.reason = "deleted"
        elif end.reason == "limit" and not end.error and job.out_of_time():
            end.error = f"the module's time ran out: limit {job.limit:g} s ({job.limit_from})"
        with self._cond:
            self.jobs.pop(job.index, None)
        self.host.send_exited(job.index, end.reason, end.code, end.error, **end.extra)

    # -- what experiments use (strategy.Runs)

    def confine(self, job: Job) -> None:
        """Every path of the create through the node's file policy (runtimes/files.py): the module
        file(s), `dirs`, `stdout`; the policy's error names the field when one is outside the roots."""
        files = job.file.split(":") if self.experiment.SPLIT_FILES else [job.file]
        job.paths = [self.files.resolve(f) for f in files]
        job.dirs = self.files.preopens(job.dirs)
        if job.stdout is not None:
            job.stdout = self.files.resolve_output(job.stdout, "args.stdout")

    def check_engines(self, job: Job) -> None:
        from benchmarking.engines import launch as engines

        for e in job.engines:
            ok, why = engines.availability(e)
            if not ok:
                raise engines.EngineNotAvailable(f"engine {e!r} is not available on this node: {why}")

    def prepare(self, eng: str, inv: Invocation) -> Prepared:
        """engines.prepare, then the executable a native engine would start must be inside the roots."""
        from benchmarking.engines import launch as engines

        prep = engines.prepare(eng, inv)
        if eng == "native" and prep.exec_argv:
            prep.exec_argv[0] = self.files.resolve_executable(prep.exec_argv[0], "the native executable")
        return prep

    def run_one(self, job: Job, prep: Prepared, cpus: list[int] | None = None) -> RunResult | None:
        """One run, or None when the job was deleted or its time is up before it starts."""
        from benchmarking.engines import launch as engines

        if job.stop.is_set() or job.out_of_time():
            return None

        def started(pid: int) -> None:
            job.pid = pid
            if job.stop.is_set():  # deleted between the check and the fork
                os.kill(pid, signal.SIGKILL)

        r = engines.run_once(prep, limit=job.run_limit(), stdout=job.stdout, cpus=cpus, on_start=started,
                             limits=self.limits.with_time(job.run_limit()))
        job.pid = 0
        return r

    def log(self, job: Job, level: int, text: str) -> None:
        self.host.module_log(job.index, level, text)
