"""The link's own MQTT 5 codec (supervisor/mqtt_codec.py), pure: what `append_publish` encodes,
`split` decodes across any cut of the byte stream; other packets are handed on whole."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from supervisor.mqtt_codec import append_publish, publish_head, split, varint

PINGRESP = b"\xd0\x00"


def split_all(stream: bytes, cuts: list[int]) -> tuple[list[tuple[str, bytes]], list[bytes], bytearray]:
    """Feed `stream` in pieces of the `cuts` sizes, the way the link feeds what recv() returned."""
    got: list[tuple[str, bytes]] = []
    other: list[bytes] = []
    buf = bytearray()
    i = k = 0
    while i < len(stream):
        step = cuts[k % len(cuts)]
        buf += stream[i:i + step]
        del buf[:split(buf, lambda t, p: got.append((t, p)), other.append, lambda: False)]
        i += step
        k += 1
    return got, other, buf


def test_varint() -> None:
    assert varint(0) == b"\x00" and varint(127) == b"\x7f" and varint(128) == b"\x80\x01"
    assert varint(16383) == b"\xff\x7f" and varint(16384) == b"\x80\x80\x01"
    assert varint(268_435_455) == b"\xff\xff\xff\x7f"  # the largest MQTT allows


def test_publish_bytes() -> None:
    buf = bytearray()
    append_publish(buf, publish_head("a/b"), b"hi")
    assert bytes(buf) == b"\x30\x08\x00\x03a/b\x00hi"  # type+flags, remaining 8, topic, no properties, payload


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.text(min_size=1, max_size=40).filter(lambda t: "\x00" not in t), st.binary(max_size=300)), min_size=1, max_size=12),
       st.lists(st.integers(min_value=1, max_value=50), min_size=1, max_size=20))
def test_encoded_publishes_parse_back_across_any_split(msgs: list[tuple[str, bytes]], cuts: list[int]) -> None:
    buf = bytearray()
    for topic, payload in msgs:
        append_publish(buf, publish_head(topic), payload)
    got, other, rest = split_all(bytes(buf) + PINGRESP, cuts)  # a non-QoS0 packet goes on whole
    assert got == msgs
    assert other == [PINGRESP]
    assert rest == b""


def test_publish_with_properties_skipped() -> None:
    t = b"a/b"
    props = b"\x01\x01"  # payload format indicator = 1
    body = len(t).to_bytes(2, "big") + t + varint(len(props)) + props + b"PAY"
    got, other, rest = split_all(b"\x31" + varint(len(body)) + body, [1000])  # retain bit set, QoS 0
    assert got == [("a/b", b"PAY")] and other == [] and rest == b""


def test_qos1_publish_goes_on_whole() -> None:
    packet = b"\x32\x08\x00\x01t\x00\x07\x00hi"  # QoS 1 PUBLISH with packet id 7
    packet = packet[:1] + varint(len(packet) - 2) + packet[2:]
    got, other, _ = split_all(packet, [3])
    assert got == [] and other == [packet]


def test_incomplete_packet_waits() -> None:
    buf = bytearray(b"\x30\x10\x00\x03a/b")
    assert split(buf, lambda t, p: None, lambda p: None, lambda: False) == 0


def test_a_length_over_four_bytes_is_not_mqtt_and_goes_on() -> None:
    other: list[bytes] = []
    buf = bytearray(b"\x30\xff\xff\xff\xff\x01rest")
    assert split(buf, lambda t, p: None, other.append, lambda: False) == len(buf)
    assert other == [bytes(buf)]  # paho fails the connection on it


def test_stop_is_asked_after_every_packet() -> None:
    buf = bytearray()
    for i in range(3):
        append_publish(buf, publish_head("t"), bytes([i]))
    got: list[bytes] = []
    used = split(buf, lambda t, p: got.append(p), lambda p: None, lambda: len(got) == 2)
    assert got == [b"\x00", b"\x01"] and used == len(buf) - 7  # each packet is 7 bytes


def test_mqtt_311_publish_has_no_property_block_both_ways() -> None:
    """MQTT 3.1.1 (a broker named mqtt311://): no property block after the topic, out and in."""
    buf = bytearray()
    append_publish(buf, publish_head("a/b", v5=False), b"\x00xyz")
    assert bytes(buf) == b"\x30\x09\x00\x03a/b\x00xyz"
    got: list[tuple[str, bytes]] = []
    assert split(buf, lambda t, p: got.append((t, p)), lambda p: None, lambda: False, v5=False) == len(buf)
    assert got == [("a/b", b"\x00xyz")]  # a payload starting with 0 is not taken for an empty property block
