"""Benchmarking runtimes (`benchmarking`, `benchmarking/seeded`, `benchmarking/interference`,
`benchmarking/opcodes`): thin runtime classes (runtime.py) and the mount table of their file
policy. What they do with a module (jobs, samples, the runner, the experiments, publishing) is
benchmarking/runtime/; the opcode counter benchmarking/opcodes/; the per-run harness, the engines
and the profile layouts the rest of the top-level `benchmarking/` package.

Nothing here imports an engine at module level (the supervisor imports runtime classes).
Docs: docs/benchmarking.md.
"""
from __future__ import annotations

from runtimes.benchmarking.runtime import BenchmarkingRuntime, InterferenceRuntime, OpcodesRuntime, SeededRuntime

__all__ = ["BenchmarkingRuntime", "SeededRuntime", "InterferenceRuntime", "OpcodesRuntime"]
