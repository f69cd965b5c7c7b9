"""Pure channel topic rules: $SL rewriting, grants, wildcards, matching."""
from __future__ import annotations

import pytest

from ipc import messages
from common import topics
from common.topics import ChannelError, Grant, resolve

R, W = topics.FLAG_READ, topics.FLAG_WRITE


def test_flags_agree_with_ipc_messages() -> None:
    assert (topics.FLAG_READ, topics.FLAG_WRITE, topics.FLAG_QOS1, topics.FLAG_QOS2) == (messages.FLAG_READ, messages.FLAG_WRITE, messages.FLAG_QOS1, messages.FLAG_QOS2)


def test_sl_prefix_rewritten_with_realm_and_module_uuid() -> None:
    assert resolve("$SL/proc/stdio", W, realm="rr", module_uuid="u1", grants=[]) == "rr/proc/stdio/u1"


def test_grant_prefix_rewritten_and_mode_checked() -> None:
    g = [Grant("in", "r", "app/in"), Grant("out", "w", "app/out"), Grant("io/", "rw", "x/")]
    assert resolve("in/a", R, realm="r", module_uuid="u", grants=g) == "app/in/a"
    assert resolve("out", W, realm="r", module_uuid="u", grants=g) == "app/out"
    assert resolve("io/z", R | W, realm="r", module_uuid="u", grants=g) == "x/z"
    with pytest.raises(ChannelError, match="read-only"):
        resolve("in", W, realm="r", module_uuid="u", grants=g)
    with pytest.raises(ChannelError, match="write-only"):
        resolve("out", R, realm="r", module_uuid="u", grants=g)
    with pytest.raises(ChannelError, match="not granted"):
        resolve("other", R, realm="r", module_uuid="u", grants=g)


def test_no_grants_none_means_no_access_control() -> None:
    assert resolve("any/topic", R, realm="r", module_uuid="u", grants=None) == "any/topic"


def test_writable_wildcard_refused_readable_allowed() -> None:
    for topic in ("a/+/b", "a/#"):
        with pytest.raises(ChannelError, match="wildcard"):
            resolve(topic, W, realm="r", module_uuid="u", grants=None)
        with pytest.raises(ChannelError, match="wildcard"):
            resolve(topic, R | W, realm="r", module_uuid="u", grants=None)
        assert resolve(topic, R, realm="r", module_uuid="u", grants=None) == topic


def test_neither_read_nor_write_refused() -> None:
    with pytest.raises(ChannelError, match="neither"):
        resolve("a", topics.FLAG_QOS1, realm="r", module_uuid="u", grants=None)


def test_qos_from_flags() -> None:
    assert topics.qos_of(R) == 0 and topics.qos_of(R | topics.FLAG_QOS1) == 1 and topics.qos_of(W | topics.FLAG_QOS2 | topics.FLAG_QOS1) == 2


@pytest.mark.parametrize("sub,topic,ok", [
    ("a/b", "a/b", True), ("a/+", "a/b", True), ("a/+", "a/b/c", False), ("a/#", "a", True),
    ("a/#", "a/b/c", True), ("#", "x/y", True), ("+/+", "a/b", True), ("+", "a/b", False),
    ("a/+/c", "a/x/c", True), ("a/+/c", "a/x/d", False), ("#", "$SYS/x", False), ("a/b", "a/b/c", False),
    ("+/b", "/b", True),
])
def test_matches_like_mqtt(sub: str, topic: str, ok: bool) -> None:
    import paho.mqtt.client as mqtt

    assert topics.matches(sub, topic) is ok
    assert mqtt.topic_matches_sub(sub, topic) is ok  # the reference implementation agrees


def test_parse_grants_errors_name_the_entry() -> None:
    with pytest.raises(ValueError, match=r"channels\[1\]: key 'topic'"):
        topics.parse_grants([{"path": "a", "mode": "r", "topic": "b"}, {"path": "a", "mode": "r"}])
    with pytest.raises(ValueError, match="mode"):
        topics.parse_grants([{"path": "a", "mode": "x", "topic": "b"}])
    assert topics.parse_grants(None) == []


def test_stdio_per_node() -> None:
    # issue #25: an authenticated node's module stdio is under its runtime, where the broker's ACL confines it
    from common.topics import FLAG_READ, FLAG_WRITE, resolve
    rw = FLAG_READ | FLAG_WRITE
    assert resolve("$SL/proc/stdio", rw, realm="r", module_uuid="m", grants=[]) == "r/proc/stdio/m"
    assert resolve("$SL/proc/stdio", rw, realm="r", module_uuid="m", grants=[], stdio_runtime="rt") == "r/proc/stdio/rt/m"
    assert resolve("$SL/rest", rw, realm="r", module_uuid="m", grants=[], stdio_runtime="rt") == "r/rest/m"
