"""Ours (issue #25, docs/security.md): who may speak for which identity, on top of the broker's ACL.

- **One live runtime per name.** A runtime registration whose name an alive runtime with another
  uuid holds, heard from since this orchestrator started, is refused as a duplicate manager is
  (`details.reason: "duplicate"`, `retry_after` when the holder would be dead by missed keepalives):
  creates addressed by name must not reach a squatter.
- **Identities** (`orchestrator --identities FILE`, the `identities.json` that `manage.py acl`
  writes): a registration whose uuid is not in the file, or whose kind or name differ from it, is
  refused. A node account may register its own uuids only (the ACL), and now only under its names.
- **Profiles** of a module are taken only from the runtime it was placed on.
"""
from __future__ import annotations

import json
from typing import Any, Iterable

from orchestrator.model import RUNTIME, Mod, Node
from orchestrator.presence import Presence, process_of
from orchestrator.state import Refused


class IdentityError(ValueError):
    """The identities file cannot be used; the text says which file and why."""


def load_identities(path: str) -> dict[str, tuple[str, str]]:
    """uuid -> (kind, name) from `manage.py acl`'s identities.json."""
    try:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
    except OSError as e:
        raise IdentityError(f"--identities {path}: cannot read: {e.strerror}") from None
    except ValueError as e:
        raise IdentityError(f"--identities {path}: not JSON ({e}); write it again with manage.py acl -o DIR") from None
    if not isinstance(raw, dict) or not all(isinstance(v, dict) and isinstance(v.get("kind"), str)
                                            and isinstance(v.get("name"), str) for v in raw.values()):
        raise IdentityError(f"--identities {path}: expected {{UUID: {{\"kind\": ..., \"name\": ...}}}} as manage.py acl writes it")
    return {u: (v["kind"], v["name"]) for u, v in raw.items()}


class Guard:
    """The checks above; `identities` None: any uuid may register (no ACL realm)."""

    def __init__(self, identities: dict[str, tuple[str, str]] | None = None) -> None:
        self.identities = identities

    def stranger(self, kind: str, uuid: str, name: str, where: str) -> str | None:
        """Why a registration does not match the realm's identities (None: it does, or there are none)."""
        if self.identities is None:
            return None
        known = self.identities.get(uuid)
        if known is None:
            return f"{where}: {kind} {name!r} ({uuid}) is not in the realm's identities file: refused (run manage.py acl with its node's identity file)"
        if known != (kind, name):
            return f"{where}: uuid {uuid} is {known[0]} {known[1]!r} in the realm's identities file, not {kind} {name!r}: refused"
        return None

    def check_registration(self, node: Node, where: str, nodes: dict[str, Node], by_name: dict[str, set[str]],
                           presence: Presence) -> None:
        """Refused when `node`'s registration is not the realm's identity or its name is taken."""
        why = self.stranger(node.kind, node.uuid, node.name, where)
        if why is not None:
            raise Refused(why)
        taken = self.name_taken(node, (nodes[u] for u in by_name.get(node.name, ()) if u in nodes), presence)
        if taken is not None:
            raise Refused(f"{where}: {taken[0]}", taken[1])

    @staticmethod
    def name_taken(node: Node, named: Iterable[Node], presence: Presence) -> tuple[str, dict[str, Any]] | None:
        """(description, details) when another alive, heard runtime holds `node`'s name."""
        if node.kind != RUNTIME:
            return None
        holder = next((n for n in named if n.uuid != node.uuid and n.kind == RUNTIME and n.alive
                       and n.name == node.name and n.uuid in presence.heard), None)
        if holder is None:
            return None
        mine = process_of(holder.info)
        text = (f"runtime name {node.name!r} is held by the alive runtime {holder.uuid}; refusing it for {node.uuid} "
                f"until that one is dead (one live runtime per name)")
        details: dict[str, Any] = {"reason": "duplicate", "name": node.name, "holder": {"uuid": holder.uuid}}
        if mine is not None:
            details["holder"].update({"host": mine[0], "pid": mine[1]})
        expires = holder.expires_at()
        if expires is not None:
            details["retry_after"] = round(max(0.0, expires - presence.clock()), 2)
        return text, details

    @staticmethod
    def foreign_profile(m: Mod | None, runtime_uuid: str) -> str | None:
        """Why a profile on `profile/TYPE/runtime_uuid/MODULE` is not taken (None: it is)."""
        if m is not None and m.parent != runtime_uuid:
            return f"profile of module {m.uuid} from runtime {runtime_uuid}, but it runs on {m.parent}: refused"
        return None
