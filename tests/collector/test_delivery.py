"""Delivery of profiles to a real collector process through a real mosquitto (issue #24 item 1, the
collector's side): a persistent session, acknowledgements only after a durable write, stored once per
key, and a store that cannot write (full disk) that says so once, acknowledges nothing and catches up.

Fences, never sleeps: a later message's file (the collector stores in arrival order), the log's
`attempt N` debug line of the writer's retries, the process's exit."""
from __future__ import annotations

import errno
import glob
import logging
import os
import re
import signal
import subprocess
import sys
import uuid
from typing import Any, Iterator

import orjson
import pytest

from collector.store import ProfileStore, durable_write, message_key
from benchmarking import layouts
from testbed.procs import stop_process
from testbed.wait import wait_until

REALM = "realm"
RT = "22222222-2222-4222-8222-222222222222"
TAG = uuid.uuid4().hex[:12]
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class CollectorProc:
    """`python -m collector` with its log in a file (read by the tests, never a pipe that can fill)."""

    def __init__(self, port: int, data: str, log_path: str, client_id: str = "test-collector") -> None:
        # unique per test run: the client-id lock is host-wide (another worktree may run these tests)
        client_id = f"{client_id}-{TAG}"
        self.port, self.data, self.log_path, self.client_id = port, data, log_path, client_id
        self.proc: subprocess.Popen[bytes] | None = None
        self.extra: list[str] = []  # more collector options

    def start(self, wait: bool = True) -> "CollectorProc":
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "collector", "--mqtt", f"127.0.0.1:{self.port}", "-d", self.data, "--no-rest",
                 "--client-id", self.client_id, "-v", "DBG", *self.extra], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        if wait:
            n = self.log().count("collecting realm/proc/profile/#")
            wait_until(lambda: self.log().count("collecting realm/proc/profile/#") > n or self.proc.poll() is not None,
                       30, "the collector's subscription")
            assert self.proc.poll() is None, self.log()
        return self

    def log(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def lines(self, level: str, text: str) -> list[str]:
        return [ln for ln in self.log().splitlines() if f":{level}]" in ln and text in ln]

    def stop(self, sig: int = signal.SIGTERM) -> int | None:
        p, self.proc = self.proc, None
        stop_process(p, sig, timeout=15)
        return p.returncode if p is not None else None


@pytest.fixture
def collectors(broker: Any, tmp_path: Any) -> Iterator[list[CollectorProc]]:
    started: list[CollectorProc] = []
    yield started
    for c in started:
        c.stop()


def data_files(data: str) -> list[str]:
    return sorted(glob.glob(os.path.join(data, "**", "*.json"), recursive=True))


def temporaries(root: str) -> list[str]:
    return [os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if f.endswith(".tmp")]


def keys_of(data: str) -> list[str]:
    out = []
    for p in data_files(data):
        with open(p, "rb") as f:
            out.append(orjson.loads(f.read())["key"])
    return out


def profile(i: int) -> tuple[str, bytes]:
    return f"{REALM}/proc/profile/benchmarking-v2/{RT}/mod-{i}", layouts.encode("benchmarking-v2", [(1000 + i, 900, 5, 2048)])


def test_profiles_published_while_stopped_are_stored_after_restart(broker, probe, tmp_path, collectors) -> None:  # type: ignore[no-untyped-def]
    data = str(tmp_path / "data")
    col = CollectorProc(broker.port, data, str(tmp_path / "collector.log"))
    collectors.append(col)
    col.start()  # the session exists from here on
    assert col.stop() == 0
    n = 150  # more than the collector's receive maximum (100): the rest wait in the broker's queue
    for i in range(n):
        probe.publish(*profile(i))  # QoS 1, the broker has it when this returns
    assert data_files(data) == []
    col.start()
    wait_until(lambda: len(data_files(data)) >= n, 30, f"{n} profiles stored after the restart")
    keys = keys_of(data)
    assert sorted(keys) == sorted(message_key(*profile(i)) for i in range(n))
    for p in data_files(data):
        with open(p, "rb") as f:
            rec = orjson.loads(f.read())
        assert rec["data"]["wall_us"][0] in range(1000, 1000 + n)
    assert col.lines("ERR", "") == [] and temporaries(data) == []


def test_a_duplicate_delivery_is_stored_once(broker, probe, tmp_path, collectors) -> None:  # type: ignore[no-untyped-def]
    data = str(tmp_path / "data")
    col = CollectorProc(broker.port, data, str(tmp_path / "collector.log"))
    collectors.append(col)
    col.start()
    probe.publish(*profile(1))
    probe.publish(*profile(1))  # the same bytes on the same topic: delivered again
    v3 = {"v": 3, "id": "run-7", "runs": {"wall_ns": [5]}, "errors": {}, "env": {"try": 1}, "warmup": 0, "part": [0, 1]}
    topic = f"{REALM}/proc/profile/benchmarking-v3/{RT}/mod-v3"
    probe.publish(topic, orjson.dumps(v3))
    probe.publish(topic, orjson.dumps({**v3, "env": {"try": 2}}))  # the same result id, other bytes: a re-send
    probe.publish(*profile(2))  # the fence: stored after every message before it
    wait_until(lambda: message_key(*profile(2)) in keys_of(data), 20, "the fence profile stored")
    keys = keys_of(data)
    assert len(keys) == 3 and len(set(keys)) == 3, data_files(data)
    assert message_key(*profile(1)) in keys and message_key(topic, orjson.dumps(v3)) in keys
    col.stop()
    # after a restart the markers still know them
    col.start()
    probe.publish(*profile(1))
    probe.publish(*profile(3))
    wait_until(lambda: message_key(*profile(3)) in keys_of(data), 20, "the second fence stored")
    assert len(keys_of(data)) == 4


class FullDisk:
    """A file system the test can fill and free: a small tmpfs when root, else a directory made
    read-only (EACCES instead of ENOSPC; root ignores permissions, so only tmpfs works for it)."""

    def __init__(self, root: str) -> None:
        self.root = root
        os.makedirs(root)
        self.mounted = False
        self.errno_name = "EACCES"
        if os.geteuid() == 0:
            r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", root], capture_output=True, text=True)
            assert r.returncode == 0, f"cannot mount a tmpfs at {root} as root: {r.stderr}"
            self.mounted = True
            self.errno_name = "ENOSPC"
        self.data = os.path.join(root, "data")
        os.makedirs(self.data)
        self.filler = os.path.join(root, "filler")

    def fill(self) -> None:
        if not self.mounted:
            for d, _, _ in os.walk(self.data):
                os.chmod(d, 0o555)
            return
        with open(self.filler, "ab", buffering=0) as f:
            try:
                while True:
                    f.write(b"\0" * 4096)
            except OSError as e:
                assert e.errno == errno.ENOSPC, e

    def free(self) -> None:
        if not self.mounted:
            for d, _, _ in os.walk(self.data):
                os.chmod(d, 0o755)
            return
        os.unlink(self.filler)

    def close(self) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", self.root], check=False)
        else:
            self.free()


def test_full_disk_acknowledges_nothing_says_so_once_and_catches_up(broker, probe, tmp_path, collectors) -> None:  # type: ignore[no-untyped-def]
    disk = FullDisk(str(tmp_path / "disk"))
    try:
        col = CollectorProc(broker.port, disk.data, str(tmp_path / "collector.log"))
        collectors.append(col)
        col.start()
        disk.fill()
        n = 25
        for i in range(n):
            probe.publish(*profile(i))
        wait_until(lambda: col.lines("ERR", "cannot store profiles"), 20, "the ERR line")
        wait_until(lambda: col.lines("DBG", "attempt 3,"), 20, "three failed attempts")  # the fence for "once"
        (err,) = col.lines("ERR", "cannot store profiles")
        assert disk.data in err and disk.errno_name in err and ("free space" if disk.mounted else "write there") in err
        assert data_files(disk.data) == [] and temporaries(disk.root) == []

        disk.free()
        wait_until(lambda: len(data_files(disk.data)) >= n, 30, f"{n} profiles stored once space is back")
        assert len(col.lines("INF", "storing profiles in")) == 1 and len(col.lines("ERR", "cannot store")) == 1
        assert sorted(keys_of(disk.data)) == sorted(message_key(*profile(i)) for i in range(n))
        assert temporaries(disk.root) == []

        # full again; the collector dies while it holds unacknowledged profiles: the broker still has them
        disk.fill()
        for i in range(n, n + 5):
            probe.publish(*profile(i))
        wait_until(lambda: len(col.lines("ERR", "cannot store profiles")) == 2, 20, "the second ERR line")
        assert col.proc is not None
        col.proc.kill()
        col.proc.wait()
        col.proc = None
        disk.free()
        col.start()
        wait_until(lambda: len(data_files(disk.data)) >= n + 5, 30, "the held profiles stored after a restart")
        keys = keys_of(disk.data)
        assert sorted(keys) == sorted(message_key(*profile(i)) for i in range(n + 5)), "each profile exactly once"
        assert temporaries(disk.root) == []
    finally:
        for c in collectors:
            c.stop()
        disk.close()


def test_two_collectors(broker, tmp_path, collectors) -> None:  # type: ignore[no-untyped-def]
    a = CollectorProc(broker.port, str(tmp_path / "a"), str(tmp_path / "a.log"), client_id="twin")
    collectors.append(a)
    a.start()
    # the same data directory on this host: refused at start
    same_dir = CollectorProc(broker.port, str(tmp_path / "a"), str(tmp_path / "same.log"), client_id="other")
    collectors.append(same_dir)
    same_dir.start(wait=False)
    assert same_dir.proc is not None and same_dir.proc.wait(30) == 2
    assert "already uses the data directory" in same_dir.log()
    # the same client id on another host (here: another data directory and no shared lock): the
    # newcomer takes the session, the first one says why and stops with exit 1
    b = CollectorProc(broker.port, str(tmp_path / "b"), str(tmp_path / "b.log"), client_id="twin")
    collectors.append(b)
    env_tmp = tmp_path / "otherhost"
    env_tmp.mkdir()
    with open(b.log_path, "ab") as log:
        b.proc = subprocess.Popen(
            [sys.executable, "-m", "collector", "--mqtt", f"127.0.0.1:{broker.port}", "-d", b.data, "--no-rest",
             "--client-id", b.client_id], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "TMPDIR": str(env_tmp)})
    assert a.proc is not None and a.proc.wait(30) == 1
    assert re.search(r"took over its session", a.log()) and a.client_id in a.log()
    wait_until(lambda: "collecting realm/proc/profile/#" in b.log(), 20, "the newcomer subscribed")
    assert b.proc.poll() is None


