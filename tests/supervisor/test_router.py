"""The data path (supervisor/router.py) over real rings: channel open with grants and `$SL/`,
MQTT -> module, module -> MQTT and loopback, close, and what else a worker says."""
from __future__ import annotations

import logging

import orjson
import pytest

from ipc import RingFullError, messages
from supervisor.slots import ModuleRecord
from tests.supervisor.fakes import REALM, Rig

RW = messages.FLAG_READ | messages.FLAG_WRITE


def add_module(rig: Rig, slot: int, index: int, uuid: str, channels: list[dict[str, str]]) -> None:
    from common.schema import ModuleCreate
    from common.topics import parse_grants

    rig.workers[slot].modules.add(ModuleRecord(index, uuid, f"mod-{uuid}", ModuleCreate(), parse_grants(channels)))


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


def fill(rig: Rig, slot: int) -> int:
    """Fill the supervisor -> worker ring of `slot` to the last byte; returns how many records."""
    ep = rig.workers[slot].ep
    assert ep is not None
    sent = 0
    for size in (4000, 100, 1):
        while True:
            try:
                ep.send(0, 1, b"x" * size, 0)
                sent += 1
            except RingFullError:
                break
    return sent


def test_a_full_ring_holds_that_workers_messages_in_order_and_the_others_go_on(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    """Backpressure per worker (backlog.py): nothing waits in the loop, nothing is lost, order is kept."""
    for slot in (0, 1):
        add_module(rig, slot, 0, f"m{slot}", [{"path": "t", "mode": "r", "topic": "t/in"}])
        open_channel(rig, slot, 0, 1, messages.FLAG_READ, "t")
    filled = fill(rig, 0)
    w = rig.workers[0]
    with caplog.at_level(logging.INFO, logger="mgr"):
        for i in range(5):
            rig.router.from_mqtt("t/in", b"m%d" % i)
        rig.modules.control(w, f"{REALM}/proc/control/{w.uuid}", orjson.dumps(
            {"action": "create", "type": "req", "object_id": "c", "data": {"type": "module", "uuid": "late", "name": "late"}}))
        assert [p for _, _, p in rig.to_worker(1)] == [b"m0", b"m1", b"m2", b"m3", b"m4"]  # the other worker at once
        assert len(w.backlog) == 6 and rig.router.waiting == {0}
        assert caplog.text.count("its input ring is full") == 1  # one warning per episode
        rig.router.retry(1e9)  # the worker has read nothing: still held
        assert len(w.backlog) == 6
        got = rig.to_worker(0)  # the worker reads its ring...
        assert len(got) == filled
        rig.router.retry(2e9)  # ...and the next retry writes what waited, in order
        got = rig.to_worker(0)
    assert [p for _, h2, p in got if h2 == 1] == [b"m0", b"m1", b"m2", b"m3", b"m4"]
    assert got[-1][:2] == (messages.ctrl(1), messages.MGR_CREATE)  # the create stayed behind the data before it
    assert not w.backlog and not rig.router.waiting and "has room again" in caplog.text
    assert w.backlog.report() == {"episodes": 1, "waiting": 0, "waiting_bytes": 0, "dropped": 0}
    fill(rig, 0)  # a second episode right after: counted, not warned again (a burst does not flood the log)
    with caplog.at_level(logging.INFO, logger="mgr"):
        rig.router.from_mqtt("t/in", b"again")
    assert w.backlog.report()["episodes"] == 2 and caplog.text.count("its input ring is full") == 1


def test_a_worker_that_talks_is_retried_and_handled_while_its_ring_is_full(rig: Rig) -> None:
    """Regression (chaos fuzz, channel_open): the supervisor blocked on a full ring while the worker
    blocked on us. Now what the worker says is handled meanwhile, and its talking triggers a retry."""
    add_module(rig, 0, 0, "a", [{"path": "t", "mode": "r", "topic": "t/in"}])
    open_channel(rig, 0, 0, 1, messages.FLAG_READ, "t")
    fill(rig, 0)
    rig.router.from_mqtt("t/in", b"late")
    w = rig.workers[0]
    assert len(w.backlog) == 1
    rig.to_worker(0)  # it reads, then says something
    rig.from_worker(0, messages.ctrl(0), messages.RT_KEEPALIVE, orjson.dumps({"x": 1}))
    assert w.ka_fields == {"x": 1} and not w.backlog  # handled, and the drain wrote what waited
    assert [p for _, _, p in rig.to_worker(0)] == [b"late"]


def test_past_the_bound_channel_data_is_refused_and_counted_control_still_waits(
        rig: Rig, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    from supervisor import backlog

    monkeypatch.setattr(backlog, "LIMIT", 10)
    add_module(rig, 0, 0, "a", [{"path": "t", "mode": "r", "topic": "t/in"}])
    open_channel(rig, 0, 0, 1, messages.FLAG_READ, "t")
    fill(rig, 0)
    w = rig.workers[0]
    with caplog.at_level(logging.ERROR, logger="ch"):
        for _ in range(4):
            rig.router.from_mqtt("t/in", b"abcd")  # 2 x 4 bytes fit in 10
    assert len(w.backlog) == 2 and w.backlog.dropped == 2
    assert caplog.text.count("its channel messages are refused") == 1
    assert rig.router.send(w, messages.ctrl(0), messages.MGR_STOP, b"0123456789")  # control: held past the bound
    assert len(w.backlog) == 3
    rig.router.close_worker(0)  # the worker died: what waited goes with it
    assert not w.backlog and not rig.router.waiting
