"""Stable identities: a node restarted with the same name keeps its manager and runtime uuids.

Stored in `STATE_DIR/<name>.json` = `{"manager": uuid, "runtimes": {full_name: uuid}}`. Default
directory: `$XDG_STATE_HOME/silverline` or `~/.local/state/silverline`. A `--uuid` flag overrides the
manager uuid; runtime uuids are then derived from it (uuid5), so the same flag gives the same uuids.
"""
from __future__ import annotations

import json
import logging
import os
import tempfile
import uuid as _uuid
from dataclasses import dataclass, field

log = logging.getLogger("mgr")

NAMESPACE = _uuid.UUID("5e1f7a2c-3b1d-4c2e-9a57-51c0e2d0a001")


def default_state_dir() -> str:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "silverline")


@dataclass
class Identity:
    manager: str
    runtimes: dict[str, str] = field(default_factory=dict)


def _valid(u: object) -> bool:
    try:
        _uuid.UUID(str(u))
        return isinstance(u, str)
    except ValueError:
        return False


def load_identity(name: str, runtime_names: list[str], *, state_dir: str | None, manager_uuid: str | None = None) -> Identity:
    """Read (or create and write) the identity of node `name`; `state_dir=None` disables persistence."""
    path = os.path.join(state_dir, f"{name.replace('/', '_')}.json") if state_dir else None
    stored = Identity(manager="")
    if path and os.path.exists(path):
        try:
            with open(path, encoding="utf-8") as f:
                raw = json.load(f)
            if _valid(raw.get("manager")):
                stored.manager = raw["manager"]
            stored.runtimes = {k: v for k, v in (raw.get("runtimes") or {}).items() if _valid(v)}
        except (OSError, ValueError, AttributeError) as e:
            log.warning("state file %s is unreadable (%s): drawing new uuids", path, e)
    if manager_uuid:
        if manager_uuid != stored.manager:
            stored.runtimes = {}
        ident = Identity(manager_uuid)
        for rn in runtime_names:
            ident.runtimes[rn] = stored.runtimes.get(rn) or str(_uuid.uuid5(NAMESPACE, f"{manager_uuid}/{rn}"))
    else:
        ident = Identity(stored.manager or str(_uuid.uuid4()))
        for rn in runtime_names:
            ident.runtimes[rn] = stored.runtimes.get(rn) or str(_uuid.uuid4())
    if path:
        merged = dict(stored.runtimes)
        merged.update(ident.runtimes)
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".id-")
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump({"manager": ident.manager, "runtimes": merged}, f, indent=1)
            os.replace(tmp, path)
        except OSError as e:
            log.warning("cannot write state file %s (%s): uuids will change at the next start", path, e)
    return ident
