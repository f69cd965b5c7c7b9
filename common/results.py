"""Result ids and the collector's acknowledgement messages (docs/protocol.md, "Profiles" and "Stored").

A profile message is one *result*. Its id: the top-level string `"id"` of a JSON payload (the
benchmarking runtimes put a fresh uuid in every `benchmarking-v3` / `interference-v2` message),
else `sha256:` and the SHA-256 of topic and payload (the original's binary layouts carry no id:
the same bytes on the same topic are the same result). The node's spool keeps a result until an
ack names its id; the collector names the ids it has stored durably; the orchestrator settles a
cell's data on the same acks.

Acks: `REALM/proc/stored/RUNTIME`, QoS 1, JSON `{"collector": CLIENT_ID, "ids": [RESULT_ID, ...]}`.
Only the collector's and the orchestrator's accounts may publish there (`manage.py acl`); a node
reads only its own runtimes' topics.
"""
from __future__ import annotations

import hashlib
from typing import Any

import orjson

ACK_MAX_IDS = 1000  # ids in one ack message at most (a receiver ignores the rest)


def result_id(topic: str, payload: bytes) -> str:
    """The id of the result a profile message carries (see the module's doc)."""
    if payload[:1] == b"{":
        try:
            rid = orjson.loads(payload).get("id")
        except (orjson.JSONDecodeError, AttributeError):
            rid = None
        if isinstance(rid, str) and 0 < len(rid) <= 200:
            return rid
    return "sha256:" + hashlib.sha256(topic.encode("utf-8", "surrogatepass") + b"\0" + payload).hexdigest()


def stored_topic(realm: str, runtime_uuid: str) -> str:
    return f"{realm}/proc/stored/{runtime_uuid}"


def profile_runtime(realm: str, topic: str) -> str | None:
    """The RUNTIME of `REALM/proc/profile/TYPE/RUNTIME/MODULE`, else None."""
    prefix = f"{realm}/proc/profile/"
    if not topic.startswith(prefix):
        return None
    rest = topic[len(prefix):].split("/")
    return rest[1] if len(rest) == 3 and all(rest) else None


def encode_ack(collector: str, ids: list[str]) -> bytes:
    return orjson.dumps({"collector": collector, "ids": ids})


def decode_ack(payload: bytes) -> tuple[str, list[str]] | None:
    """(collector, ids) of an ack message; None when it is not one (then it is ignored)."""
    try:
        msg: Any = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(msg, dict):
        return None
    ids, who = msg.get("ids"), msg.get("collector")
    if not isinstance(ids, list) or not isinstance(who, str):
        return None
    return who, [i for i in ids[:ACK_MAX_IDS] if isinstance(i, str)]
