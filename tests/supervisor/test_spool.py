"""The node's result spool (supervisor/spool.py) on real files: durable before publish, forgotten on
ack, read back after a restart, a torn tail cut, compaction, the bound, resends with backoff."""
from __future__ import annotations

import os

import pytest

from common.results import decode_ack, encode_ack, profile_runtime, result_id
from supervisor.spool import HEAD, Spool

T = "realm/proc/profile/test/RT/MOD"


def spool(tmp_path, **kw):  # type: ignore[no-untyped-def]
    s = Spool(str(tmp_path / "n.spool"), **kw)
    s.open()
    return s


def test_results_survive_a_restart_until_acknowledged(tmp_path) -> None:  # type: ignore[no-untyped-def]
    s = spool(tmp_path)
    for i in range(5):
        assert s.add(f"id{i}", T, b"p%d" % i)
    assert s.commit(1.0) == [(T, b"p%d" % i) for i in range(5)]
    assert s.ack(["id1", "id3", "nosuch"]) == 2
    s.close()  # a kill: nothing else written
    s2 = spool(tmp_path)
    assert list(s2.held) == ["id0", "id2", "id4"]
    assert s2.resend_all(10.0) == 3
    assert s2.due(10.0, 2) == [(T, b"p0"), (T, b"p2")]  # the oldest first, `limit` at a time
    assert s2.due(10.0, 10) == [(T, b"p4")]
    assert s2.due(10.0, 10) == []
    assert s2.ack(["id0", "id2", "id4"]) == 3
    assert os.path.getsize(s2.path) == 0  # nothing held: truncated
    s2.close()


def test_resend_backs_off(tmp_path) -> None:  # type: ignore[no-untyped-def]
    s = spool(tmp_path, resend_first=10.0, resend_max=25.0)
    s.add("a", T, b"x")
    s.commit(0.0)
    assert s.due(9.9, 10) == []
    assert s.next_due() == 10.0
    assert s.due(10.0, 10) == [(T, b"x")]  # then 20 s, then 25 s (the cap)
    assert s.next_due() == 30.0
    assert s.due(30.0, 10) == [(T, b"x")]
    assert s.next_due() == 55.0
    s.close()


def test_a_torn_tail_is_cut(tmp_path) -> None:  # type: ignore[no-untyped-def]
    s = spool(tmp_path)
    s.add("a", T, b"one")
    s.add("b", T, b"two")
    s.commit(0.0)
    s.close()
    size = os.path.getsize(s.path)
    with open(s.path, "r+b") as f:
        f.truncate(size - 2)  # the second record half-written
    s2 = spool(tmp_path)
    assert list(s2.held) == ["a"]
    assert os.path.getsize(s2.path) < size - 2
    assert s2.add("c", T, b"three")
    s2.commit(0.0)
    s2.close()
    assert list(spool(tmp_path).held) == ["a", "c"]


def test_a_corrupt_record_ends_the_log(tmp_path) -> None:  # type: ignore[no-untyped-def]
    s = spool(tmp_path)
    s.add("a", T, b"one")
    s.add("b", T, b"two")
    s.commit(0.0)
    s.close()
    with open(s.path, "r+b") as f:
        data = bytearray(f.read())
        data[-1] ^= 0xFF  # the CRC no longer matches
        f.seek(0)
        f.write(data)
    assert list(spool(tmp_path).held) == ["a"]


