"""Benchmarking runtimes (`benchmarking`, `benchmarking/seeded`, `benchmarking/interference`,
`benchmarking/opcodes`) and their own machinery (opcode counter, mount table, host facts); the
per-run harness, the engines and the profile layouts are in the top-level `benchmarking/` package.

Nothing here imports an engine at module level (the supervisor imports runtime classes).
Docs: docs/benchmarking.md.
"""
from __future__ import annotations

from runtimes.benchmarking.runtime import BenchmarkingRuntime, InterferenceRuntime, OpcodesRuntime, SeededRuntime

__all__ = ["BenchmarkingRuntime", "SeededRuntime", "InterferenceRuntime", "OpcodesRuntime"]
