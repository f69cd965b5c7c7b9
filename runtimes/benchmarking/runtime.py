"""The benchmarking runtimes: `benchmarking`, `benchmarking/seeded`, `benchmarking/interference`
(alias `if`) and `benchmarking/opcodes`.

One module at a time (max_nmodules 1: runs must not disturb each other). A module's runs happen
on a thread of the worker; each run is a child forked (and exec'd for command-line engines) by
`harness.run`: the worker never runs wasm, so children inherit its CPU set from `start.py -g`.
When the runs are over the samples go out as one profiling message, then the module exits.
Arguments (create `data.args`, PROTOCOL.md section 1) are checked up front; a bad one ends the
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
from dataclasses import dataclass, field
from typing import Any, ClassVar, Sequence

import orjson

from runtimes.base import Module, Runtime
from runtimes.benchmarking import engines, harness, payloads

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
    stop: threading.Event = field(default_factory=threading.Event)
    pid: int = 0
    started: float = field(default_factory=time.monotonic)
    thread: threading.Thread | None = None

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


def parse_job(index: int, module: Module) -> Job:
    """Check the create message's arguments; ArgError names the first bad one."""
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
    dirs = _str_list(args.get("dirs", []), "dirs")
    for d in dirs:
        if not os.path.isdir(d):
            raise ArgError(f"args.dirs: {d!r} is not a directory on this node")
    stdout = args.get("stdout")
    if stdout is not None and not isinstance(stdout, str):
        raise ArgError(f"args.stdout must be a file path (module output is discarded without it), got {stdout!r}")
    return Job(index=index, module=module, file=file, argvs=argvs, norepeat=norepeat,
               repeat=_number(args, "repeat", 1, integer=True, minimum=1), limit=_number(args, "limit", None),
               ilimit=_number(args, "ilimit", None), engines=eng_list, env=env, dirs=dirs, stdout=stdout, args=args)


