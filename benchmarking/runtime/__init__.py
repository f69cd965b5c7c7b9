"""What the benchmarking runtimes do with a module, apart from being a runtime (the thin classes in
runtimes/benchmarking/runtime.py):

- job.py: a create's arguments checked once (`parse_job`, `ArgError`) into a `Job`;
- samples.py: the measured runs of a job and their outcomes (`Samples`);
- publish.py: every profile a job sends (the seed's layouts and ours, cut to the IPC ring's size);
  the one place results leave a benchmarking runtime;
- runner.py: the queue of jobs and the one runner thread that runs them back to back, the
  skeleton of a job (checks, file policy, experiment, `exited`), one run, deletes;
- experiments/: what a job does with its runs, one strategy per runtime type: repeat (and
  seeded, the same loop with a seed per run), interference, opcodes;
- hostenv.py: the measurement environment recorded with each job (CPU set, governors, load).

Nothing here imports a runtime, the supervisor or an engine at module level (the supervisor
imports the runtime classes, and with them this package). Docs: docs/benchmarking.md.
"""
