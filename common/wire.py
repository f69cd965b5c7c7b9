"""The JSON envelope and MQTT topic names of the SilverLine protocol (docs/protocol.md, "Topics", "Envelope")."""
from __future__ import annotations

import uuid as _uuid
from typing import Any

import orjson


class ProtocolError(ValueError):
    """A message that does not follow the protocol; the text says what is wrong."""


QUOTE_BYTES = 200  # at most this much of an offending payload is quoted in a log line or error report
LINE_CHARS = 600  # an error line longer than this is cut (descriptions quote values, never whole payloads)


def quote(payload: bytes | None, limit: int = QUOTE_BYTES) -> str | None:
    """The first `limit` bytes of an offending payload as text, saying how long it was when cut."""
    if payload is None:
        return None
    text = payload[:limit].decode("utf-8", "replace")
    return text if len(payload) <= limit else f"{text}... ({len(payload)} bytes)"


def skeleton(obj: Any, payload: bytes) -> dict[str, Any]:
    """A large offending JSON message as a report may carry it: its identifying keys only (`action`,
    `object_id`, `uuid`, and those of its `data` and `modules[]`, so a client still learns which of its
    modules were refused), the first 200 bytes quoted, and its length."""
    def ids(d: Any) -> Any:
        if not isinstance(d, dict):
            return None
        out: dict[str, Any] = {k: d[k] for k in ("action", "object_id", "uuid") if isinstance(d.get(k), str)}
        if isinstance(d.get("data"), dict):
            out["data"] = ids(d["data"])
        if isinstance(d.get("modules"), list):
            out["modules"] = [{"uuid": m["uuid"]} for m in d["modules"] if isinstance(m, dict) and isinstance(m.get("uuid"), str)]
        return out
    return {**(ids(obj) or {}), "quote": quote(payload), "bytes": len(payload)}


def one_line(text: str, limit: int = LINE_CHARS) -> str:
    """An error text as one bounded line."""
    text = text.replace("\n", " ")
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


def new_uuid() -> str:
    return str(_uuid.uuid4())


def envelope(action: str, data: dict[str, Any], *, type: str = "req", object_id: str | None = None) -> dict[str, Any]:
    return {"object_id": object_id or new_uuid(), "action": action, "type": type, "data": data}


def encode(msg: Any) -> bytes:
    return orjson.dumps(msg)


def decode(payload: bytes | str, *, where: str = "message") -> dict[str, Any]:
    """Decode a JSON envelope; raise ProtocolError with a clear description."""
    try:
        msg = orjson.loads(payload)
    except orjson.JSONDecodeError as e:
        raise ProtocolError(f"{where}: malformed JSON: {e}") from e
    if not isinstance(msg, dict):
        raise ProtocolError(f"{where}: expected a JSON object, got {type(msg).__name__}")
    return msg


def require(d: dict[str, Any], key: str, typ: type | tuple[type, ...], *, where: str = "data") -> Any:
    """`d[key]`, checked to be of `typ`, or ProtocolError naming the key."""
    if key not in d:
        raise ProtocolError(f"{where}: missing key {key!r}")
    v = d[key]
    if not isinstance(v, typ) or (isinstance(v, bool) and typ in (int, float)):
        tn = typ.__name__ if isinstance(typ, type) else "/".join(t.__name__ for t in typ)
        raise ProtocolError(f"{where}: key {key!r} must be {tn}, got {type(v).__name__}")
    return v


class Topics:
    """Topic names for one realm."""

    def __init__(self, realm: str = "realm") -> None:
        self.realm = realm

    def reg(self, uuid: str) -> str:
        return f"{self.realm}/proc/reg/{uuid}"

    def keepalive(self, uuid: str) -> str:
        return f"{self.realm}/proc/keepalive/{uuid}"

    def control(self, runtime_uuid: str | None = None) -> str:
        base = f"{self.realm}/proc/control"
        return f"{base}/{runtime_uuid}" if runtime_uuid else base

    def profile(self, ptype: str, runtime_uuid: str, module_uuid: str) -> str:
        return f"{self.realm}/proc/profile/{ptype}/{runtime_uuid}/{module_uuid}"

    @property
    def log(self) -> str:
        return f"{self.realm}/proc/log"

    @property
    def orchestrator_log(self) -> str:
        """Where the original orchestrator publishes its error reports (ours publishes on both)."""
        return f"{self.realm}/proc/log/orchestrator"

    def stdio(self, module_uuid: str, runtime_uuid: str | None = None) -> str:
        """A module's stdio: `stdio/MODULE` (the original's, shared by every node), or per node
        `stdio/RUNTIME/MODULE` (ours: a node with credentials; `runtime_uuid="+"` for a filter)."""
        if runtime_uuid:
            return f"{self.realm}/proc/stdio/{runtime_uuid}/{module_uuid}"
        return f"{self.realm}/proc/stdio/{module_uuid}"
