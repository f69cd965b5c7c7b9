"""Module control over MQTT for tests (and the chaos scenarios): create/delete requests as the
orchestrator sends them (docs/protocol.md, "Creating modules", "Delete and exited"), and waiting for a module's `exited` report."""
from __future__ import annotations

import uuid as uuidlib
from typing import Any

import orjson

from testbed.mqtt import MqttProbe, Received

REALM = "realm"


def js(m: Received | bytes) -> dict[str, Any]:
    """A message (or payload) as a JSON object, {} when it is not one (tests also send malformed ones)."""
    try:
        v = orjson.loads(m.payload if isinstance(m, Received) else m)
    except orjson.JSONDecodeError:
        return {}
    return v if isinstance(v, dict) else {}


def control_message(action: str, data: dict[str, Any], object_id: str | None = None) -> dict[str, Any]:
    """A control request envelope."""
    return {"object_id": object_id or str(uuidlib.uuid4()), "action": action, "type": "req", "data": data}


def module_create(uuid: str, parent: str, *, file: str = "none", name: str | None = None,
                  channels: list[dict[str, str]] | None = None, apis: list[str] | None = None,
                  object_id: str | None = None, **args: Any) -> dict[str, Any]:
    """The create request of a module on runtime `parent` (`args` are the module's args)."""
    return control_message("create", {"type": "module", "uuid": uuid, "name": name or f"mod-{uuid}", "parent": parent,
                                      "file": file, "apis": apis or [], "args": args, "channels": channels or []}, object_id)


def module_delete(uuid: str, object_id: str | None = None) -> dict[str, Any]:
    return control_message("delete", {"type": "module", "uuid": uuid}, object_id)


def create(probe: MqttProbe, rt: str, uuid: str, *, realm: str = REALM, **kw: Any) -> None:
    """Publish a module create on runtime `rt`'s control topic (keywords: see `module_create`)."""
    probe.publish(f"{realm}/proc/control/{rt}", module_create(uuid, rt, **kw))


def delete(probe: MqttProbe, rt: str, uuid: str, *, realm: str = REALM) -> None:
    probe.publish(f"{realm}/proc/control/{rt}", module_delete(uuid))


def exited(probe: MqttProbe, rt: str, uuid: str, timeout: float = 15.0, *, realm: str = REALM) -> dict[str, Any]:
    """The `data` of module `uuid`'s exited report on runtime `rt` (`+`: any runtime); the probe must
    be subscribed to the control topic."""
    msgs = probe.wait_for(f"{realm}/proc/control/{rt}", lambda m: js(m).get("action") == "exited"
                          and js(m).get("data", {}).get("uuid") == uuid, timeout=timeout)
    data: dict[str, Any] = js(msgs[0])["data"]
    return data
