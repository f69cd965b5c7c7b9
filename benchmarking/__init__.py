"""The benchmark system's own code, apart from the runtime classes (runtimes/benchmarking/).

- plan.py: a campaign's plan (expansion into cells, module names, outcomes), shared by the
  orchestrator, `manage.py benchmark` and the client library (standard library only);
- harness.py: one run as a child process (fork or spawn), its times, rusage and limit;
- limits.py: the resource limits of those children;
- layouts.py: every profile layout, the seed's and ours (names, codecs), read by the runtimes, the
  collector, `manage.py report` and `manage.py export`;
- analysis/: what `manage.py report` and `manage.py export` compute (statistics, the dataset
  loader, tables, figures, HTML, the Pitot export);
- engines/: the benchmark engines (catalog, one adapter per family, AOT cache, conformance, WASI layers);
- runtime/: what a benchmarking runtime does with a module (job, runner, samples, experiments,
  publishing); the runtime classes themselves are thin (runtimes/benchmarking/);
- opcodes/: the exact opcode counter (reader, instrumenter, run child, pywasm reference).

Nothing here imports a runtime, the supervisor or an engine package at module level. Docs:
docs/benchmarking.md.
"""
