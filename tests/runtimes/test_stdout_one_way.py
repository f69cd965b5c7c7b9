"""Module stdout reaches `proc/stdio/{uuid}` one way on every engine: whole lines, a partial line
after a bounded delay, nothing after the exited message (runtimes/wasm/stdio.py). Unit tests of
the buffer, then real modules on a real node with the wasmtime and wasmer engines."""
from __future__ import annotations

import threading
import time
from typing import Iterator

import pytest

from common.wire import new_uuid
from runtimes.wasm.stdio import LineBuffer
from silverline import Client
from testbed.broker import Mosquitto
from testbed.node import NodeProcess
from testbed.orchestrator import OrchestratorProc
from testbed.wait import wait_until


def collect() -> tuple[LineBuffer, list[bytes]]:
    got: list[bytes] = []
    return LineBuffer(got.append, delay=0.05), got


def test_pieces_of_one_line_go_out_as_one_message() -> None:
    buf, got = collect()
    buf.write(b"42")
    buf.write(b"\n")  # wasmtime: the digits and the newline are two fd_write iovecs
    buf.write(b"a\nb\nc")
    assert got == [b"42\n", b"a\nb\n"]
    buf.flush()
    assert got == [b"42\n", b"a\nb\n", b"c"]


def test_a_partial_line_goes_out_after_the_delay() -> None:
    buf, got = collect()
    t0 = time.monotonic()
    buf.write(b"prompt> ")
    wait_until(lambda: got == [b"prompt> "], 2, "partial line flushed")
    assert time.monotonic() - t0 < 1.0
    buf.write(b"rest\n")
    assert got == [b"prompt> ", b"rest\n"]


def test_a_long_partial_line_does_not_wait() -> None:
    got: list[bytes] = []
    buf = LineBuffer(got.append, delay=10, max_bytes=16)
    buf.write(b"x" * 20)
    assert got == [b"x" * 20]


def test_stdout_and_stderr_to_one_channel_keep_whole_lines() -> None:
    """Two streams (the wasmer pumps, one thread each), one buffer each, one channel."""
    got: list[bytes] = []
    lock = threading.Lock()

    def emit(data: bytes) -> None:
        with lock:
            got.append(data)

    bufs = {b"out": LineBuffer(emit), b"err": LineBuffer(emit)}

    def writer(tag: bytes) -> None:
        for i in range(200):
            bufs[tag].write(tag + b"%d" % i)
            bufs[tag].write(b"\n")

    ts = [threading.Thread(target=writer, args=(t,)) for t in bufs]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for b in bufs.values():
        b.flush()
    lines = b"".join(got).split(b"\n")[:-1]
    assert len(lines) == 400 and all(ln.startswith((b"out", b"err")) and ln[3:].isdigit() for ln in lines), lines[:5]


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[OrchestratorProc, NodeProcess]]:
    with Mosquitto() as broker, OrchestratorProc(broker.port, str(tmp_path_factory.mktemp("orch")), ka_interval=2.0) as orch, \
            NodeProcess(broker.port, name="sto", runtimes=["linux", "linux/min/wasmer"], reg_timeout=5) as n:
        yield orch, n


@pytest.mark.parametrize("engine", ["wasmtime", "wasmer"])
@pytest.mark.parametrize("file,argv", [("helloworld.wasm", []), ("args.wasm", ["0", "one", "two words", "three"])])
def test_every_message_is_whole_lines(node: tuple[OrchestratorProc, NodeProcess], engine: str, file: str,
                                      argv: list[str]) -> None:
    orch, n = node
    rt = next(name for name in n.runtime_uuids if (name.endswith(".linux") if engine == "wasmtime" else "wasmer" in name))
    with Client(orch.config) as c:
        uuid = new_uuid()
        sub = c.subscribe(c.topics.stdio(uuid))
        (m,) = c.create([{"type": "module", "uuid": uuid, "name": f"sto-{engine}", "file": file,
                          "parent": n.runtime_uuid(rt), "args": {"argv": argv}}])
        st = m.wait(60)
        assert st.ok, st
        msgs: list[bytes] = []
        try:
            while True:
                msgs.append(sub.get(1.0)[1])
        except TimeoutError:
            pass
    assert msgs and all(p.endswith(b"\n") for p in msgs), msgs
    text = b"".join(msgs).decode()
    if file == "args.wasm":
        assert "argv[3]=two words\n" in text and "argv[4]=three\n" in text, text
    else:
        assert text == "Hello, World!\n"