class BenchmarkingRuntime(Runtime):
    """`benchmarking`: `repeat` runs (or one per argv list) per engine; `benchmarking-v2` samples."""

    RUNTIME_TYPE = "benchmarking"
    MAX_NMODULES = 1
    APIS: ClassVar[list[str]] = ["wasm", "wasi", "benchmarking"]
    DESCRIPTION = "generic benchmarking runtime"

    @classmethod
    def registration(cls, settings: dict[str, Any]) -> dict[str, Any]:
        return {"metadata": {"engines": [n for n in engines.all_names() if engines.availability(n)[0]]}}

    def setup(self) -> None:
        self.jobs: dict[int, Job] = {}
        self.cpus = sorted(os.sched_getaffinity(0))

    # -- hooks (loop thread)

    def on_create(self, index: int, module: Module) -> None:
        try:
            job = parse_job(index, module)
            self.check(job)
        except (ArgError, engines.EngineNotAvailable, FileNotFoundError) as e:
            self.module_log(index, logging.ERROR, str(e))
            self.send_exited(index, "error", None, str(e))
            return
        self.jobs[index] = job
        job.thread = threading.Thread(target=self._job_thread, args=(job,), name=f"bench-{index}", daemon=True)
        job.thread.start()

    def on_delete(self, index: int) -> None:
        job = self.jobs.get(index)
        if job is None:
            self.send_exited(index, "deleted")
            return
        self._cancel(job)  # the job thread reports `deleted` when its child is gone

    def on_stop(self) -> None:
        for job in list(self.jobs.values()):
            self._cancel(job)
        for job in list(self.jobs.values()):
            if job.thread is not None:
                job.thread.join(10)

    def _cancel(self, job: Job) -> None:
        job.stop.set()
        if job.pid:
            try:
                os.kill(job.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    # -- the job (its own thread)

    def check(self, job: Job) -> None:
        """More checks before any run (subclasses); raise ArgError / EngineNotAvailable."""
        for e in job.engines:
            ok, why = engines.availability(e)
            if not ok:
                raise engines.EngineNotAvailable(f"engine {e!r} is not available on this node: {why}")
        if not os.path.exists(job.file) and job.engines != ["native"]:
            raise FileNotFoundError(f"module file {job.file!r} does not exist on this node")

    def _job_thread(self, job: Job) -> None:
        try:
            reason, code, error, extra = self.execute(job)
        except Exception as e:  # a bug or an engine that fails to prepare: the module ends, the worker stays
            log.exception("benchmark of %s failed", job.file)
            reason, code, error, extra = "error", None, f"{type(e).__name__}: {e}", {}
        if job.stop.is_set():
            reason = "deleted"
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
        r = engines.run_once(prep, limit=job.run_limit(), stdout=job.stdout, cpus=cpus, on_start=self._on_start(job))
        job.pid = 0
        return r

    def argv0(self, job: Job, file: str | None = None) -> str:
        return os.path.basename(file or job.file)

    def execute(self, job: Job) -> tuple[str, int | None, str | None, dict[str, Any]]:
        """Run everything; publish the samples; return the exited status (reason, code, error, extra)."""
        rows: list[tuple[int, int, int, int]] = []
        reason: str = "exited"
        code: int | None = 0
        error: str | None = None
        total = len(job.engines) * (len(job.argvs) if job.norepeat else job.repeat)
        done = 0
        try:
            for eng in job.engines:
                for i, argv in enumerate(job.argvs):
                    prep = engines.prepare(eng, engines.Invocation(job.file, [self.argv0(job)] + argv, job.env, job.dirs))
                    for _ in range(1 if job.norepeat else job.repeat):
                        r = self.run_one(job, prep)
                        if r is None:
                            if job.out_of_time():
                                reason = "limit"
                            raise _Done
                        done += 1
                        self._progress(job, done, total)
                        if r.failed:
                            if job.out_of_time() and r.killed:
                                reason = "limit"  # the module's own time ran out during the run
                                raise _Done
                            if not job.norepeat:  # the seed: in repeat mode a failing run ends the module
                                reason = "limit" if r.killed else "exited"
                                code, error = r.exit_code, f"run {done} ({eng}) failed: {r.describe()}"
                                raise _Done
                            rows.append((0, 0, 0, 0))  # norepeat: a failed input is a zero sample
                            continue
                        rows.append((r.wall_us, r.utime_us, r.stime_us, r.maxrss_kb))
        except _Done:
            pass
        self.send_records(job.index, payloads.BENCHMARKING, rows)
        return reason, code, error, {"samples": len(rows)}

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

    DESCRIPTION = "benchmarking with a random seed per run"

    def check(self, job: Job) -> None:
        super().check(job)
        ms = job.args.get("max_seed", 2**31 - 1)
        if isinstance(ms, bool) or not isinstance(ms, int) or not 1 <= ms <= 2**32:
            raise ArgError(f"args.max_seed must be an integer in 1..2**32, got {ms!r}")
        d, s = job.args.get("dirmode"), job.args.get("scriptmode")
        if d is not None and s is not None:
            raise ArgError("args.dirmode and args.scriptmode exclude each other")
        if d is not None:
            if not isinstance(d, str) or not os.path.isdir(d):
                raise ArgError(f"args.dirmode must be a directory on this node, got {d!r}")
            if not self._dir_files(d):
                raise ArgError(f"args.dirmode: directory {d!r} has no files")
        if s is not None and (not isinstance(s, str) or not os.path.isfile(s)):
            raise ArgError(f"args.scriptmode must be the path of a Python script on this node, got {s!r}")

    @staticmethod
    def _dir_files(d: str) -> list[str]:
        return sorted(f for f in os.listdir(d) if os.path.isfile(os.path.join(d, f)))

    def seed_args(self, job: Job, seed: int) -> tuple[list[str], list[str]]:
        """(extra argv, extra preopened dirs) for one seed."""
        d, s = job.args.get("dirmode"), job.args.get("scriptmode")
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
        rows: list[tuple[int, int, int, int]] = []
        reason: str = "exited"
        code: int | None = 0
        error: str | None = None
        try:
            for eng in job.engines:
                for argv in job.argvs:
                    for _ in range(1 if job.norepeat else job.repeat):
                        seed = rng.randrange(max_seed)
                        extra, dirs = self.seed_args(job, seed)
                        inv = engines.Invocation(job.file, [self.argv0(job)] + argv + extra, job.env, job.dirs + dirs)
                        r = self.run_one(job, engines.prepare(eng, inv))
                        if r is None:
                            reason = "limit" if job.out_of_time() else reason
                            raise _Done
                        if r.failed:
                            if job.out_of_time() and r.killed:
                                reason = "limit"
                                raise _Done
                            if not job.norepeat:
                                reason = "limit" if r.killed else "exited"
                                code, error = r.exit_code, f"run with seed {seed} failed: {r.describe()}"
                                raise _Done
                            rows.append((0, 0, 0, seed))
                            continue
                        rows.append((r.wall_us, r.utime_us, r.stime_us, seed))
        except _Done:
            pass
        self.send_records(job.index, "seeded", rows)
        return reason, code, error, {"samples": len(rows)}


class InterferenceRuntime(BenchmarkingRuntime):
    """`benchmarking/interference`: `file` = N modules separated by ':' run at the same time, each
    over and over until `limit`, each pinned to its own CPU of this runtime's set."""

    DESCRIPTION = "simultaneous interference runtime"
    DEFAULT_LIMIT = 10.0

    def check(self, job: Job) -> None:
        files = job.file.split(":")
        if len(files) > len(self.cpus):
            raise ArgError(f"{len(files)} interfering modules need {len(files)} CPUs; this runtime has {self.cpus} (start.py -g)")
        for e in job.engines:
            ok, why = engines.availability(e)
            if not ok:
                raise engines.EngineNotAvailable(f"engine {e!r} is not available on this node: {why}")
        for f in files:
            if not os.path.exists(f):
                raise FileNotFoundError(f"module file {f!r} does not exist on this node")
        if len(job.engines) not in (1, len(files)):
            raise ArgError(f"args.engine: give one engine or one per module ({len(files)}), got {len(job.engines)}")
        if job.limit is None:
            job.limit = self.DEFAULT_LIMIT

    def execute(self, job: Job) -> tuple[str, int | None, str | None, dict[str, Any]]:
        files = job.file.split(":")
        result: dict[str, list[int]] = {f"{i}:{f}": [] for i, f in enumerate(files)}
        pids: dict[int, int] = {}
        errors: list[str] = []

        def loop(i: int, f: str) -> None:
            eng = job.engines[i % len(job.engines)]
            try:
                prep = engines.prepare(eng, engines.Invocation(f, [os.path.basename(f)] + job.argvs[0], job.env, job.dirs))
            except Exception as e:
                errors.append(f"{f}: {e}")
                return

            def started(pid: int) -> None:
                pids[i] = pid
                if job.stop.is_set():
                    os.kill(pid, signal.SIGKILL)

            while not job.stop.is_set() and not job.out_of_time():
                r = engines.run_once(prep, limit=job.run_limit(), stdout=job.stdout, cpus=[self.cpus[i]], on_start=started)
                pids.pop(i, None)
                if (r.killed or r.failed) and (job.out_of_time() or job.stop.is_set()):
                    # cut by the end of the experiment (the main loop SIGKILLs the runs still
                    # going, which the run sees as a failure, not as its own limit): not a sample
                    break
                result[f"{i}:{f}"].append(0 if r.failed else max(1, r.wall_us))

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
        self.send_profile(job.index, "interference", payloads.encode("interference", result))
        if errors:
            return "error", None, "; ".join(errors), {}
        return "exited", 0, None, {"samples": {k: len(v) for k, v in result.items()}}


class OpcodesRuntime(BenchmarkingRuntime):
    """`benchmarking/opcodes`: exact counts of executed instructions by opcode byte (`opcodes`)
    and loop iteration counts (`instrumented`), from an instrumented module run on wasmtime."""

    DESCRIPTION = "exact opcode counts (instrumented module on wasmtime)"

    def check(self, job: Job) -> None:
        if job.args.get("engine") not in (None, "wasmtime"):
            raise ArgError(f"benchmarking/opcodes counts with its instrumented wasmtime; engine {job.args.get('engine')!r} is not supported")
        if not os.path.exists(job.file):
            raise FileNotFoundError(f"module file {job.file!r} does not exist on this node")

    def execute(self, job: Job) -> tuple[str, int | None, str | None, dict[str, Any]]:
        from runtimes.benchmarking.instrument import instrument
        from runtimes.benchmarking.opcodes import child_target, parse_child_result

        with open(job.file, "rb") as f:
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
