"""The C ring core (ipc/_ringc.c) against the pure-Python ring: mixed pairs over real shared memory
with a real forked peer, the doorbell handshake across processes, corrupt and hostile shared
memory (the same BadMessage errors from both, never a crash), and how the implementation is chosen."""
from __future__ import annotations

import mmap
import os
import struct
import subprocess
import sys
import time
from typing import Any, Callable, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ipc import BadMessage, ClosedError, ring
from ipc.backends import get_backend
from ipc.ring import HEADER, PAD, Ring, ring_size
from tests.ipc.conftest import need_impl
from tests.ipc.test_endpoint import fork_child as fork
from tests.ipc.test_endpoint import wait_child as reap

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
W_HEAD, W_TAIL, W_RUNG, W_SLEEP = 8, 16, 20, 24
MIXED = [("c", "python"), ("python", "c")]


@pytest.fixture(params=MIXED, ids=["c-py", "py-c"])
def mixed(request: pytest.FixtureRequest) -> tuple[str, str]:
    for impl in request.param:
        need_impl(impl)
    return tuple(request.param)  # type: ignore[return-value]


@pytest.fixture
def shm() -> Iterator[Callable[[int], Any]]:
    """POSIX shared memory blocks of a ring; unlinked and closed after the test."""
    backend = get_backend("posix")
    made: list[tuple[str, Any]] = []

    def make(capacity: int) -> Any:
        name = f"/sl.{os.getpid()}.ringtest.{len(made)}"
        block = backend.create_shm(name, ring_size(capacity))
        made.append((name, block))
        return block

    try:
        yield make
    finally:
        for name, block in made:
            block.close()
            backend.unlink_shm(name)


def wait_for(cond: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")


def consume(cons: Ring, expected: list[tuple[int, int, bytes]], plan: list[int | None]) -> None:
    """Read `expected` following `plan` (a read limit, None: everything, -1: sleep on the
    doorbell words), checking order, contents and that no wake-up is lost."""
    got: list[tuple[int, int, bytes]] = []
    plan = plan + [None]  # a full read in every round: a plan of only read(0) still ends
    i = 0
    while len(got) < len(expected):
        step = plan[i % len(plan)]
        i += 1
        if step == -1:
            if not cons.mark_sleeping():
                # asleep and nothing there: the producer's next commit must ask for a doorbell (Dekker)
                wait_for(cons.pending, "a record after mark_sleeping")
                seq = int(cons._q[W_SLEEP])
                wait_for(lambda: int(cons._q[W_RUNG]) == seq, f"the doorbell of sleep episode {seq} (lost wake-up)")
                assert cons.mark_awake() is True
            else:
                cons.mark_awake()
            continue
        got.extend((m.h1, m.h2, bytes(m.payload)) for m in cons.read(step))
        assert got == expected[: len(got)], f"diverged at record {len(got)}"


def produce(prod: Ring, records: list[tuple[int, int, bytes]]) -> None:
    for h1, h2, payload in records:
        if prod.write(h1, h2, payload, 20.0):
            prod.rung()  # (the endpoint sends the doorbell first)


records_st = st.lists(st.tuples(st.integers(0, 255), st.integers(0, 255), st.binary(max_size=200)), min_size=1, max_size=120)
plan_st = st.lists(st.one_of(st.none(), st.integers(0, 5), st.just(-1)), max_size=12)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=records_st, plan=plan_st, capacity=st.sampled_from([512, 1024, 4096]), parent_produces=st.booleans())
def test_mixed_pairs_across_a_fork_deliver_every_record_in_order(
        mixed: tuple[str, str], shm: Callable[[int], Any], records: list[tuple[int, int, bytes]],
        plan: list[int | None], capacity: int, parent_produces: bool) -> None:
    """Producer of one implementation, consumer of the other, in two processes over POSIX shm:
    wrap-arounds, padding, full-ring waits, limited reads and the sleep/doorbell handshake."""
    prod_impl, cons_impl = mixed
    block = shm(capacity)
    Ring(block.buf, "init", init=True, capacity=capacity, impl="python").close()

    def producer() -> None:
        prod = Ring(block.buf, "p", impl=prod_impl)
        produce(prod, records)
        prod.close()

    def consumer() -> None:
        cons = Ring(block.buf, "c", raw=block.raw, impl=cons_impl)
        consume(cons, records, plan)
        assert cons.read() == []
        cons.close()

    pid = fork(consumer if parent_produces else producer)
    try:
        (producer if parent_produces else consumer)()
    finally:
        code = reap(pid)
    assert code == 0, "the forked peer failed (its traceback is above)"


