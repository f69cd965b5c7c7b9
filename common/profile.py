"""The RT_PROFILE message payload (ours): a worker sends profile data, the supervisor publishes it."""
from __future__ import annotations

import struct


def encode_profile(ptype: str, data: bytes) -> bytes:
    """Payload of RT_PROFILE: `[len:u8][type utf-8][data]`; the supervisor publishes `data`
    on `{realm}/proc/profile/{type}/{runtime_uuid}/{module_uuid}`."""
    t = ptype.encode("utf-8")
    if not 0 < len(t) < 256 or "/" in ptype:
        raise ValueError(f"profile type {ptype!r} must be 1..255 bytes without '/'")
    return struct.pack("B", len(t)) + t + bytes(data)


def decode_profile(payload: bytes) -> tuple[str, bytes]:
    """(type, data) of an RT_PROFILE payload; ValueError saying what is wrong."""
    if not payload or len(payload) < 1 + payload[0] or payload[0] == 0:
        raise ValueError(f"profile message of {len(payload)} bytes lacks its [len][type] header")
    n = payload[0]
    try:
        ptype = payload[1 : 1 + n].decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"profile type is not UTF-8: {e.reason}") from e
    return ptype, payload[1 + n :]
