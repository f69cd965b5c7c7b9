"""`benchmarking`: `repeat` runs (or one per argv list, `norepeat`) per engine, after `warmup`
discarded ones; `benchmarking-v3` samples (and the seed's `benchmarking`). In repeat mode a failing
run ends the module (the seed's rule); in norepeat mode it is a row with its outcome."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Iterator

from benchmarking.runtime.hostenv import measurement_env
from benchmarking.runtime.job import Job
from benchmarking.runtime.samples import Samples
from benchmarking.runtime.strategy import Ending, Experiment, Runs

if TYPE_CHECKING:
    from benchmarking.engines.invocation import Invocation

# one run's seed (None without) and its invocation, for one argv list
Draw = Callable[[list[str]], "tuple[int | None, Invocation]"]


class _Done(Exception):
    """Ends a job's run loops early (failure, limit, delete)."""


class Repeat(Experiment):
    SEEDED = False  # a seed per run (seeded.py): prepared per run, the seed in each sample

    def draws(self, runs: Runs, job: Job) -> Draw:
        """The invocation of each run: here the same for every run of an argv list."""
        from benchmarking.engines import launch as engines

        def draw(argv: list[str]) -> tuple[int | None, Invocation]:
            return None, engines.Invocation(job.paths[0], [job.argv0()] + argv, job.env, job.dirs)
        return draw

    def execute(self, runs: Runs, job: Job) -> Ending:
        samples = Samples(seeded=self.SEEDED)
        env = measurement_env(runs.cpus)
        end = Ending()
        try:
            self._loop(runs, job, samples, end)
        except _Done:
            pass
        runs.publish.samples(job, samples, env)
        end.extra = {"samples": len(samples), "env": env, **end.extra, **samples.summary()}
        return end

    def _loop(self, runs: Runs, job: Job, samples: Samples, end: Ending) -> None:
        total = len(job.engines) * (len(job.argvs) if job.norepeat else job.repeat)
        done = 0
        versions: dict[str, str] = {}  # engine -> version, for the record of the runs
        end.extra["engines"] = versions
        draw = self.draws(runs, job)
        for eng in job.engines:
            for argv in job.argvs:
                for seed, prep, warm in self._runs(runs, job, eng, argv, draw):
                    versions[eng] = prep.version
                    r = runs.run_one(job, prep)
                    if r is None:
                        if job.out_of_time():
                            end.reason = "limit"
                        raise _Done
                    if warm:  # discarded: caches, page faults, CPU frequency ramp
                        continue
                    if r.failed and job.out_of_time() and r.killed:
                        end.reason = "limit"  # the module's own time ran out during the run: not a run of its own
                        raise _Done
                    done += 1
                    self.progress(runs, job, done, total)
                    samples.add(r, eng, seed)
                    if r.failed and not job.norepeat:  # the seed: in repeat mode a failing run ends the module
                        end.reason = "limit" if r.outcome in ("limit", "oom") else "exited"
                        end.extra["failure"] = r.outcome
                        if r.limit_hit:
                            end.extra["limit"] = r.limit_hit  # the resource limit that ended it (limits.py)
                        what = f"{eng}" if seed is None else f"{eng}, seed {seed}"
                        end.code, end.error = r.exit_code, f"run {done} ({what}) failed: {r.describe()}"
                        raise _Done

    def _runs(self, runs: Runs, job: Job, eng: str, argv: list[str], draw: Draw) -> Iterator[tuple[int | None, Any, bool]]:
        """(seed, prepared run, warm-up?) for each run of one engine and argv list; prepared once
        unless each run has its own seed."""
        prep = None
        for n in range(job.warmup + (1 if job.norepeat else job.repeat)):
            seed, inv = draw(argv)
            if prep is None or seed is not None:
                prep = runs.prepare(eng, inv)
            yield seed, prep, n < job.warmup