def test_a_million_records_c_producer_python_consumer_and_back(shm: Callable[[int], Any]) -> None:
    need_impl("c")
    for prod_impl, cons_impl in MIXED:
        block = shm(1 << 16)
        Ring(block.buf, "init", init=True, capacity=1 << 16, impl="python").close()
        n = 200_000

        def consumer() -> None:
            cons = Ring(block.buf, "c", raw=block.raw, impl=cons_impl)
            count = total = 0
            while count < n:
                for m in cons.read():
                    assert int.from_bytes(m.payload[:4], "little") == count
                    total += len(m.payload)
                    count += 1
            assert total == sum(4 + i % 61 for i in range(n))
            cons.close()

        pid = fork(consumer)
        prod = Ring(block.buf, "p", impl=prod_impl)
        for i in range(n):
            prod.write(0, 1, i.to_bytes(4, "little") + b"x" * (i % 61), 20.0)
        prod.close()
        assert reap(pid) == 0, f"{prod_impl} -> {cons_impl}: the consumer failed"


# ------------------------------------------------------------ corrupt and hostile shared memory

def pair_on(capacity: int, cons_impl: str) -> tuple[mmap.mmap, Ring, Ring]:
    mm = mmap.mmap(-1, HEADER + capacity)
    buf = memoryview(mm)
    return mm, Ring(buf, "p", init=True, capacity=capacity, impl="python"), Ring(buf, "c", raw=mm, impl=cons_impl)


def set_word(mm: mmap.mmap, index: int, value: int) -> None:
    mm[index * 8 : index * 8 + 8] = value.to_bytes(8, sys.byteorder)


def set_len(mm: mmap.mmap, off: int, n: int) -> None:
    mm[HEADER + off : HEADER + off + 4] = n.to_bytes(4, sys.byteorder)


@pytest.mark.parametrize("raw", [True, False], ids=["mmap", "buffer"])
@pytest.mark.parametrize("case, match", [
    ("tail_beyond_capacity", "corrupt indexes"),
    ("tail_below_head", "corrupt indexes"),
    ("unaligned_head", "corrupt indexes"),
    ("huge_length", "crosses the end of the ring or the tail"),
    ("length_past_tail", "crosses the end of the ring or the tail"),
    ("padding_past_tail", "padding at 0 crosses the tail"),
])
def test_corrupt_shared_memory_gives_the_same_bad_message(impl: str, raw: bool, case: str, match: str) -> None:
    mm, prod, cons = pair_on(1024, impl)
    if not raw:  # the consumer over a plain buffer (as on the sysv backend): the other read path
        cons = Ring(memoryview(mm), "c", impl=impl)
    prod.write(0, 1, b"hello")
    if case == "tail_beyond_capacity":
        set_word(mm, W_TAIL, 10_000)
    elif case == "tail_below_head":
        cons.read()
        set_word(mm, W_TAIL, 8)
    elif case == "unaligned_head":
        set_word(mm, W_HEAD, 3)
        set_word(mm, W_TAIL, 40)
        cons = Ring(memoryview(mm), "c", raw=mm if raw else None, impl=impl)  # attaches at head 3
    elif case == "huge_length":
        set_len(mm, 0, 0x7FFFFFFF)
    elif case == "length_past_tail":
        set_len(mm, 0, 11)  # 6 + 11 -> 24 bytes, the tail is at 16
    elif case == "padding_past_tail":
        set_len(mm, 0, PAD)
    with pytest.raises(BadMessage, match=match):
        cons.read()
    with pytest.raises(BadMessage, match=match):
        cons.read(3)  # the limited read too


@pytest.mark.parametrize("cap, match", [(10**9, "header says capacity"), (1020, "header says capacity"), (16, "header says capacity")])
def test_corrupt_capacity_refused_at_attach(impl: str, cap: int, match: str) -> None:
    mm, _, _ = pair_on(1024, "python")
    set_word(mm, 1, cap)
    with pytest.raises(BadMessage, match=match):
        Ring(memoryview(mm), "c", impl=impl)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(min_size=512, max_size=512), head=st.integers(0, 2**64 - 1), tail=st.integers(0, 2**64 - 1),
       near=st.booleans(), limit=st.one_of(st.none(), st.integers(0, 4)),
       lens=st.lists(st.one_of(st.integers(0, 40), st.integers(0, 120), st.just(PAD), st.integers(0, 2**32 - 1)), max_size=8))
