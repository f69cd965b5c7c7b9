"""The MQTT 5 wire format of the link's fast paths, pure (no socket, no paho): QoS 0 PUBLISH
packets out, and the split of a received byte stream into packets (QoS 0 PUBLISH decoded, every
other packet handed on whole). Unit tests: tests/supervisor/test_mqtt_codec.py."""
from __future__ import annotations

import struct
from typing import Callable

PUBLISH_QOS0 = 0x30  # fixed header byte: PUBLISH, QoS 0, no dup, no retain
MAX_VARINT = 4  # bytes of a remaining-length field; a longer one is not MQTT
DISCONNECT_NORMAL = b"\xe0\x00"  # DISCONNECT, MQTT 5 reason 0 (normal: the broker discards the will)


def varint(n: int) -> bytes:
    """MQTT's variable byte integer."""
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def publish_head(topic: str, v5: bool = True) -> bytes:
    """The part of a QoS 0 PUBLISH after the remaining length and before the payload: topic length,
    topic, and (MQTT 5) an empty property block (no topic alias: none is negotiated)."""
    t = topic.encode("utf-8")
    return struct.pack(">H", len(t)) + t + (b"\x00" if v5 else b"")


def append_publish(buf: bytearray, head: bytes, payload: bytes) -> None:
    """Append one QoS 0 PUBLISH (`head` from `publish_head`) to `buf`."""
    buf.append(PUBLISH_QOS0)
    buf += varint(len(head) + len(payload))
    buf += head
    buf += payload


def split(buf: bytearray, on_publish: Callable[[str, bytes], None], on_packet: Callable[[bytes], None],
          stop: Callable[[], bool], v5: bool = True) -> int:
    """Hand on every complete packet at the start of `buf`; returns how many bytes were used.

    A QoS 0 PUBLISH (dup/retain bits ignored) goes to `on_publish(topic, payload)` (its MQTT 5
    properties skipped; MQTT 3.1.1, `v5` False, has none); any other packet goes whole to `on_packet`. A remaining-length field longer
    than four bytes is not MQTT: the rest of the buffer goes to `on_packet` (paho then fails the
    connection). `stop()` is asked after every packet (a handler may have closed the connection).
    """
    n = len(buf)
    pos = 0
    while pos + 2 <= n:
        head = buf[pos]
        rem, mult, k = 0, 1, pos + 1
        while True:
            if k >= n or k - pos > MAX_VARINT:
                rem = -1
                break
            b = buf[k]
            rem += (b & 0x7F) * mult
            mult <<= 7
            k += 1
            if not b & 0x80:
                break
        if rem < 0 or k + rem > n:
            if k - pos > MAX_VARINT:
                on_packet(bytes(buf[pos:]))
                pos = n
            break
        end = k + rem
        if head & 0xF6 == PUBLISH_QOS0 and rem >= 3:
            tl = (buf[k] << 8) | buf[k + 1]
            p = k + 2 + tl
            topic = buf[k + 2:p].decode("utf-8", "replace")
            plen, pm = 0, 1
            while v5 and p < end:
                b = buf[p]
                p += 1
                plen += (b & 0x7F) * pm
                pm <<= 7
                if not b & 0x80:
                    break
            on_publish(topic, bytes(buf[p + plen:end]))
        else:
            on_packet(bytes(buf[pos:end]))
        pos = end
        if stop():
            break
    return pos
