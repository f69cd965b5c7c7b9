"""Ring arithmetic on a private buffer: order across wrap-arounds, padding, full, oversized; every
test for each pair of implementations (producer, consumer: pure Python or the C core)."""
from __future__ import annotations

import mmap

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ipc import BadMessage, ClosedError, MessageTooLarge, RingFullError
from ipc.ring import HEADER, Ring


def make(capacity: int, pair: tuple[str, str] = ("python", "python")) -> tuple[Ring, Ring]:
    mm = mmap.mmap(-1, HEADER + capacity)
    buf = memoryview(mm)
    return Ring(buf, "p", init=True, capacity=capacity, impl=pair[0]), Ring(buf, "c", raw=mm, impl=pair[1])


def tail_of(r: Ring) -> int:
    """The committed tail (the shared word; a C-backed Ring keeps its own copy in the core)."""
    return int(r._q[16])


def test_order_across_many_wraparounds(pair: tuple[str, str]) -> None:
    prod, cons = make(2048, pair)
    got = []
    for i in range(5000):
        prod.write(0x80 | (i % 128), i % 256, i.to_bytes(4, "little") * (i % 40))
        if i % 3 == 0:
            got.extend(cons.read())
    got.extend(cons.read())
    assert len(got) == 5000
    for i, msg in enumerate(got):
        assert (msg.h1, msg.h2, msg.payload) == (0x80 | (i % 128), i % 256, i.to_bytes(4, "little") * (i % 40))
    assert tail_of(prod) > 2048 * 50  # wrapped many times


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.binary(max_size=120), st.booleans()), max_size=200))
def test_any_sequence_of_writes_and_reads_is_fifo(pair: tuple[str, str], ops: list[tuple[bytes, bool]]) -> None:
    prod, cons = make(256, pair)
    sent: list[bytes] = []
    got: list[bytes] = []
    for payload, read_now in ops:
        if prod.capacity - prod.used() < 8 + len(payload) + 128:
            got.extend(m.payload for m in cons.read())
        prod.write(0, 0, payload, timeout=0)
        sent.append(payload)
        if read_now:
            got.extend(m.payload for m in cons.read())
    got.extend(m.payload for m in cons.read())
    assert got == sent


def test_full_ring_times_out_with_clear_error_and_loses_nothing(pair: tuple[str, str]) -> None:
    prod, cons = make(256, pair)
    n = 0
    with pytest.raises(RingFullError, match="full for 0.05s"):
        while True:
            prod.write(0, 1, b"x" * 50, timeout=0.05)
            n += 1
    assert n > 0
    msgs = cons.read()
    assert len(msgs) == n  # every accepted message is there; the refused one was never half-sent
    prod.write(0, 1, b"after", timeout=0.05)
    assert cons.read()[0].payload == b"after"


def test_oversized_message_refused(pair: tuple[str, str]) -> None:
    prod, _ = make(1024, pair)
    prod.write(0, 0, b"x" * prod.max_payload)
    with pytest.raises(MessageTooLarge, match="larger than half the ring"):
        prod.write(0, 0, b"x" * (prod.max_payload + 1))


def test_sleep_flag_asks_for_one_doorbell_per_sleep(pair: tuple[str, str]) -> None:
    prod, cons = make(256, pair)
    assert prod.write(0, 0, b"a") is False  # consumer awake: no doorbell
    cons.read()
    assert cons.mark_sleeping() is False
    assert prod.write(0, 0, b"b") is True  # first record while asleep: ring
    assert prod.write(0, 0, b"c") is False  # same sleep episode: no second bell
    cons.mark_awake()
    assert [m.payload for m in cons.read()] == [b"b", b"c"]
    assert cons.mark_sleeping() is False
    assert prod.write(0, 0, b"d") is True  # a new episode rings again


def test_mark_sleeping_sees_pending_records(pair: tuple[str, str]) -> None:
    prod, cons = make(256, pair)
    prod.write(0, 0, b"x")
    assert cons.mark_sleeping() is True


def test_uncommitted_record_is_invisible(pair: tuple[str, str]) -> None:
    """A producer killed mid-write leaves payload bytes but no tail: nothing is read."""
    prod, cons = make(256, pair)
    prod.write(0, 0, b"one")
    off = tail_of(prod) % prod.capacity
    half = b"\x0c\x00\x00\x00\x80\x01half-written"  # header + payload, but no tail store
    prod.data[off : off + len(half)] = half
    assert [m.payload for m in cons.read()] == [b"one"]
    assert cons.read() == []


def test_corrupt_indexes_reported(pair: tuple[str, str]) -> None:
    prod, cons = make(256, pair)
    prod._q[16] = 10_000  # tail far beyond capacity
    with pytest.raises(BadMessage, match="corrupt"):
        cons.read()


def test_attach_to_non_ring_refused(impl: str) -> None:
    buf = memoryview(mmap.mmap(-1, HEADER + 64))
    with pytest.raises(BadMessage, match="not a ring"):
        Ring(buf, "x", impl=impl)


def test_a_producer_waiting_for_room_lets_other_threads_run(pair: tuple[str, str]) -> None:
    """The room wait sleeps without the GIL (C: nanosleep outside it): a consumer thread of the
    same process frees the space and the blocked write goes through."""
    import threading
    import time

    prod, cons = make(256, pair)
    while prod.capacity - prod.used() >= 64:
        prod.write(0, 1, b"y" * 50, timeout=0)
    got: list[bytes] = []

    def drain_later() -> None:
        time.sleep(0.05)
        got.extend(m.payload for m in cons.read())

    t = threading.Thread(target=drain_later)
    t.start()
    t0 = time.monotonic()
    prod.write(0, 1, b"z" * 50, timeout=5)  # waits for drain_later
    waited = time.monotonic() - t0
    t.join()
    assert got and waited >= 0.03
    assert [m.payload for m in cons.read()] == [b"z" * 50]


def test_sender_writes_rings_once_per_sleep_and_says_rung_only_when_queued(impl: str) -> None:
    prod, cons = make(256, (impl, "python"))
    bells: list[bytes] = []
    queued = [True]
    send = prod.sender(lambda b: bells.append(b) or queued[0], b"\x07", "endpoint X is closed")
    send(0, 1, b"a")  # consumer awake: no doorbell
    assert bells == [] and [m.payload for m in cons.read()] == [b"a"]
    assert cons.mark_sleeping() is False
    send(0, 2, b"b", 1.0)
    send(h1=0, h2=3, payload=b"c", timeout=1.0)  # same episode: no second doorbell
    assert bells == [b"\x07"]
    assert cons.mark_awake() is True  # rung() was stored: the doorbell is in the queue
    assert [(m.h2, m.payload) for m in cons.read()] == [(2, b"b"), (3, b"c")]
    queued[0] = False  # a full doorbell queue: not rung (doorbells already pending)
    assert cons.mark_sleeping() is False
    send(0, 4, b"d")
    assert bells == [b"\x07"] * 2 and cons.mark_awake() is False
    prod.close()
    with pytest.raises(ClosedError, match="endpoint X is closed"):
        send(0, 5, b"e")
