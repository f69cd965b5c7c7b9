"""The SilverLine orchestrator: registration, keepalives, scheduling, queues, resurrection,
and the REST API (docs/protocol.md, "REST API"), over an embedded SQLite (WAL) store.

`python -m orchestrator` (or `make orchestrator`) runs it; see docs/orchestrator.md.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orchestrator.core import Orchestrator, Refused
    from orchestrator.store import Store

__all__ = ["Orchestrator", "Refused", "Store"]
_WHERE = {"Orchestrator": "orchestrator.core", "Refused": "orchestrator.core", "Store": "orchestrator.store"}


def __getattr__(name: str) -> Any:
    """The names above, imported on first use: `python -m orchestrator` imports this package before
    its `__main__` can re-exec under .venv (common/venv.py), so nothing third-party is imported here."""
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'orchestrator' has no attribute {name!r}")