def test_hostile_peer_both_implementations_agree_and_never_crash(
        data: bytes, head: int, tail: int, near: bool, limit: int | None, lens: list[int]) -> None:
    """Random bytes in the data area and random indexes: both implementations return the same
    records or raise the same BadMessage (a crash of the C core would kill pytest)."""
    need_impl("c")
    buf = bytearray(data)
    if near:  # indexes close together, so records get parsed rather than refused at once
        head &= 0xFFFF_FFF8
        pos, ends = head % 512, [0]
        for n in lens:  # plausible record lengths where the consumer will look
            buf[pos : pos + 4] = n.to_bytes(4, sys.byteorder)
            step = (n + 13) & ~7 if n < 512 else 8
            ends.append(ends[-1] + (512 - pos if n == PAD else step))
            pos = (pos + step) % 512 if n != PAD else 0
        # the tail on a record boundary (mostly), or anywhere near
        tail = head + (ends[tail % len(ends)] if tail % 4 else tail % 600)
    results = []
    for impl in ("python", "c"):
        mm = mmap.mmap(-1, HEADER + 512)
        Ring(memoryview(mm), "p", init=True, capacity=512, impl="python").close()
        mm[HEADER:] = bytes(buf)
        set_word(mm, W_HEAD, head)
        set_word(mm, W_TAIL, tail)
        cons = Ring(memoryview(mm), "c", raw=mm, impl=impl)
        try:
            results.append(("ok", [tuple(m) for m in cons.read(limit)], int.from_bytes(mm[64:72], sys.byteorder)))
        except BadMessage as e:
            results.append(("bad", str(e), 0))
        cons.close()
    assert results[0] == results[1]
    parsed.append(results[0][0] == "ok" and bool(results[0][1]))


parsed: list[bool] = []


def test_hostile_peer_test_parsed_records_too() -> None:
    """(the property test above is not only refusals: some examples have records to return). It runs
    the property test's examples itself, so it holds alone and in any order."""
    parsed.clear()
    test_hostile_peer_both_implementations_agree_and_never_crash()
    assert sum(parsed) >= 3, f"{sum(parsed)} of {len(parsed)} examples returned records"


def test_closed_ring_refuses_every_call(impl: str) -> None:
    mm = mmap.mmap(-1, HEADER + 256)
    prod = Ring(memoryview(mm), "p", init=True, capacity=256, impl=impl)
    cons = Ring(memoryview(mm), "c", raw=mm, impl=impl)
    prod.close()
    cons.close()
    prod.close()  # idempotent
    with pytest.raises(ClosedError, match="p is closed"):
        prod.write(0, 0, b"x")
    with pytest.raises(ClosedError, match="c is closed"):
        cons.read()


def test_payload_types_and_bad_arguments(impl: str) -> None:
    mm = mmap.mmap(-1, HEADER + 1024)
    prod = Ring(memoryview(mm), "p", init=True, capacity=1024, impl=impl)
    cons = Ring(memoryview(mm), "c", raw=mm, impl=impl)
    prod.write(1, 2, bytearray(b"ba"))
    prod.write(3, 4, memoryview(b"xmvx")[1:3])
    prod.write(5, 6)
    prod.write(h1=7, h2=8, payload=b"kw", timeout=1)
    msgs = cons.read()
    assert [tuple(m) for m in msgs] == [(1, 2, b"ba"), (3, 4, b"mv"), (5, 6, b""), (7, 8, b"kw")]
    assert all(type(m.payload) is bytes and m.is_control is False for m in msgs)
    with pytest.raises((ValueError, struct.error)):  # C: ValueError "h1 must be 0..255"; Python: struct.error
        prod.write(256, 0, b"x")
    with pytest.raises(TypeError):
        prod.write(0, 0, "text")  # type: ignore[arg-type]
    assert cons.read() == []  # nothing half-written by the refused calls


# ------------------------------------------------------------ choosing the implementation

def run_py(code: str, env_value: str | None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop(ring.ENV_IMPL, None)
    if env_value is not None:
        env[ring.ENV_IMPL] = env_value
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


PROBE = ("import logging, mmap; logging.basicConfig(level=logging.INFO, format='%(name)s %(message)s');"
         "from ipc.ring import Ring, HEADER; r = Ring(memoryview(mmap.mmap(-1, HEADER + 64)), 'x', init=True, capacity=64);"
         "Ring(memoryview(mmap.mmap(-1, HEADER + 64)), 'y', init=True, capacity=64); print(r.impl)")


def test_env_selects_the_implementation_and_one_log_line_says_which() -> None:
    need_impl("c")
    auto = run_py(PROBE, None)
    assert auto.stdout.strip() == "c" and auto.stderr.count("mgr ring: C hot path (ipc/_ringc)") == 1, auto.stderr
    py = run_py(PROBE, "python")
    assert py.stdout.strip() == "python" and py.stderr.count("mgr ring: pure Python (SILVERLINE_RING=python") == 1, py.stderr
    bad = run_py(PROBE, "fortran")
    assert bad.returncode != 0 and "SILVERLINE_RING=fortran: ring implementation must be c, python or auto" in bad.stderr


def test_set_default_impl() -> None:
    need_impl("c")
    before = ring.default_impl()
    try:
        assert ring.set_default_impl("python") == "python"
        assert Ring(memoryview(mmap.mmap(-1, HEADER + 64)), "x", init=True, capacity=64).impl == "python"
        assert ring.set_default_impl(None) == "c"
        with pytest.raises(ValueError, match="must be c, python or auto"):
            ring.set_default_impl("go")
    finally:
        ring.set_default_impl(before)
