"""Fault, bad-input and sandbox scenarios that produce figures.

`python -m chaos [--quick] [--json] [--only NAME ...]` runs every scenario against real
processes (mosquitto, `start.py` nodes, the orchestrator, forked workers, real POSIX IPC) and
prints a table of figures; `--json` adds one JSON object on the last line. `tests/chaos/` runs
the same scenarios in a small size under pytest. Docs and measured figures: docs/reliability.md.

Each scenario module has `run(size: Size) -> Outcome`: figures (numbers a reader can check)
and failures (broken promises, each a sentence). The harness never decides by timing alone
where the promise is not about time.
"""
from __future__ import annotations

from chaos.base import Outcome, Size, SIZES

__all__ = ["Outcome", "Size", "SIZES"]
