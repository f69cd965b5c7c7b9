"""The channel table: refcounted subscriptions, loopback that spares only the publishing module."""
from __future__ import annotations

import pytest

from supervisor.channels import ChannelTable
from supervisor.topics import FLAG_QOS1, FLAG_QOS2, FLAG_READ, FLAG_WRITE, ChannelError

R, W = FLAG_READ, FLAG_WRITE


def test_topic_subscribed_once_and_unsubscribed_with_last_reader() -> None:
    t = ChannelTable()
    assert t.open(0, 0, 1, R, "a/b").subscribe == ("a/b", 0)
    assert t.open(0, 1, 1, R, "a/b").subscribe is None
    assert t.open(1, 0, 3, R, "a/b").subscribe is None
    assert t.open(1, 0, 4, W, "a/b").subscribe is None  # writers do not subscribe
    assert t.close(0, 0, 1).unsubscribe is None
    assert t.close(1, 0, 3).unsubscribe is None
    assert t.close(0, 1, 1).unsubscribe == "a/b"
    assert t.subscriptions() == {}


def test_higher_qos_reader_resubscribes() -> None:
    t = ChannelTable()
    t.open(0, 0, 0, R, "x")
    assert t.open(0, 1, 0, R | FLAG_QOS2, "x").subscribe == ("x", 2)
    assert t.open(0, 2, 0, R | FLAG_QOS1, "x").subscribe is None
    assert t.subscriptions() == {"x": 2}


def test_loopback_excludes_only_the_publishing_module() -> None:
    t = ChannelTable()
    t.open(0, 0, 0, W, "t/x")  # publisher: worker 0, module 0
    t.open(0, 0, 1, R, "t/x")  # same module reads it: must not get its own message
    t.open(0, 1, 0, R, "t/#")  # other module, same runtime: gets it (the seed skipped it)
    t.open(1, 0, 0, R, "t/+")  # other runtime, same index: gets it
    t.open(1, 1, 0, R, "u/+")  # no match
    pub = t.writer(0, 0, 0)
    got = sorted(c.key for c in t.loopback(pub))
    assert got == [(0, 1, 0), (1, 0, 0)]
    assert sorted(c.key for c in t.readers("t/x")) == [(0, 0, 1), (0, 1, 0), (1, 0, 0)]


def test_cache_invalidated_on_open_and_close() -> None:
    t = ChannelTable()
    t.open(0, 0, 0, R, "a/+")
    assert len(t.readers("a/b")) == 1
    t.open(0, 1, 0, R, "a/b")
    assert len(t.readers("a/b")) == 2
    t.close_module(0, 0)
    assert [c.key for c in t.readers("a/b")] == [(0, 1, 0)]


def test_writer_errors() -> None:
    t = ChannelTable()
    t.open(0, 0, 0, R, "a")
    with pytest.raises(ChannelError, match="read-only"):
        t.writer(0, 0, 0)
    with pytest.raises(ChannelError, match="no such channel"):
        t.writer(0, 0, 9)
    with pytest.raises(ChannelError, match="wildcard"):
        t.open(0, 0, 1, W, "a/#")


def test_close_worker_closes_everything_of_that_worker() -> None:
    t = ChannelTable()
    t.open(0, 0, 0, R, "a")
    t.open(0, 5, 1, R, "b")
    t.open(1, 0, 0, R, "a")
    unsubs = [c.unsubscribe for c in t.close_worker(0)]
    assert unsubs.count("b") == 1 and "a" not in unsubs
    assert t.subscriptions() == {"a": 0}
    assert len(t) == 1


def test_reopen_same_fd_replaces_channel() -> None:
    t = ChannelTable()
    t.open(0, 0, 0, R, "a")
    ch = t.open(0, 0, 0, R, "b")
    assert ch.unsubscribe == "a" and ch.subscribe == ("b", 0)
    ch = t.open(0, 0, 0, R, "b")  # same again: nothing to do at the broker
    assert ch.unsubscribe is None
    assert t.subscriptions() == {"b": 0}
