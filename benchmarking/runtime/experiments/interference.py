"""`benchmarking/interference` (alias `if`): `file` = N modules separated by ':' run at the same
time, each over and over until `limit`, each pinned to its own CPU of the runtime's set; the
seed's `interference` profile and our `interference-v2` (the window in which all of them ran)."""
from __future__ import annotations

import os
import signal
import threading
import time
from typing import Any

from benchmarking.runtime.hostenv import measurement_env
from benchmarking.runtime.job import ArgError, Job
from benchmarking.runtime.strategy import Ending, Experiment, Runs


class Interference(Experiment):
    SPLIT_FILES = True
    DEFAULT_LIMIT = 10.0  # the loops run until `limit`: the experiment's length

    def check(self, runs: Runs, job: Job) -> None:
        files = job.file.split(":")
        if len(files) > len(runs.cpus):
            raise ArgError(f"{len(files)} interfering modules need {len(files)} CPUs; this runtime has {runs.cpus} (start.py -g)")
        super().check(runs, job)
        if len(job.engines) not in (1, len(files)):
            raise ArgError(f"args.engine: give one engine or one per module ({len(files)}), got {len(job.engines)}")

    def execute(self, runs: Runs, job: Job) -> Ending:
        """Co-runners start together (a barrier after every loop has prepared its engine), each on
        its own CPU; the window in which all of them were running is recorded, and each run says
        whether it lies inside it. The run cut by the end of the experiment is not a sample."""
        files = job.file.split(":")
        env = measurement_env(runs.cpus)
        loops: list[dict[str, Any]] = [
            {"index": i, "file": f, "engine": job.engines[i % len(job.engines)],
             "runs": {"start_ns": [], "wall_ns": [], "outcome": [], "inside": []}} for i, f in enumerate(files)]
        co = _CoRunners(runs, job, loops)
        threads = [threading.Thread(target=co.loop, args=(i,), daemon=True) for i in range(len(files))]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            if job.stop.is_set() or job.out_of_time():
                co.kill_all()  # the experiment is over: stop the runs still going
            for t in threads:
                t.join(0.05)
        window = None
        if len(co.first_start) == len(files):
            window = [max(co.first_start.values()), min(co.stopped_at.values())]
        for lp in loops:
            r = lp["runs"]
            r["inside"] = [window is not None and st >= window[0] and st + w <= window[1]
                           for st, w in zip(r["start_ns"], r["wall_ns"])]
        runs.publish.interference(job, loops, window, env)
        names = [f"{lp['index']}:{lp['file']}" for lp in loops]
        extra: dict[str, Any] = {"samples": {n: len(lp["runs"]["wall_ns"]) for n, lp in zip(names, loops)},
                                 "inside": {n: sum(lp["runs"]["inside"]) for n, lp in zip(names, loops)},
                                 "window_ns": window, "env": env}
        if co.errors:
            return Ending("error", None, "; ".join(co.errors), extra)
        if job.stop.is_set():
            return Ending("deleted", None, None, extra)
        return self.verdict(job, loops, co.first_failure, extra)

    @staticmethod
    def verdict(job: Job, loops: list[dict[str, Any]], first_failure: dict[int, str], extra: dict[str, Any]) -> Ending:
        """A cell is done only if every co-runner produced its runs: one that failed a run, or that
        finished none inside the limit, measured something else than the interference asked for,
        and the cell ends with that failure (its outcome: trap, limit, ...), naming the co-runner."""
        for lp in loops:
            outcomes = lp["runs"]["outcome"]
            name = f"co-runner {lp['index']} ({lp['file']}, {lp['engine']})"
            bad = [o for o in outcomes if o != "ok"]
            if bad:
                extra["failure"] = bad[0]
                reason = "limit" if bad[0] in ("limit", "oom") else "exited"
                return Ending(reason, None, f"{name} failed {len(bad)} of {len(outcomes)} runs, the first: "
                                            f"{first_failure.get(lp['index'], bad[0])}", extra)
            if not outcomes:
                extra["failure"] = "limit"
                return Ending("limit", None, f"{name} finished no run within the limit of {job.limit} s "
                                             "(raise args.limit above one run's time)", extra)
        return Ending("exited", 0, None, extra)


class _CoRunners:
    """The loops of one interference job, one thread each, and what they share."""

    def __init__(self, runs: Runs, job: Job, loops: list[dict[str, Any]]) -> None:
        self.runs, self.job, self.loops = runs, job, loops
        self.first_start: dict[int, int] = {}
        self.stopped_at: dict[int, int] = {}
        self.pids: dict[int, int] = {}
        self.errors: list[str] = []
        self.first_failure: dict[int, str] = {}  # co-runner -> what its first failed run said
        self.barrier = threading.Barrier(len(loops))

    def kill_all(self) -> None:
        for pid in list(self.pids.values()):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def loop(self, i: int) -> None:
        from benchmarking.engines import launch as engines

        job, runs, lp = self.job, self.runs, self.loops[i]
        f, rr = lp["file"], lp["runs"]
        prep = None
        try:
            prep = runs.prepare(lp["engine"], engines.Invocation(job.paths[i], [job.argv0(f)] + job.argvs[0], job.env, job.dirs))
        except Exception as e:
            self.errors.append(f"{f}: {e}")
        try:
            self.barrier.wait(timeout=600)  # everyone prepared (AOT compiles can take a while): go together
        except threading.BrokenBarrierError:
            return
        if prep is None:
            return

        def started(pid: int) -> None:
            self.pids[i] = pid
            if job.stop.is_set():
                os.kill(pid, signal.SIGKILL)

        while not job.stop.is_set() and not job.out_of_time():
            r = engines.run_once(prep, limit=job.run_limit(), stdout=job.stdout, cpus=[runs.cpus[i]], on_start=started,
                                 limits=runs.limits.with_time(job.run_limit()))
            self.pids.pop(i, None)
            self.first_start.setdefault(i, r.start_ns)
            if (r.killed or r.failed) and (job.out_of_time() or job.stop.is_set()):
                # cut by the end of the experiment (the main loop SIGKILLs the runs still
                # going, which the run sees as a failure, not as its own limit): not a sample
                self.stopped_at[i] = r.start_ns
                break
            rr["start_ns"].append(r.start_ns)
            rr["wall_ns"].append(r.wall_ns)
            rr["outcome"].append(r.outcome)
            if r.failed:
                self.first_failure.setdefault(i, r.describe())
        self.stopped_at.setdefault(i, time.monotonic_ns())
