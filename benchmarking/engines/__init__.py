"""The benchmark engines, one job per module (imports only run downwards, in this order):

- catalog.py: the one engine name table (name, family, kind, package, default on/off, aliases);
- invocation.py: one run's invocation, the prepared launcher, phase reports, `run_once`;
- wasi/: our WASI layers (wasm3.py in Python, wasi.c for wasm2c) and Node's launcher (v8_wasi.mjs);
- adapters/: one adapter per engine family (installed / version / prepare / compile);
  families.py maps each family to its adapter;
- verdicts.py: the stored conformance verdicts;
- aot.py: the AOT artifact cache over the adapters' compile;
- launch.py: what this node can run (availability, version) and `prepare`; the module to import;
- gate.py: which engines a create may use on this node (`enable_engines`);
- conformance.py: the conformance suite that makes the verdicts;
- wasmer_child.py: the wasmer run, exec'd under Python 3.10 (this package's __init__ stays empty
  and 3.10-compatible for it).
"""
