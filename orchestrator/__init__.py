"""The SilverLine orchestrator: registration, keepalives, scheduling, queues, resurrection,
and the REST API (docs/protocol.md, "REST API"), over an embedded SQLite (WAL) store.

`python -m orchestrator` (or `make orchestrator`) runs it; see docs/orchestrator.md.
"""
from __future__ import annotations

from orchestrator.core import Orchestrator, Refused
from orchestrator.store import Store

__all__ = ["Orchestrator", "Refused", "Store"]
