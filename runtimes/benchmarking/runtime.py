"""The benchmarking runtimes: `benchmarking`, `benchmarking/seeded`, `benchmarking/interference`
(alias `if`) and `benchmarking/opcodes`.

One module at a time (registered max_nmodules 1: runs must not disturb each other), and up to
`queue_ahead` more created ahead (ours, in the registration's metadata; the orchestrator sends a
campaign's next cells early, so that dispatch and bookkeeping overlap with the run before them):
they wait here in order and run back to back on one runner thread of the worker, still one
module, and so one measured run, at a time. Each run is a child forked (and exec'd for
command-line engines) by `harness.run`: the worker never runs wasm, so children inherit its CPU
set from `start.py -g`. When the runs are over the samples go out as profiling messages, then
the module exits. A module's `limit` counts from when its runs start, not from its create.
Arguments (create `data.args`, docs/protocol.md, "Creating modules") are checked up front; a bad one ends the
module with reason `error` and a message naming the key. Docs: docs/benchmarking.md.
"""
from __future__ import annotations

import logging
import os
import random
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Sequence

import orjson

from benchmarking import harness
from benchmarking import layouts as payloads
from benchmarking import limits as child_limits
from runtimes.base import Module, Runtime
from runtimes.benchmarking.hostenv import measurement_env
from runtimes.benchmarking.mounttable import MountTable
from runtimes.files import ModuleFileError, ModuleFiles

if TYPE_CHECKING:
    from benchmarking.engines import launch as engines
else:
    class _Lazy:
        """A module imported at its first use. The supervisor imports this file for the runtime
        classes' attributes and loads no engine (tests/supervisor/test_no_engines.py); the worker
        loads them in setup()."""

        def __init__(self, name: str) -> None:
            self._name = name

        def __getattr__(self, attr: str) -> Any:
            import importlib

            return getattr(importlib.import_module(self._name), attr)

    engines = _Lazy("benchmarking.engines.launch")

log = logging.getLogger("rt.benchmarking")


class ArgError(ValueError):
    """A create message argument that is wrong; the text names it."""


@dataclass
class Job:
    """One module being benchmarked: its settings and the handle a delete needs."""
    index: int
    module: Module
    file: str
    argvs: list[list[str]]  # module argv (without argv[0]); several = norepeat mode
    norepeat: bool
    repeat: int
    limit: float | None
    ilimit: float | None
    engines: list[str]
    env: dict[str, str]
    dirs: list[str]
    stdout: str | None
    args: dict[str, Any]
    layout: str = payloads.DEFAULT_LAYOUT  # which profile layouts to publish (payloads.LAYOUTS)
    warmup: int = 0  # runs per engine and argument list before the measured ones, discarded
    paths: list[str] = field(default_factory=list)  # `file` (each of `a:b` for interference) resolved by the file policy
    dirmode: str | None = None  # seeded: args.dirmode / args.scriptmode, resolved
    scriptmode: str | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    pid: int = 0
    started: float = field(default_factory=time.monotonic)  # reset when its turn comes (BenchmarkingRuntime._job)

    def run_limit(self) -> float | None:
        """Seconds the next run may take: its own `ilimit`, cut to what is left of `limit`."""
        left = None if self.limit is None else self.limit - (time.monotonic() - self.started)
        if left is None:
            return self.ilimit
        return left if self.ilimit is None else min(left, self.ilimit)

    def out_of_time(self) -> bool:
        return self.limit is not None and time.monotonic() - self.started >= self.limit


def _number(args: dict[str, Any], key: str, default: float | None, *, integer: bool = False, minimum: float = 0) -> Any:
    v = args.get(key, default)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or (integer and not isinstance(v, int)):
        raise ArgError(f"args.{key} must be {'an integer' if integer else 'a number'}, got {v!r}")
    if v < minimum or (minimum == 0 and not integer and v == 0):
        raise ArgError(f"args.{key} must be {'>= ' + str(minimum) if integer else 'positive'}, got {v!r}")
    return v


def _str_list(v: Any, key: str) -> list[str]:
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise ArgError(f"args.{key} must be a list of strings, got {v!r}")
    return list(v)