@pytest.mark.parametrize("syncfs", [True, False], ids=["syncfs", "fsync-each"])
def test_store_completes_a_marker_left_by_a_crash(tmp_path, monkeypatch, syncfs) -> None:  # type: ignore[no-untyped-def]
    """Killed between the key's marker and the data file: the next delivery writes the file (once).
    Both ways to sync: syncfs per group commit, and fsync of every file and directory without it."""
    import collector.store as cs
    if syncfs and not cs._HAVE_SYNCFS:
        pytest.fail("this C library has no syncfs: the collector falls back to fsync of each file (the other case)")
    monkeypatch.setattr(cs, "_HAVE_SYNCFS", syncfs)
    store = ProfileStore(str(tmp_path))
    topic, payload = profile(1)
    key = message_key(topic, payload)
    planned = os.path.join("2000-01-01", RT, "x.json")
    os.makedirs(os.path.join(str(tmp_path), ".stored", key[:2]))
    durable_write(os.path.join(str(tmp_path), ".stored", key[:2], key), planned.encode())
    path = store.on_profile(topic, payload, REALM)
    assert path == os.path.join(str(tmp_path), planned) and os.path.exists(path)
    assert store.on_profile(topic, payload, REALM) == path and store.duplicates == 1
    assert len(data_files(str(tmp_path))) == 1
    # a batch with two messages for one module file name: numbered, each once
    paths = store.store_batch([(*profile(2), None, None), (profile(2)[0], profile(3)[1], None, None), (*profile(2), None, None)], REALM)
    assert paths[0] != paths[1] and paths[2] == paths[0] and len(data_files(str(tmp_path))) == 3
    assert temporaries(str(tmp_path)) == []


