"""`benchmarking/opcodes`: exact counts of executed instructions by opcode byte (`opcodes`) and
loop iteration counts (`instrumented`), from an instrumented module run on wasmtime
(benchmarking/opcodes/)."""
from __future__ import annotations

from benchmarking.runtime.job import ArgError, Job
from benchmarking.runtime.strategy import Ending, Experiment, Runs


class Opcodes(Experiment):
    def check(self, runs: Runs, job: Job) -> None:
        if job.args.get("engine") not in (None, "wasmtime"):
            raise ArgError(f"benchmarking/opcodes counts with its instrumented wasmtime; engine {job.args.get('engine')!r} is not supported")

    def execute(self, runs: Runs, job: Job) -> Ending:
        from benchmarking.engines import launch as engines
        from benchmarking.opcodes.child import child_target, parse_child_result
        from benchmarking.opcodes.instrument import instrument

        with open(job.paths[0], "rb") as f:
            ins = instrument(f.read())  # pure Python parsing and rewriting: no wasm runs here
        code, error = 0, None
        n = 0
        for argv in job.argvs:
            prep = engines.Prepared(target=child_target(ins, [job.argv0()] + argv, job.env, job.dirs))
            r = runs.run_one(job, prep)
            if r is None:
                return Ending("limit" if job.out_of_time() else "deleted", None, None, {"runs": n})
            if r.failed:
                return Ending("limit" if r.killed else "error", r.exit_code, f"counting run failed: {r.describe()}", {"runs": n})
            counts = parse_child_result(r.result)
            n += 1
            runs.publish.counts(job.index, counts.opcodes, counts.loops)
            code, error = counts.exit_code, counts.error
        return Ending("exited", code, error, {"runs": n, "counters": ins.counters, "loops": len(ins.loops)})