def test_compaction_keeps_what_is_held(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr("supervisor.spool.COMPACT_MIN", 4096)
    s = spool(tmp_path)
    big = os.urandom(1000)
    for i in range(20):
        s.add(f"r{i}", T, big + bytes([i]))
    s.commit(0.0)
    before = os.path.getsize(s.path)
    s.ack([f"r{i}" for i in range(19)])
    assert os.path.getsize(s.path) < before // 4
    assert s.resend_all(1.0) == 1 and s.due(1.0, 5) == [(T, big + bytes([19]))]
    s.add("new", T, b"after")
    s.commit(2.0)
    s.close()
    assert list(spool(tmp_path).held) == ["r19", "new"]
    assert not os.path.exists(s.path + ".tmp")


def test_the_bound_publishes_without_spooling(tmp_path) -> None:  # type: ignore[no-untyped-def]
    s = spool(tmp_path, max_bytes=10)
    assert s.add("a", T, b"12345678")
    assert not s.add("b", T, b"123")  # over the bound: the caller publishes it unspooled
    assert s.overflow == 1
    assert not s.add("a", T, b"12345678")  # already held: not twice
    s.commit(0.0)
    s.ack(["a"])
    assert s.add("b", T, b"123")
    s.close()


def test_an_ack_of_an_uncommitted_result_is_ignored(tmp_path) -> None:  # type: ignore[no-untyped-def]
    s = spool(tmp_path)
    s.add("a", T, b"x")
    assert s.ack(["a"]) == 0  # not published yet: nobody can have stored it
    assert s.commit(0.0) == [(T, b"x")]
    assert s.ack(["a"]) == 1
    s.close()


def test_result_ids_and_acks() -> None:
    assert result_id(T, b'{"id": "r-1", "v": 3}') == "r-1"
    a, b = result_id(T, b"\x01\x02"), result_id(T + "x", b"\x01\x02")
    assert a.startswith("sha256:") and a != b and a == result_id(T, b"\x01\x02")
    assert result_id(T, b'{"id": 5}').startswith("sha256:")
    assert decode_ack(encode_ack("col", ["a", "b"])) == ("col", ["a", "b"])
    assert decode_ack(b'{"ids": "a"}') is None and decode_ack(b"[]") is None and decode_ack(b"{") is None
    assert profile_runtime("realm", T) == "RT" and profile_runtime("realm", "realm/proc/profile/x") is None


@pytest.mark.parametrize("n", [1, HEAD.size])
def test_a_spool_of_garbage_is_read_as_empty(tmp_path, n) -> None:  # type: ignore[no-untyped-def]
    with open(tmp_path / "n.spool", "wb") as f:
        f.write(b"\x00" * n)
    s = spool(tmp_path)
    assert not s.held and os.path.getsize(s.path) == 0
    s.close()


class _Link:
    """Stands in for the MQTT link (tests/supervisor covers the real one): records what is published."""

    connected = True

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, int]] = []

    def publish(self, topic: str, payload: bytes, qos: int = 0) -> None:
        self.sent.append((topic, payload, qos))


def test_a_profile_leaves_before_what_the_node_publishes_after_it(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The spool's group commit must not reorder: a module's profile goes out before its `exited`
    (the orchestrator counts a cell's profile while its module runs), and only once durable."""
    from common.wire import Topics
    from supervisor.delivery import Delivery
    from supervisor.outbox import Outbox

    out = Outbox(Topics("realm"), node_name="n", manager_uuid="m")
    link = _Link()
    out.link = link  # type: ignore[assignment]
    d = Delivery(Spool(str(tmp_path / "n.spool")), out, "realm", ["RT"])
    d.open()
    d.offer(T, b'{"id": "r1"}')
    assert link.sent == []  # not durable yet: not published
    out.publish("realm/proc/control/RT", b"exited", 1)
    assert [t for t, _p, _q in link.sent] == [T, "realm/proc/control/RT"]
    s2 = Spool(str(tmp_path / "n.spool"))
    assert s2.open(readonly=True) == 1  # on disk before it was published
    s2.close()
    d.flush(0.0)
    assert len(link.sent) == 2  # nothing twice
    assert d.status_text() == "1 results spooled for a collector (12 bytes)"  # the node's systemd STATUS says so
    assert d.ack("realm/proc/stored/RT", b'{"collector": "c", "ids": ["r1"]}') and d.report()["held"] == 0
    assert d.status_text() == ""
    d.close()


def test_a_spool_that_cannot_be_opened_leaves_the_node_running_without_it(tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    from common.wire import Topics
    from supervisor.delivery import Delivery
    from supervisor.outbox import Outbox

    (tmp_path / "n.spool").mkdir()  # a directory where the file should be: open fails (EISDIR)
    out = Outbox(Topics("realm"), node_name="n", manager_uuid="m")
    link = _Link()
    out.link = link  # type: ignore[assignment]
    d = Delivery(Spool(str(tmp_path / "n.spool")), out, "realm", ["RT"])
    d.open()
    assert d.spool is None and "cannot be opened" in caplog.text and "runs without it" in caplog.text
    d.offer(T, b"x")
    assert link.sent == [(T, b"x", 1)]  # published at once
    d.close()