def parse_job(index: int, module: Module, settings: dict[str, Any] | None = None) -> Job:
    """Check the create message's arguments; ArgError names the first bad one. `settings` (the
    runtime's config) give the defaults of `profile` and `warmup`."""
    settings = settings or {}
    data = module.data
    file = data.get("file")
    if not isinstance(file, str) or not file:
        raise ArgError("the create message has no `file` (path of the module on this node)")
    args = data.get("args") or {}
    if not isinstance(args, dict):
        raise ArgError(f"args must be an object, got {type(args).__name__}")
    raw_argv = args.get("argv", [])
    norepeat = isinstance(raw_argv, list) and bool(raw_argv) and all(isinstance(a, list) for a in raw_argv)
    argvs = [_str_list(a, "argv[]") for a in raw_argv] if norepeat else [_str_list(raw_argv, "argv")]
    eng = args.get("engine", engines.DEFAULT_ENGINE)
    eng_list = [eng] if isinstance(eng, str) else _str_list(eng, "engine") if eng else []
    if not eng_list:
        raise ArgError("args.engine must be an engine name or a non-empty list of names")
    env: dict[str, str] = {}
    for item in _str_list(args.get("env", []), "env"):
        k, sep, v = item.partition("=")
        if not sep or not k:
            raise ArgError(f"args.env entries must be 'KEY=VALUE', got {item!r}")
        env[k] = v
    dirs = _str_list(args.get("dirs", []), "dirs")  # resolved by the runtime's file policy (BenchmarkingRuntime.confine)
    stdout = args.get("stdout")
    if stdout is not None and not isinstance(stdout, str):
        raise ArgError(f"args.stdout must be a file path (module output is discarded without it), got {stdout!r}")
    layout = args.get("profile", settings.get("profile", payloads.DEFAULT_LAYOUT))
    if layout not in payloads.LAYOUTS:
        raise ArgError(f"args.profile must be one of {', '.join(payloads.LAYOUTS)} (which profile layouts to send), got {layout!r}")
    warmup = _number(args, "warmup", settings.get("warmup", 0), integer=True, minimum=0)
    return Job(index=index, module=module, file=file, argvs=argvs, norepeat=norepeat,
               repeat=_number(args, "repeat", 1, integer=True, minimum=1), limit=_number(args, "limit", None),
               ilimit=_number(args, "ilimit", None), engines=eng_list, env=env, dirs=dirs, stdout=stdout, args=args,
               layout=layout, warmup=warmup)


class Samples:
    """Every measured run of a module with its outcome, in the columns of `benchmarking-v3`.

    A failed run is a row with its outcome (never a 0 sample); for the seed's layouts it becomes
    the seed's all-zero record (what the original collector and Pitot expect)."""

    PHASES = ("compile_ns", "instantiate_ns", "execute_ns")

    def __init__(self, seeded: bool = False) -> None:
        self.cols: dict[str, list[Any]] = {c: [] for c in payloads.V3_COLUMNS}
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


