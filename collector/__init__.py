"""The profile collector: stores every profiling message of a realm as a JSON file (`make profile`).

`python -m collector` subscribes `{realm}/proc/profile/#`, decodes each payload with the codecs of
`benchmarking.layouts` and writes `data/<date>/<runtime name>/<module name>.<uuid>.<type>.json`.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collector.store import Collector, ProfileStore

__all__ = ["Collector", "ProfileStore"]


def __getattr__(name: str) -> Any:
    """The names above, imported on first use: `python -m collector` imports this package before
    its `__main__` can re-exec under .venv (common/venv.py), so nothing third-party is imported here."""
    if name in __all__:
        return getattr(importlib.import_module("collector.store"), name)
    raise AttributeError(f"module 'collector' has no attribute {name!r}")