def test_beyond_the_memory_bound_the_broker_sends_again_after_a_reconnect(broker, probe, tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    """mosquitto sends more unacknowledged messages than the receive maximum; the collector holds at
    most `held_max`, leaves the rest unacknowledged and reconnects once it has caught up: every
    profile is stored, once."""
    from collector.store import Collector
    caplog.set_level(logging.INFO, "prof")
    col = Collector(ProfileStore(str(tmp_path / "data")), "127.0.0.1", broker.port, REALM, held_max=5).start()
    try:
        n = 60
        for i in range(n):
            probe.publish(*profile(i))
        wait_until(lambda: len(data_files(str(tmp_path / "data"))) >= n, 30, f"{n} profiles stored")
        assert sorted(keys_of(str(tmp_path / "data"))) == sorted(message_key(*profile(i)) for i in range(n))
        assert col.reconnects >= 1 and "reconnecting so that the broker sends again" in caplog.text
        assert len(caplog.records) and sum("as many as the collector keeps" in r.getMessage() and r.levelname == "WARNING"
                                          for r in caplog.records) == 1
    finally:
        col.stop()


def test_a_broker_that_lost_the_session_is_reported_and_collecting_goes_on(broker, tmp_path, caplog) -> None:  # type: ignore[no-untyped-def]
    """The fixture's mosquitto runs without persistence: restarted, it has no session for the
    collector. The collector says so (WRN), subscribes again and stores what comes next."""
    from collector.store import Collector
    from testbed.mqtt import MqttProbe
    caplog.set_level(logging.INFO, "prof")
    data = str(tmp_path / "data")
    col = Collector(ProfileStore(data), "127.0.0.1", broker.port, REALM).start()
    try:
        broker.stop()
        broker.start()
        wait_until(lambda: "kept no session" in caplog.text, 30, "the collector's warning about the lost session")
        assert col.ready.wait(30), "no SUBACK after the broker's restart"
        probe = MqttProbe(broker.port)
        try:
            probe.publish(*profile(5))
            wait_until(lambda: message_key(*profile(5)) in keys_of(data), 20, "a profile stored after the restart")
        finally:
            probe.close()
    finally:
        col.stop()
