"""Unit tests of the pure parts of the WebAssembly runtimes (no wasm runs here): module file
roots, create-message args, the deployed profile payload, a module's channel table."""
from __future__ import annotations

import os
import struct
import threading
import time
from typing import Any

import pytest

from runtimes.engines import RunResult
from runtimes.engines import bridge as br
from runtimes.wasm.channels import STDIO_FD, ModuleChannels
from runtimes.files import ModuleFileError, ModuleFiles
from runtimes.wasm.host import BadArgs, Features, deployed_payload, parse_args
from common.schema import check_create
from common.topics import ChannelError
from common.wire import ProtocolError


def test_files_resolve_inside_roots_and_refuse_escapes(tmp_path: Any) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "m.wasm").write_bytes(b"x")
    (b / "n.wasm").write_bytes(b"x")
    (tmp_path / "outside.wasm").write_bytes(b"x")
    os.symlink(tmp_path / "outside.wasm", a / "link.wasm")
    files = ModuleFiles([str(a), str(b)])
    assert files.resolve("m.wasm") == str(a / "m.wasm")
    assert files.resolve("n.wasm") == str(b / "n.wasm")  # second root
    assert files.resolve(str(b / "n.wasm")) == str(b / "n.wasm")  # absolute inside a root
    for bad in ("../outside.wasm", str(tmp_path / "outside.wasm"), "link.wasm", "../a/../../outside.wasm"):
        with pytest.raises(ModuleFileError, match="refused"):
            files.resolve(bad)
    with pytest.raises(ModuleFileError, match="not found"):
        files.resolve("missing.wasm")
    for bad_name in ("", None, 3, "a\0b"):
        with pytest.raises(ModuleFileError):
            files.resolve(bad_name)


def _args(data: dict[str, Any], f: Features) -> Any:
    return parse_args(check_create(data, "create"), f)


def test_parse_args_validates_and_names_the_key() -> None:
    f = Features()
    a = _args({"file": "dir/x.wasm", "apis": ["profile:deployed"], "args": {
        "argv": ["1", "2"], "env": ["A=b"], "dirs": ["/tmp"], "resources": {"period": 100, "runtime": 20},
        "fault_crash": "restart"}}, f)
    assert a.argv == ["x.wasm", "1", "2"] and a.env == ["A=b"] and a.dirs == ["/tmp"]
    assert (a.cpu_period_ns, a.cpu_runtime_ns, a.fault_crash, a.profile) == (100, 20, "restart", True)
    full = _args({"file": "x.wasm", "args": {"resources": {"period": 100, "runtime": 100}}}, f)
    assert full.cpu_period_ns is None  # a budget of the whole period is no budget
    # checked by the schema at the edge (one place for every runtime), each error naming the key
    cases: list[tuple[dict[str, Any], str]] = [({"file": ""}, "key 'file': must not be empty"), ({"file": "x", "args": ["x"]}, "args"),
                      ({"file": "x", "args": {"argv": [1]}}, r"args.argv\[0\]"),
                      ({"file": "x", "args": {"env": ["nope"]}}, r"args.env\[0\]' must be a 'NAME=VALUE' string, got 'nope'"),
                      ({"file": "x", "args": {"dirs": [3]}}, r"args.dirs\[0\]"),
                      ({"file": "x", "args": {"resources": {"period": 1}}}, "args.resources.runtime"),
                      ({"file": "x", "args": {"fault_crash": "sometimes"}}, "args.fault_crash")]
    for data, key in cases:
        with pytest.raises(ProtocolError, match=key):
            _args(data, f)
    with pytest.raises(BadArgs, match="args.argv must be a list of strings"):
        _args({"file": "x", "args": {"argv": [["a"], ["b"]]}}, f)  # a benchmark's argv lists
    with pytest.raises(BadArgs, match="no `file`"):
        _args({}, f)
    minimal = Features(dirs=False, resources=False, fault_crash=False, profile=False)
    m = _args({"file": "x", "apis": ["profile:deployed"], "args": {"dirs": ["/tmp"], "fault_crash": "restart"}}, minimal)
    assert m.dirs == [] and m.fault_crash == "ignore" and not m.profile


