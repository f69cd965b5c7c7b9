"""Header helpers and payload codecs (docs/protocol.md, "Inside a node")."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ipc import BadMessage
from ipc import messages as m


def test_control_bit_and_index() -> None:
    assert m.ctrl(5) == 0x85 and m.is_control(0x85) and m.index_of(0x85) == 5
    assert m.data(127) == 127 and not m.is_control(127)
    assert m.Message(0x83, m.RT_OPEN, b"").module == 3
    with pytest.raises(ValueError, match="out of range"):
        m.ctrl(128)


def test_qos_from_flags() -> None:
    assert m.qos_of(m.FLAG_READ) == 0
    assert m.qos_of(m.FLAG_WRITE | m.FLAG_QOS1) == 1
    assert m.qos_of(m.FLAG_WRITE | m.FLAG_QOS1 | m.FLAG_QOS2) == 2


def test_log_codec_levels_and_plain_text() -> None:
    assert m.decode_log(m.encode_log(40, "boom")) == (40, "boom")
    assert m.decode_log(b"plain") == (10, "plain")  # no level byte: DEBUG
    assert m.decode_log(m.encode_log(500, "x"))[0] == 127


@given(st.integers(0, 255), st.sampled_from([1, 2, 3, 5, 6, 7, 9, 10, 11, 15]), st.text(min_size=1).filter(lambda t: "\x00" not in t))
def test_open_roundtrip(fd: int, flags: int, topic: str) -> None:
    assert m.decode_open(m.encode_open(fd, flags, topic)) == (fd, flags, topic)


@pytest.mark.parametrize(
    "payload, why",
    [(b"", "need"), (b"\x01\x01", "need"), (b"\x01\x00topic", "neither read nor write"), (b"\x01\x31t", "unknown flag"), (b"\x01\x01\xff\xfe", "not UTF-8")],
)
def test_open_rejects_bad_payloads(payload: bytes, why: str) -> None:
    with pytest.raises(BadMessage, match=why):
        m.decode_open(payload)


def test_close_codec() -> None:
    assert m.decode_close(m.encode_close(7)) == 7
    with pytest.raises(BadMessage, match="exactly"):
        m.decode_close(b"\x01\x02")


@given(st.binary(max_size=64))
def test_decoders_never_crash(payload: bytes) -> None:
    for dec in (m.decode_open, m.decode_close):
        try:
            dec(payload)
        except BadMessage:
            pass
    m.decode_log(payload)
