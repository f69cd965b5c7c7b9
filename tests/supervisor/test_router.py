"""The data path (supervisor/router.py) over real rings: channel open with grants and `$SL/`,
MQTT -> module, module -> MQTT and loopback, close, and what else a worker says."""
from __future__ import annotations

import logging

import orjson
import pytest

from ipc import RingFullError, messages
from supervisor.modules import ModuleRecord
from tests.supervisor.fakes import REALM, Rig

RW = messages.FLAG_READ | messages.FLAG_WRITE


def add_module(rig: Rig, slot: int, index: int, uuid: str, channels: list[dict[str, str]]) -> None:
    from common.topics import parse_grants

    rig.workers[slot].modules.add(ModuleRecord(index, uuid, f"mod-{uuid}", {}, parse_grants(channels)))


def open_channel(rig: Rig, slot: int, index: int, fd: int, flags: int, topic: str) -> None:
    rig.from_worker(slot, messages.ctrl(index), messages.RT_OPEN, messages.encode_open(fd, flags, topic))


def test_granted_channel_subscribes_and_receives(rig: Rig) -> None:
    add_module(rig, 0, 3, "m3", [{"path": "in", "mode": "r", "topic": "t/in"}])
    open_channel(rig, 0, 3, 1, messages.FLAG_READ, "in")
    assert rig.link.subscriptions == {"t/in": 0}
    rig.router.from_mqtt("t/in", b"hello")
    assert rig.to_worker(0) == [(3, 1, b"hello")]  # data message: h1 = module index, h2 = channel fd
    rig.router.from_mqtt("t/other", b"nobody")
    assert rig.to_worker(0) == []


def test_sl_topics_are_rewritten_and_always_allowed(rig: Rig) -> None:
    add_module(rig, 0, 0, "m0", [])
    open_channel(rig, 0, 0, 2, messages.FLAG_READ, "$SL/cmd")
    assert rig.link.subscriptions == {f"{REALM}/cmd/m0": 0}


def test_ungranted_channel_is_refused_with_a_message(rig: Rig) -> None:
    add_module(rig, 0, 1, "m1", [{"path": "in", "mode": "r", "topic": "t/in"}])
    open_channel(rig, 0, 1, 1, messages.FLAG_WRITE, "in")  # granted for reading only
    open_channel(rig, 0, 1, 2, messages.FLAG_READ, "secret/x")
    assert rig.link.subscriptions == {}
    errs = rig.errors()
    assert len(errs) == 2 and all("runtime n.echo0, module mod-m1 (m1): channel refused" in e for e in errs)


def test_without_access_control_any_topic_opens() -> None:
    rig = Rig(access_control=False)
    try:
        add_module(rig, 0, 1, "m1", [])
        open_channel(rig, 0, 1, 1, messages.FLAG_READ, "secret/x")
        assert rig.link.subscriptions == {"secret/x": 0}
    finally:
        rig.close()


def test_publish_goes_to_mqtt_and_to_local_readers_first(rig: Rig) -> None:
    add_module(rig, 0, 0, "a", [{"path": "t", "mode": "rw", "topic": "t/x"}])
    add_module(rig, 1, 5, "b", [{"path": "t", "mode": "r", "topic": "t/#"}])
    open_channel(rig, 0, 0, 1, RW, "t")
    open_channel(rig, 1, 5, 4, messages.FLAG_READ | messages.FLAG_QOS1, "t")
    rig.from_worker(0, messages.data(0), 1, b"payload")
    assert rig.to_worker(1) == [(5, 4, b"payload")]
    assert rig.to_worker(0) == []  # the publisher does not hear itself
    assert ("t/x", b"payload", 0) in rig.link.published


def test_publish_on_a_channel_not_open_is_dropped(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    add_module(rig, 0, 0, "a", [])
    with caplog.at_level(logging.ERROR, logger="ch"):
        rig.from_worker(0, messages.data(0), 9, b"lost")
    assert rig.link.published == [] and "message of 4 bytes dropped" in caplog.text


def test_close_and_module_exit_unsubscribe_the_last_reader(rig: Rig) -> None:
    add_module(rig, 0, 0, "a", [{"path": "t", "mode": "r", "topic": "t/a"}, {"path": "u", "mode": "r", "topic": "t/u"}])
    add_module(rig, 1, 0, "b", [{"path": "t", "mode": "r", "topic": "t/a"}])
    open_channel(rig, 0, 0, 1, messages.FLAG_READ, "t")
    open_channel(rig, 0, 0, 2, messages.FLAG_READ, "u")
    open_channel(rig, 1, 0, 1, messages.FLAG_READ, "t")
    rig.from_worker(0, messages.ctrl(0), messages.RT_CLOSE, messages.encode_close(2))
    assert rig.link.subscriptions == {"t/a": 0}
    rig.from_worker(0, messages.ctrl(0), messages.RT_EXITED, orjson.dumps({"status": {"reason": "exited", "code": 0}}))
    assert rig.link.subscriptions == {"t/a": 0}  # b still reads it
    assert rig.link.on(f"{REALM}/proc/control/rt-0")[0]["data"]["status"] == {"reason": "exited", "code": 0, "error": None}
    rig.router.close_worker(1)
    assert rig.link.subscriptions == {}


def test_worker_messages_keepalive_log_profile(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    w = rig.workers[0]
    add_module(rig, 0, 2, "p", [])
    rig.from_worker(0, messages.ctrl(0), messages.RT_KEEPALIVE, orjson.dumps({"load": 1}))
    assert w.ka_fields == {"load": 1}
    with caplog.at_level(logging.INFO, logger="rt.n.echo0"):
        rig.from_worker(0, messages.ctrl(2), messages.RT_MODLOG, messages.encode_log(logging.INFO, "hi"))
    assert "[mod-p] hi" in caplog.text
    from common.profile import encode_profile

    rig.from_worker(0, messages.ctrl(2), messages.RT_PROFILE, encode_profile("deployed", b"\x01\x02"))
    assert (f"{REALM}/proc/profile/deployed/rt-0/p", b"\x01\x02", 1) in rig.link.published


def test_a_full_ring_drains_the_worker_while_waiting(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    """Regression (chaos fuzz, channel_open): writing into a full ring keeps the worker's own ring
    drained, so a worker that is itself blocked on us cannot deadlock the supervisor."""
    add_module(rig, 0, 0, "a", [{"path": "t", "mode": "r", "topic": "t/in"}])
    open_channel(rig, 0, 0, 1, messages.FLAG_READ, "t")
    w = rig.workers[0]
    assert w.ep is not None
    sent = 0
    for size in (4000, 100, 1):  # fill the supervisor -> worker ring to the last byte
        while True:
            try:
                w.ep.send(0, 1, b"x" * size, 0)
                sent += 1
            except RingFullError:
                break
    rig.ends[0].send(messages.ctrl(0), messages.RT_KEEPALIVE, orjson.dumps({"x": 1}))
    with caplog.at_level(logging.ERROR, logger="ch"):
        rig.router.from_mqtt("t/in", b"late")  # nobody drains the ring: lost after DATA_SEND_TIMEOUT
    assert w.ka_fields == {"x": 1}  # but what the worker said meanwhile was handled
    assert sent > 0 and "message for module 0 channel 1 lost" in caplog.text
