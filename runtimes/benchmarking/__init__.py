"""Benchmarking runtimes (`benchmarking`, `benchmarking/seeded`, `benchmarking/interference`,
`benchmarking/opcodes`) and their machinery: per-run harness, engines, opcode counter, payloads.

Nothing here imports an engine at module level (the supervisor imports runtime classes).
Docs: docs/benchmarking.md.
"""
from __future__ import annotations

from runtimes.benchmarking.runtime import BenchmarkingRuntime, InterferenceRuntime, OpcodesRuntime, SeededRuntime

__all__ = ["BenchmarkingRuntime", "SeededRuntime", "InterferenceRuntime", "OpcodesRuntime"]
