"""Control messages from MQTT (`{realm}/proc/control/{runtime_uuid}`), decoded and checked once.

The checks are the schema's (common/schema.py): a bad message becomes a ProtocolError whose one
line names the key and what is wrong. What reaches a worker is the checked create, re-encoded.
"""
from __future__ import annotations

from dataclasses import dataclass

from common import schema
from common.wire import ProtocolError

IGNORED_ACTIONS = ("exited", "update")  # our own kind of messages, or replies: not requests for us


@dataclass
class ControlRequest:
    action: str  # "create" or "delete"
    object_id: str
    uuid: str
    create: schema.ModuleCreate | None  # the checked create (None for a delete)


def parse_control(payload: bytes, *, where: str) -> ControlRequest | None:
    """A create/delete request, None for a message that is not for us (a reply, an `exited`), or
    ProtocolError describing what is malformed."""
    msg = schema.decode_runtime_control(payload, where, ignore=IGNORED_ACTIONS)
    if isinstance(msg, schema.CreateMsg):
        uuid = msg.data.uuid
        if uuid is None:
            raise ProtocolError(f"{where}: missing key 'data.uuid'")
        if not uuid:
            raise ProtocolError(f"{where}: key 'data.uuid' is empty")
        msg.data.index = None  # the orchestrator's database id (the original's): the node uses its own slot
        return ControlRequest("create", msg.object_id or "", uuid, msg.data)
    if isinstance(msg, schema.DeleteMsg):
        if not msg.data.uuid:
            raise ProtocolError(f"{where}: key 'data.uuid' is empty")
        return ControlRequest("delete", msg.object_id or "", msg.data.uuid, None)
    return None