def test_deployed_payload_layout() -> None:
    r = RunResult("exited", code=0, start_time=1_700_000_000.5, wall_s=0.25, utime_s=0.125, stime_s=0.0625, maxrss_kb=640)
    assert struct.unpack("<QIIIIII", deployed_payload(r, 3, 4)) == (1_700_000_000_500_000, 250_000, 125_000, 62_500, 640, 3, 4)


class FakeOutlet:
    """Records what a module's channels ask of the runtime; refuses topics under `no/`."""

    def __init__(self) -> None:
        self.opened: list[tuple[int, int, str]] = []
        self.published: list[tuple[int, bytes]] = []
        self.full = False

    def open(self, fd: int, flags: int, topic: str) -> None:
        if topic.startswith("no/"):
            raise ChannelError(f"topic {topic!r} is not granted")
        self.opened.append((fd, flags, topic))

    def close(self, fd: int) -> None:
        self.opened = [o for o in self.opened if o[0] != fd]

    def publish(self, fd: int, data: bytes) -> None:
        if self.full:
            raise RuntimeError("ring full")
        self.published.append((fd, data))


def _chans(**kw: Any) -> tuple[ModuleChannels, FakeOutlet, list[tuple[int, str]]]:
    out = FakeOutlet()
    logs: list[tuple[int, str]] = []
    return ModuleChannels("u-1", out, lambda lvl, t: logs.append((lvl, t)), **kw), out, logs


def test_channels_open_publish_receive_close() -> None:
    c, out, logs = _chans()
    r = c.open("in", br.READ)
    w = c.open("out", br.WRITE)
    assert (r, w) == (0, 1)
    assert c.open("no/x", br.READ) == br.EACCES and "not granted" in logs[-1][1]
    assert c.publish(w, b"hi") == 0 and out.published == [(1, b"hi")]
    assert c.publish(r, b"x") == br.EBADF  # not writable
    assert c.receive(w, 0) == br.EBADF  # not readable
    assert c.receive(r, 0.01) == br.ETIMEDOUT
    assert c.deliver(r, b"m1") and c.deliver(r, b"m2")
    assert not c.deliver(w, b"x") and not c.deliver(42, b"x")
    assert c.poll([w], 0) == br.EBADF
    assert c.poll([r], 0) == r
    assert c.receive(r, None) == b"m1" and c.receive(r, 0) == b"m2"
    out.full = True
    assert c.publish(w, b"x") == br.EAGAIN
    assert c.close(r) == 0 and c.close(r) == br.EBADF
    assert (c.msgs_in, c.msgs_out) == (2, 1)


def test_channels_never_hand_out_the_stdio_fd_and_run_out_cleanly() -> None:
    c, _, _ = _chans()
    fds = [c.open(f"t/{i}", br.READ) for i in range(br.MAX_FDS - 1)]
    assert STDIO_FD not in fds and sorted(fds) == list(range(br.MAX_FDS - 1))
    assert c.open("t/x", br.READ) == br.EMFILE


def test_channels_cancel_wakes_blocked_receive_and_poll() -> None:
    c, _, _ = _chans()
    fd = c.open("in", br.READ)
    got: list[Any] = []
    threads = [threading.Thread(target=lambda: got.append(c.receive(fd, None))),
               threading.Thread(target=lambda: got.append(c.poll([fd], None)))]
    for t in threads:
        t.start()
    time.sleep(0.05)
    c.cancel()
    for t in threads:
        t.join(10)
    assert got == [br.EINTR, br.EINTR]
    assert c.receive(fd, 0) == br.EINTR  # and from now on


def test_channels_bounded_inbox_drops_oldest_with_a_warning() -> None:
    c, _, logs = _chans(max_inbox=3)
    fd = c.open("in", br.READ)
    for i in range(5):
        c.deliver(fd, bytes([i]))
    assert c.dropped == 2 and [c.receive(fd, 0) for _ in range(3)] == [b"\x02", b"\x03", b"\x04"]
    assert any("dropped" in t for _, t in logs)
