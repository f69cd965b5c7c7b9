"""The MQTT link's own QoS 0 codec: what `publish` encodes, `_parse` decodes, across any split of
the byte stream; other packets go to paho (not connected here: dropped)."""
from __future__ import annotations

import selectors

from hypothesis import given, settings
from hypothesis import strategies as st

from common.config import Config
from supervisor.mqtt_link import MqttLink, _varint


def make_link(got: list[tuple[str, bytes]]) -> MqttLink:
    sel = selectors.DefaultSelector()
    link = MqttLink(Config(), client_id="t", selector=sel, on_message=lambda t, p: got.append((t, p)), on_connect=lambda: None)
    link.connected = True  # encode as if connected; nothing is sent
    link._sock = object()  # "connected" for the parser; paho itself has no socket and drops what it is fed
    return link


def test_varint() -> None:
    assert _varint(0) == b"\x00" and _varint(127) == b"\x7f" and _varint(128) == b"\x80\x01"
    assert _varint(16384) == b"\x80\x80\x01"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.text(min_size=1, max_size=40).filter(lambda t: "\x00" not in t), st.binary(max_size=300)), min_size=1, max_size=12),
       st.lists(st.integers(min_value=1, max_value=50), min_size=1, max_size=20))
def test_encoded_publishes_parse_back_across_any_split(msgs: list[tuple[str, bytes]], cuts: list[int]) -> None:
    got: list[tuple[str, bytes]] = []
    link = make_link(got)
    for topic, payload in msgs:
        link.publish(topic, payload, 0)
    stream = bytes(link._fast_buf)
    # a non-QoS0 packet in between (PINGRESP) goes to paho, not to on_message
    stream = stream + b"\xd0\x00"
    i = 0
    k = 0
    while i < len(stream):
        step = cuts[k % len(cuts)]
        link._inbuf += stream[i:i + step]
        link._parse()
        i += step
        k += 1
    assert got == msgs
    assert link._inbuf == b""


def test_publish_with_properties_skipped() -> None:
    got: list[tuple[str, bytes]] = []
    link = make_link(got)
    t = b"a/b"
    props = b"\x01\x01"  # payload format indicator = 1
    body = len(t).to_bytes(2, "big") + t + _varint(len(props)) + props + b"PAY"
    link._inbuf += b"\x31" + _varint(len(body)) + body  # retain bit set, QoS 0
    link._parse()
    assert got == [("a/b", b"PAY")]
