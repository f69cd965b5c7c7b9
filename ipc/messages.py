"""Messages between the manager and a runtime: `(h1, h2, payload)` (docs/protocol.md, "Inside a node").

`h1` bit 7 set = control message, low 7 bits = module index (128 modules per runtime).
`h2` = message type for control messages, channel fd (0-255) for data messages.
"""
from __future__ import annotations

import struct
from typing import NamedTuple

from .errors import BadMessage

CONTROL = 0x80
INDEX_MASK = 0x7F
MAX_MODULES = 128

# manager -> runtime (h2 of a control message)
MGR_CREATE = 0x00  # 1{m}.00 JSON: the create `data` plus "index"
MGR_DELETE = 0x01  # 1{m}.01 empty
MGR_STOP = 0x02  # 1-.02  empty: stop the runtime

# runtime -> manager (h2 of a control message)
RT_KEEPALIVE = 0x00  # 1-.00 JSON merged into the keepalive `data`
RT_LOG = 0x01  # 1-.01 [1|level:7][text] or plain text (DEBUG)
RT_EXITED = 0x02  # 1{m}.02 JSON merged into the exited `data`
RT_OPEN = 0x03  # 1{m}.03 [fd:u8][flags:u8][topic utf-8]
RT_CLOSE = 0x04  # 1{m}.04 [fd:u8]
RT_MODLOG = 0x05  # 1{m}.05 as RT_LOG
RT_PROFILE = 0x06  # 1{m}.06 bytes, forwarded to proc/profile/...
RT_REGISTER = 0x07  # 1-.07 JSON {platform, metadata}: registration extras, once after setup (ours)

MGR_NAMES = {MGR_CREATE: "create", MGR_DELETE: "delete", MGR_STOP: "stop"}
RT_NAMES = {
    RT_KEEPALIVE: "keepalive",
    RT_LOG: "log",
    RT_EXITED: "exited",
    RT_OPEN: "open",
    RT_CLOSE: "close",
    RT_MODLOG: "modlog",
    RT_PROFILE: "profile",
    RT_REGISTER: "register",
}

# channel flags
FLAG_READ = 0b0001
FLAG_WRITE = 0b0010
FLAG_QOS1 = 0b0100
FLAG_QOS2 = 0b1000


class Message(NamedTuple):
    h1: int
    h2: int
    payload: bytes

    @property
    def is_control(self) -> bool:
        return bool(self.h1 & CONTROL)

    @property
    def module(self) -> int:
        """The module index of `h1` (named so as not to shadow `tuple.index`)."""
        return self.h1 & INDEX_MASK


def ctrl(index: int = 0) -> int:
    """`h1` of a control message about module `index` (0 when no module is concerned)."""
    if not 0 <= index <= INDEX_MASK:
        raise ValueError(f"module index {index} out of range 0..{INDEX_MASK}")
    return CONTROL | index


def data(index: int) -> int:
    """`h1` of a channel data message of module `index`."""
    if not 0 <= index <= INDEX_MASK:
        raise ValueError(f"module index {index} out of range 0..{INDEX_MASK}")
    return index


def is_control(h1: int) -> bool:
    return bool(h1 & CONTROL)


def index_of(h1: int) -> int:
    return h1 & INDEX_MASK


def qos_of(flags: int) -> int:
    """MQTT QoS requested by channel flags (QoS2 wins over QoS1)."""
    if flags & FLAG_QOS2:
        return 2
    if flags & FLAG_QOS1:
        return 1
    return 0


def encode_log(level: int, text: str) -> bytes:
    """`[1|level:7][text]`; levels above 127 are clamped (CRITICAL is 50)."""
    return bytes([0x80 | max(0, min(level, 0x7F))]) + text.encode("utf-8", "replace")


def decode_log(payload: bytes) -> tuple[int, str]:
    """(level, text); a payload without the level byte is plain text at DEBUG (10)."""
    if payload and payload[0] & 0x80:
        return payload[0] & 0x7F, payload[1:].decode("utf-8", "replace")
    return 10, payload.decode("utf-8", "replace")


def encode_open(fd: int, flags: int, topic: str) -> bytes:
    if not 0 <= fd <= 255:
        raise ValueError(f"channel fd {fd} out of range 0..255")
    if not 0 <= flags <= 255:
        raise ValueError(f"channel flags {flags} out of range 0..255")
    return struct.pack("BB", fd, flags) + topic.encode("utf-8")


def decode_open(payload: bytes) -> tuple[int, int, str]:
    """(fd, flags, topic) or BadMessage saying what is wrong."""
    if len(payload) < 3:
        raise BadMessage(f"open channel: payload of {len(payload)} bytes, need [fd][flags][topic] (>= 3 bytes)")
    fd, flags = payload[0], payload[1]
    try:
        topic = payload[2:].decode("utf-8")
    except UnicodeDecodeError as e:
        raise BadMessage(f"open channel: topic is not UTF-8 ({e.reason} at byte {e.start + 2})") from e
    if "\x00" in topic:
        raise BadMessage("open channel: topic contains a NUL character")
    if flags & ~0x0F:
        raise BadMessage(f"open channel: unknown flag bits 0x{flags & ~0x0F:02x}")
    if not flags & (FLAG_READ | FLAG_WRITE):
        raise BadMessage("open channel: flags allow neither read nor write")
    return fd, flags, topic


def encode_close(fd: int) -> bytes:
    return bytes([fd])


def decode_close(payload: bytes) -> int:
    if len(payload) != 1:
        raise BadMessage(f"close channel: payload of {len(payload)} bytes, need exactly [fd]")
    return payload[0]
