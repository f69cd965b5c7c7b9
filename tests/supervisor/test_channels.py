"""The channel table: refcounted subscriptions, loopback that spares only the publishing module."""
from __future__ import annotations

import pytest

from supervisor.channels import ChannelTable
from common.topics import FLAG_QOS1, FLAG_QOS2, FLAG_READ, FLAG_WRITE, ChannelError

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


from hypothesis import example, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from common.topics import matches  # noqa: E402

_TOPICS = ["a", "a/b", "a/+", "a/#", "#", "+/b", "c/d"]
_CONCRETE = ["a", "a/b", "a/c", "c/d", "x/b"]
_op = st.tuples(st.sampled_from(["open", "close"]), st.integers(0, 1), st.integers(0, 2), st.integers(0, 2),
                st.sampled_from(_TOPICS), st.sampled_from([R, W, R | W, R | FLAG_QOS1, R | FLAG_QOS2]))


@settings(max_examples=300, deadline=None)
@given(st.lists(_op, max_size=40))
@example([("open", 0, 0, 0, "a", R | FLAG_QOS2), ("open", 0, 1, 0, "a", R), ("close", 0, 0, 0, "a", R)])
@example([("open", 0, 0, 0, "a", R | FLAG_QOS1), ("open", 0, 0, 0, "a", R)])
def test_table_matches_a_brute_force_model(ops: list[tuple[str, int, int, int, str, int]]) -> None:
    """Any sequence of opens/closes: the subscribe/unsubscribe changes, applied to a simulated broker,
    leave exactly the filters that have readers, at the highest QoS a reader asked for since the
    filter was subscribed (a QoS is never lowered: over-delivery is harmless, a resubscribe is not
    free); readers and loopback agree with a brute-force scan."""
    t = ChannelTable()
    model: dict[tuple[int, int, int], tuple[int, str]] = {}
    broker: dict[str, int] = {}
    sub_qos: dict[str, int] = {}
    for op, slot, index, fd, topic, flags in ops:
        try:
            if op == "open":
                ch = t.open(slot, index, fd, flags, topic)
                if (slot, index, fd) in model:  # reopening replaces: the old channel closes first
                    _, old_topic = model.pop((slot, index, fd))
                    if not any(f & R and tp == old_topic for f, tp in model.values()):
                        sub_qos.pop(old_topic, None)
                model[(slot, index, fd)] = (flags, topic)
            else:
                ch = t.close(slot, index, fd)
                model.pop((slot, index, fd))
        except ChannelError:
            assert (op == "close" and (slot, index, fd) not in model) or (flags & W and ("+" in topic or "#" in topic))
            continue
        if ch.unsubscribe:
            del broker[ch.unsubscribe]
        if ch.subscribe:
            broker[ch.subscribe[0]] = ch.subscribe[1]
        readers = {tp for f, tp in model.values() if f & R}
        for tp in list(sub_qos):
            if tp not in readers:
                del sub_qos[tp]
        if op == "open" and flags & R:
            q = 2 if flags & FLAG_QOS2 else 1 if flags & FLAG_QOS1 else 0
            sub_qos[topic] = max(sub_qos.get(topic, 0), q)
    assert broker == sub_qos == t.subscriptions()
    for concrete in _CONCRETE:
        brute = sorted(k for k, (f, tp) in model.items() if f & R and matches(tp, concrete))
        assert sorted(c.key for c in t.readers(concrete)) == brute
    for key, (flags, topic) in model.items():
        if flags & W:
            pub = t.writer(*key)
            lb = sorted(c.key for c in t.loopback(pub))
            assert lb == sorted(k for k, (f, tp) in model.items() if f & R and matches(tp, topic) and k[:2] != key[:2])


def test_route_is_writer_and_loopback_in_one_cached_answer() -> None:
    t = ChannelTable()
    t.open(0, 0, 0, W | FLAG_QOS1, "t/x")
    t.open(0, 0, 1, R, "t/#")  # the publisher's own module: spared
    t.open(1, 0, 0, R, "t/+")
    assert t.route(0, 0, 0) == ("t/x", 1, ((1, 0, 0),))
    assert t.route(0, 0, 0) is t.route(0, 0, 0)  # cached
    t.open(1, 1, 2, R, "t/x")  # a new reader: the cached route is dropped
    assert sorted(t.route(0, 0, 0)[2]) == [(1, 0, 0), (1, 1, 2)]
    t.close_module(1, 0)
    assert t.route(0, 0, 0)[2] == ((1, 1, 2),)
    with pytest.raises(ChannelError, match="read-only"):
        t.route(0, 0, 1)
    with pytest.raises(ChannelError, match="no such channel"):
        t.route(0, 0, 9)
