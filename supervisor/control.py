"""Validation of control messages from MQTT (`{realm}/proc/control/{runtime_uuid}`).

Everything the orchestrator or a user sends is checked here before it reaches a worker: a bad
message becomes a ProtocolError whose text names the key and what was wrong.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from common.wire import ProtocolError, decode, require
from common.topics import Grant, parse_grants


@dataclass
class ControlRequest:
    action: str  # "create" or "delete"
    object_id: str
    uuid: str
    data: dict[str, Any]
    grants: list[Grant]


IGNORED_ACTIONS = ("exited", "update")  # our own kind of messages, or replies: not requests for us


def parse_control(payload: bytes, *, where: str) -> ControlRequest | None:
    """A create/delete request, None for a message that is not for us (a reply, an `exited`), or
    ProtocolError describing what is malformed."""
    msg = decode(payload, where=where)
    action = require(msg, "action", str, where=where)
    mtype = msg.get("type", "req")
    if mtype == "resp" or action in IGNORED_ACTIONS:
        return None
    object_id = msg.get("object_id")
    if object_id is not None and not isinstance(object_id, str):
        raise ProtocolError(f"{where}: key 'object_id' must be str, got {type(object_id).__name__}")
    data = require(msg, "data", dict, where=where)
    dwhere = f"{where}: data"
    if action not in ("create", "delete"):
        raise ProtocolError(f"{where}: unknown action {action!r} (a runtime accepts create and delete)")
    dtype = data.get("type", "module")
    if dtype != "module":
        raise ProtocolError(f"{dwhere}: type must be 'module', got {dtype!r}")
    uuid = require(data, "uuid", str, where=dwhere)
    if not uuid:
        raise ProtocolError(f"{dwhere}: key 'uuid' is empty")
    grants: list[Grant] = []
    if action == "create":
        for key, typ in (("name", str), ("file", str), ("args", dict), ("apis", list), ("channels", list)):
            if key in data and data[key] is not None:
                require(data, key, typ, where=dwhere)
        args = data.get("args") or {}
        for key, typ in (("argv", list), ("env", list), ("dirs", list)):
            if key in args and args[key] is not None:
                require(args, key, typ, where=f"{dwhere}.args")
        try:
            grants = parse_grants(data.get("channels"), where=f"{dwhere}.channels")
        except ValueError as e:
            raise ProtocolError(str(e)) from e
    return ControlRequest(action, object_id or "", uuid, data, grants)
