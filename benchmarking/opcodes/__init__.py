"""The exact opcode counter of `benchmarking/opcodes`: our own WebAssembly reader (wasm.py), the
instrumenter that adds a counter per straight-line segment (instrument.py), the run child that runs
the instrumented module on wasmtime and reads the counters back (child.py), and the independent
reference on pywasm the tests and bench/harness.py compare against (reference.py).

Nothing here imports an engine at module level. Docs: docs/benchmarking.md ("Opcode counts").
"""
