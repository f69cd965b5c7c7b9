"""Benchmarking runtimes (`benchmarking`, `benchmarking/seeded`, `benchmarking/interference`,
`benchmarking/opcodes`) and their machinery: per-run harness, engines, opcode counter, payloads.

Nothing here imports an engine at module level (the supervisor imports runtime classes).
Docs: docs/benchmarking.md.
"""
