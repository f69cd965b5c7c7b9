"""The conformance verdicts of this node's engines, stored per engine and version in
`~/.cache/silverline/conformance.json` (conformance.py makes them; launch.availability reads them:
an engine whose verdict for its current version failed is not offered)."""
from __future__ import annotations

import json
import os
import tempfile
from typing import Any

VERDICTS = os.path.join(os.path.expanduser("~"), ".cache", "silverline", "conformance.json")

_LOADED: tuple[tuple[str, int, int, int], dict[str, dict[str, Any]]] | None = None


def load() -> dict[str, dict[str, Any]]:
    """The stored verdicts (a copy); the file is read again only when it changed (path, inode, size,
    mtime): every cell's engine check asks, a campaign must not reread the file 100k times."""
    global _LOADED
    try:
        st = os.stat(VERDICTS)
    except OSError:
        return {}
    ident = (VERDICTS, st.st_ino, st.st_size, st.st_mtime_ns)
    if _LOADED is not None and _LOADED[0] == ident:
        return dict(_LOADED[1])
    try:
        with open(VERDICTS) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return {}
    data = data if isinstance(data, dict) else {}
    _LOADED = (ident, data)
    return dict(data)


def save(verdicts: dict[str, dict[str, Any]]) -> None:
    data = load()
    data.update(verdicts)
    os.makedirs(os.path.dirname(VERDICTS), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(VERDICTS), prefix=".conf-")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
    os.replace(tmp, VERDICTS)


def cached_verdict(engine: str, version: str | None) -> dict[str, Any] | None:
    """The stored verdict of `engine` when it was made for this version; else None (unchecked)."""
    v = load().get(engine)
    if not isinstance(v, dict) or v.get("version") != (version or "?"):
        return None
    return v