class BenchmarkingRuntime(Runtime):
    """`benchmarking`: `repeat` runs (or one per argv list) per engine; `benchmarking-v2` samples."""

    RUNTIME_TYPE = "benchmarking"
    QUEUE_AHEAD: ClassVar[int] = 3  # creates accepted beyond the one running (they wait here, FIFO)
    MAX_NMODULES = 1 + QUEUE_AHEAD  # the supervisor's slots; registered as max_nmodules 1 (registration_fields)
    APIS: ClassVar[list[str]] = ["wasm", "wasi", "profile:benchmarking", "benchmarking"]  # the original's, then ours
    DESCRIPTION = "generic benchmarking runtime"

    REPORTS_REGISTRATION = True  # registered once the worker has said which engines it has (below)

    @classmethod
    def registration(cls, settings: dict[str, Any]) -> dict[str, Any]:
        return {"metadata": {"queue_ahead": cls.QUEUE_AHEAD}}

    def registration_report(self) -> dict[str, Any]:
        """The engines this node runs: installed (their `--version` probes, ~0.25 s, here in the
        worker and not in the supervisor's loop) and enabled by its configuration."""
        return {"metadata": {"engines": [n for n in engines.available_names() if self.gate.enabled(n)]}}

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
        except ValueError as e:
            return f"config.json runtimes: {e}"
        return None

    def setup(self) -> None:
        self.jobs: dict[int, Job] = {}  # by slot: the running job and the ones waiting
        self._waiting: deque[Job] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._runner = threading.Thread(target=self._run_queue, name="bench-runner", daemon=True)
        self._runner.start()
        self.cpus = sorted(os.sched_getaffinity(0))
        s = self.config.settings or {}
        self.files = ModuleFiles(s.get("module_root"), mounts=MountTable().points)  # cached until the table changes
        from benchmarking.engines.gate import EngineGate

        self.gate = EngineGate(s, self.config.runtime)
        self.limits = child_limits.from_settings(s)
        log.info("%s: module roots %s; %s; child limits %s", self.config.name, self.files.roots, self.gate.describe(),
                 self.limits)

    # -- hooks (loop thread)

    def on_create(self, index: int, module: Module) -> None:
        """The arguments are checked now (a bad one ends the module at once); the file policy, the
        engine gate and the engines' own checks when its turn comes (`_job`): a create that
        arrives during another module's run costs that run only its receipt and this parse."""
        try:
            job = parse_job(index, module, self.config.settings)
        except ArgError as e:
            self.module_log(index, logging.ERROR, str(e))
            self.send_exited(index, "error", None, str(e))
            return
        with self._cond:
            self.jobs[index] = job
            self._waiting.append(job)
            self._cond.notify()

    def on_delete(self, index: int) -> None:
        with self._cond:
            job = self.jobs.get(index)
            waiting = job is not None and job in self._waiting
            if waiting:
                assert job is not None
                self._waiting.remove(job)
                del self.jobs[index]
        if job is None or waiting:
            self.send_exited(index, "deleted")
            return
        self._cancel(job)  # the runner reports `deleted` when its child is gone

    def on_stop(self) -> None:
        with self._cond:
            self._closing = True
            for job in list(self.jobs.values()):
                self._cancel(job)
            self._cond.notify()
        self._runner.join(10)

    def _cancel(self, job: Job) -> None:
        job.stop.set()
        if job.pid:
            try:
                os.kill(job.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    # -- the job (its own thread)

    def confine(self, job: Job) -> None:
        """Every path of the create through the node's file policy (runtimes/files.py): the module
        file(s), `dirs`, `stdout`; ModuleFileError names the field when one is outside the roots."""
        job.paths = [self.files.resolve(f) for f in job.file.split(":")] if self.SPLIT_FILES else [self.files.resolve(job.file)]
        job.dirs = self.files.preopens(job.dirs)
        if job.stdout is not None:
            job.stdout = self.files.resolve_output(job.stdout, "args.stdout")

    # `file` names several modules separated by ':' (interference)
    SPLIT_FILES: ClassVar[bool] = False

    def prepare(self, eng: str, inv: engines.Invocation) -> engines.Prepared:
        """engines.prepare, then the executable a native engine would start must be inside the roots."""
        prep = engines.prepare(eng, inv)
        if eng == "native" and prep.exec_argv:
            prep.exec_argv[0] = self.files.resolve_executable(prep.exec_argv[0], "the native executable")
        return prep

    def check(self, job: Job) -> None:
        """More checks before any run (subclasses); raise ArgError / EngineNotAvailable."""
        for e in job.engines:
            ok, why = engines.availability(e)
            if not ok:
                raise engines.EngineNotAvailable(f"engine {e!r} is not available on this node: {why}")

    def _run_queue(self) -> None:
        """The runner thread: the waiting modules in order, one at a time, back to back."""
        while True:
            with self._cond:
                while not self._waiting and not self._closing:
                    self._cond.wait()
                if not self._waiting:
                    return
                job = self._waiting.popleft()
            self._job(job)

    def _job(self, job: Job) -> None:
        """One module's turn: its checks, its runs, its profiles, then its `exited`."""
        reason: str = "deleted"
        code: int | None = None
        error: str | None = None
        extra: dict[str, Any] = {}
        if not job.stop.is_set():
            job.started = time.monotonic()
            try:
                self.check(job)
                for e in job.engines:  # native and command-line engines are opt-in (gate.py)
                    self.gate.check(e)
                self.confine(job)
                reason, code, error, extra = self.execute(job)
            except (ArgError, engines.EngineNotAvailable, FileNotFoundError, ModuleFileError) as e:
                self.module_log(job.index, logging.ERROR, str(e))
                reason, error = "error", str(e)
            except Exception as e:  # a bug or an engine that fails to prepare: the module ends, the worker stays
                log.exception("benchmark of %s failed", job.file)
                reason, code, error, extra = "error", None, f"{type(e).__name__}: {e}", {}
        if job.stop.is_set():
            reason = "deleted"
        with self._cond:
            self.jobs.pop(job.index, None)
        self.send_exited(job.index, reason, code, error, **extra)

    def _on_start(self, job: Job):  # type: ignore[no-untyped-def]
        def started(pid: int) -> None:
            job.pid = pid
            if job.stop.is_set():  # deleted between the check and the fork
                os.kill(pid, signal.SIGKILL)
        return started

    def run_one(self, job: Job, prep: engines.Prepared, cpus: list[int] | None = None) -> harness.RunResult | None:
        """One run, or None when the job was deleted or its time is up before it starts."""
        if job.stop.is_set() or job.out_of_time():
            return None
        r = engines.run_once(prep, limit=job.run_limit(), stdout=job.stdout, cpus=cpus, on_start=self._on_start(job),
                             limits=self.limits.with_time(job.run_limit()))
        job.pid = 0
        return r

    def argv0(self, job: Job, file: str | None = None) -> str:
        return os.path.basename(file or job.file)

    def execute(self, job: Job) -> tuple[str, int | None, str | None, dict[str, Any]]:
        """Run everything; publish the samples; return the exited status (reason, code, error, extra)."""
        samples = Samples()
        env = measurement_env(self.cpus)
        reason: str = "exited"
        code: int | None = 0
        error: str | None = None
        failure: str | None = None
        cause: str | None = None  # the resource limit that ended the failing run (limits.py)
        total = len(job.engines) * (len(job.argvs) if job.norepeat else job.repeat)
        done = 0
        versions: dict[str, str] = {}  # engine -> version, for the record of the runs
        try:
            for eng in job.engines:
                for i, argv in enumerate(job.argvs):
                    prep = self.prepare(eng, engines.Invocation(job.paths[0], [self.argv0(job)] + argv, job.env, job.dirs))
                    versions[eng] = prep.version
                    for _ in range(job.warmup):  # discarded: caches, page faults, CPU frequency ramp
                        if self.run_one(job, prep) is None:
                            reason = "limit" if job.out_of_time() else reason
                            raise _Done
                    for _ in range(1 if job.norepeat else job.repeat):
                        r = self.run_one(job, prep)
                        if r is None:
                            if job.out_of_time():
                                reason = "limit"
                            raise _Done
                        if r.failed and job.out_of_time() and r.killed:
                            reason = "limit"  # the module's own time ran out during the run: not a run of its own
                            raise _Done
                        done += 1
                        self._progress(job, done, total)
                        samples.add(r, eng)
                        if r.failed and not job.norepeat:  # the seed: in repeat mode a failing run ends the module
                            reason = "limit" if r.outcome in ("limit", "oom") else "exited"
                            failure, cause = r.outcome, r.limit_hit
                            code, error = r.exit_code, f"run {done} ({eng}) failed: {r.describe()}"
                            raise _Done
        except _Done:
            pass
        self.publish_samples(job, samples, env)
        extra: dict[str, Any] = {"samples": len(samples), "env": env, "engines": versions, **samples.summary()}
        if failure:
            extra["failure"] = failure
        if cause:
            extra["limit"] = cause
        return reason, code, error, extra

    def publish_samples(self, job: Job, samples: Samples, env: dict[str, Any]) -> None:
        """The seed's layout (`benchmarking`/`seeded`) and/or ours (`benchmarking-v3`), per `job.layout`."""
        if job.layout in ("both", "seed"):
            self.send_records(job.index, "seeded" if "seed" in samples.cols else "benchmarking", samples.seed_rows())
        if job.layout in ("both", "ours"):
            n = len(samples)
            parts = max(1, -(-n // self.V3_ROWS))
            for p in range(parts):
                body = samples.v3(p * self.V3_ROWS, (p + 1) * self.V3_ROWS, env, job.warmup, (p, parts))
                self.send_profile(job.index, payloads.BENCHMARKING_V3, payloads.encode(payloads.BENCHMARKING_V3, body))

    V3_ROWS = 2000  # runs per benchmarking-v3 message (~100 bytes each: well under CHUNK_BYTES)

    # the IPC ring takes messages up to half its size (512 KiB by default): bigger sample sets go out
    # as several profile messages split on record boundaries (the collector numbers the files,
    # `manage.py report` merges them)
    CHUNK_BYTES = 256 * 1024

    def send_records(self, index: int, ptype: str, rows: Sequence[tuple[int, ...]]) -> None:
        """Publish samples of a fixed-size record type, in as many messages as needed."""
        blob = payloads.encode(ptype, rows)
        rec = len(blob) // len(rows) if rows else 1
        step = max(rec, self.CHUNK_BYTES - self.CHUNK_BYTES % rec)
        for off in range(0, max(len(blob), 1), step):
            self.send_profile(index, ptype, blob[off:off + step])

    def _progress(self, job: Job, done: int, total: int) -> None:
        if done == total or done % max(1, total // 10) == 0:
            self.module_log(job.index, logging.DEBUG, f"{done}/{total} runs")


class _Done(Exception):
    """Ends a job's run loops early (failure, limit, delete)."""


class SeededRuntime(BenchmarkingRuntime):
    """`benchmarking/seeded`: a random seed per run; the seed becomes an argument, a file of a
    directory (`dirmode`), or whatever a script prints for it (`scriptmode`); `seeded` samples."""

    RUNTIME_TYPE = "benchmarking/seeded"
    APIS: ClassVar[list[str]] = ["wasm", "wasi", "profile:benchmarking-seeded", "benchmarking/seeded"]
    DESCRIPTION = "benchmarking with a random seed per run"

    def check(self, job: Job) -> None:
        super().check(job)
        ms = job.args.get("max_seed", 2**31 - 1)
        if isinstance(ms, bool) or not isinstance(ms, int) or not 1 <= ms <= 2**32:
            raise ArgError(f"args.max_seed must be an integer in 1..2**32, got {ms!r}")
        # the original's benchmark sends `false` for a mode that is off
        d, s = (None if v is False else v for v in (job.args.get("dirmode"), job.args.get("scriptmode")))
        if d is not None and s is not None:
            raise ArgError("args.dirmode and args.scriptmode exclude each other")
        if d is not None:
            if not isinstance(d, str):
                raise ArgError(f"args.dirmode must be a directory on this node, got {d!r}")
            job.dirmode = self.files.resolve_dir(d, "args.dirmode")
            if not self._dir_files(job.dirmode):
                raise ArgError(f"args.dirmode: directory {d!r} has no files")
        if s is not None:
            if not isinstance(s, str):
                raise ArgError(f"args.scriptmode must be the path of a Python script on this node, got {s!r}")
            job.scriptmode = self.files.resolve_file(s, "args.scriptmode")

    @staticmethod
    def _dir_files(d: str) -> list[str]:
        return sorted(f for f in os.listdir(d) if os.path.isfile(os.path.join(d, f)))

    def seed_args(self, job: Job, seed: int) -> tuple[list[str], list[str]]:
        """(extra argv, extra preopened dirs) for one seed."""
        d, s = job.dirmode, job.scriptmode
        if d is not None:
            files = self._dir_files(d)
            return [os.path.join(d, files[seed % len(files)])], [d]
        if s is not None:
            # the script is not wasm: run it with this Python, stdout = the arguments
            out = subprocess.run([sys.executable, s, str(seed)], capture_output=True, text=True, timeout=60)
            if out.returncode != 0:
                raise ArgError(f"scriptmode script {s} failed for seed {seed}: {out.stderr.strip()[-300:]}")
            text = out.stdout.strip()
            if text.startswith("["):
                argv = orjson.loads(text)
                return _str_list(argv, "scriptmode output"), []
            return shlex.split(text), []
        return [str(seed)], []

    def execute(self, job: Job) -> tuple[str, int | None, str | None, dict[str, Any]]:
        max_seed = int(job.args.get("max_seed", 2**31 - 1))
        rng = random.Random(job.args.get("random_state"))
        samples = Samples(seeded=True)
        env = measurement_env(self.cpus)
        reason: str = "exited"
        code: int | None = 0
        error: str | None = None
        failure: str | None = None
        try:
            for eng in job.engines:
                for argv in job.argvs:
                    for n in range(job.warmup + (1 if job.norepeat else job.repeat)):
                        seed = rng.randrange(max_seed)
                        extra, dirs = self.seed_args(job, seed)
                        inv = engines.Invocation(job.paths[0], [self.argv0(job)] + argv + extra, job.env, job.dirs + dirs)
                        r = self.run_one(job, self.prepare(eng, inv))
                        if r is None:
                            reason = "limit" if job.out_of_time() else reason
                            raise _Done
                        if r.failed and job.out_of_time() and r.killed:
                            reason = "limit"
                            raise _Done
                        if n < job.warmup:
                            continue
                        samples.add(r, eng, seed)
                        if r.failed and not job.norepeat:
                            reason = "limit" if r.outcome == "limit" else "exited"
                            failure = r.outcome
                            code, error = r.exit_code, f"run with seed {seed} failed: {r.describe()}"
                            raise _Done
        except _Done:
            pass
        self.publish_samples(job, samples, env)
        out: dict[str, Any] = {"samples": len(samples), "env": env, **samples.summary()}
        if failure:
            out["failure"] = failure
        return reason, code, error, out


class InterferenceRuntime(BenchmarkingRuntime):
    """`benchmarking/interference`: `file` = N modules separated by ':' run at the same time, each
    over and over until `limit`, each pinned to its own CPU of this runtime's set."""

    RUNTIME_TYPE = "benchmarking/interference"
    APIS: ClassVar[list[str]] = ["wasm", "wasi", "profile:interference", "benchmarking/interference"]
    DESCRIPTION = "simultaneous interference runtime"
    DEFAULT_LIMIT = 10.0
    SPLIT_FILES = True

    def check(self, job: Job) -> None:
        files = job.file.split(":")
        if len(files) > len(self.cpus):
            raise ArgError(f"{len(files)} interfering modules need {len(files)} CPUs; this runtime has {self.cpus} (start.py -g)")
        for e in job.engines:
            ok, why = engines.availability(e)
            if not ok:
                raise engines.EngineNotAvailable(f"engine {e!r} is not available on this node: {why}")
        if len(job.engines) not in (1, len(files)):
            raise ArgError(f"args.engine: give one engine or one per module ({len(files)}), got {len(job.engines)}")
        if job.limit is None:
            job.limit = self.DEFAULT_LIMIT

    def execute(self, job: Job) -> tuple[str, int | None, str | None, dict[str, Any]]:
        """Co-runners start together (a barrier after every loop has prepared its engine), each on
        its own CPU; the window in which all of them were running is recorded, and each run says
        whether it lies inside it. The run cut by the end of the experiment is not a sample."""
        files = job.file.split(":")
        env = measurement_env(self.cpus)
        loops: list[dict[str, Any]] = [
            {"index": i, "file": f, "engine": job.engines[i % len(job.engines)],
             "runs": {"start_ns": [], "wall_ns": [], "outcome": [], "inside": []}} for i, f in enumerate(files)]
        first_start: dict[int, int] = {}
        stopped_at: dict[int, int] = {}
        pids: dict[int, int] = {}
        errors: list[str] = []
        barrier = threading.Barrier(len(files))

        def loop(i: int, f: str) -> None:
            eng = job.engines[i % len(job.engines)]
            runs = loops[i]["runs"]
            prep = None
            try:
                prep = self.prepare(eng, engines.Invocation(job.paths[i], [os.path.basename(f)] + job.argvs[0], job.env, job.dirs))
            except Exception as e:
                errors.append(f"{f}: {e}")
            try:
                barrier.wait(timeout=600)  # everyone prepared (AOT compiles can take a while): go together
            except threading.BrokenBarrierError:
                return
            if prep is None:
                return

            def started(pid: int) -> None:
                pids[i] = pid
                if job.stop.is_set():
                    os.kill(pid, signal.SIGKILL)

            while not job.stop.is_set() and not job.out_of_time():
                r = engines.run_once(prep, limit=job.run_limit(), stdout=job.stdout, cpus=[self.cpus[i]], on_start=started,
                                     limits=self.limits.with_time(job.run_limit()))
                pids.pop(i, None)
                first_start.setdefault(i, r.start_ns)
                if (r.killed or r.failed) and (job.out_of_time() or job.stop.is_set()):
                    # cut by the end of the experiment (the main loop SIGKILLs the runs still
                    # going, which the run sees as a failure, not as its own limit): not a sample
                    stopped_at[i] = r.start_ns
                    break
                runs["start_ns"].append(r.start_ns)
                runs["wall_ns"].append(r.wall_ns)
                runs["outcome"].append(r.outcome)
            stopped_at.setdefault(i, time.monotonic_ns())

        threads = [threading.Thread(target=loop, args=(i, f), daemon=True) for i, f in enumerate(files)]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            if job.stop.is_set() or job.out_of_time():
                for pid in list(pids.values()):  # the experiment is over: stop the runs still going
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            for t in threads:
                t.join(0.05)
        window = None
        if len(first_start) == len(files):
            window = [max(first_start.values()), min(stopped_at.values())]
        for lp in loops:
            r = lp["runs"]
            r["inside"] = [window is not None and st >= window[0] and st + w <= window[1]
                           for st, w in zip(r["start_ns"], r["wall_ns"])]
        if job.layout in ("both", "seed"):  # the seed's: every run, 0 = failed
            seed = {f"{lp['index']}:{lp['file']}": [0 if o != "ok" else max(1, w // 1000)
                                                   for w, o in zip(lp["runs"]["wall_ns"], lp["runs"]["outcome"])]
                    for lp in loops}
            self.send_profile(job.index, "interference", payloads.encode("interference", seed))
        if job.layout in ("both", "ours"):
            body = {"v": 2, "window_ns": window, "loops": loops, "env": env}
            self.send_profile(job.index, payloads.INTERFERENCE_V2, payloads.encode(payloads.INTERFERENCE_V2, body))
        extra: dict[str, Any] = {"samples": {f"{lp['index']}:{lp['file']}": len(lp["runs"]["wall_ns"]) for lp in loops},
                                 "inside": {f"{lp['index']}:{lp['file']}": sum(lp["runs"]["inside"]) for lp in loops},
                                 "window_ns": window, "env": env}
        if errors:
            return "error", None, "; ".join(errors), extra
        return "exited", 0, None, extra


class OpcodesRuntime(BenchmarkingRuntime):
    """`benchmarking/opcodes`: exact counts of executed instructions by opcode byte (`opcodes`)
    and loop iteration counts (`instrumented`), from an instrumented module run on wasmtime."""

    RUNTIME_TYPE = "benchmarking/opcodes"
    APIS: ClassVar[list[str]] = ["wasm", "wasi", "profile:opcodes", "benchmarking/opcodes"]
    DESCRIPTION = "exact opcode counts (instrumented module on wasmtime)"

    def check(self, job: Job) -> None:
        if job.args.get("engine") not in (None, "wasmtime"):
            raise ArgError(f"benchmarking/opcodes counts with its instrumented wasmtime; engine {job.args.get('engine')!r} is not supported")

    def execute(self, job: Job) -> tuple[str, int | None, str | None, dict[str, Any]]:
        from runtimes.benchmarking.instrument import instrument
        from runtimes.benchmarking.opcodes import child_target, parse_child_result

        with open(job.paths[0], "rb") as f:
            ins = instrument(f.read())  # pure Python parsing and rewriting: no wasm runs here
        code, error = 0, None
        runs = 0
        for argv in job.argvs:
            prep = engines.Prepared(target=child_target(ins, [self.argv0(job)] + argv, job.env, job.dirs))
            r = self.run_one(job, prep)
            if r is None:
                return ("limit" if job.out_of_time() else "deleted"), None, None, {"runs": runs}
            if r.failed:
                return ("limit" if r.killed else "error"), r.exit_code, f"counting run failed: {r.describe()}", {"runs": runs}
            counts = parse_child_result(r.result)
            runs += 1
            self.send_profile(job.index, "opcodes", payloads.encode("opcodes", counts.opcodes))
            self.send_profile(job.index, "instrumented", payloads.encode("instrumented", counts.loops))
            code, error = counts.exit_code, counts.error
        return "exited", code, error, {"runs": runs, "counters": ins.counters, "loops": len(ins.loops)}
