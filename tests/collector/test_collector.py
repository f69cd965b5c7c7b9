"""The profile collector against a real broker: every format lands in a decodable file with names
and metadata; a payload it cannot decode is kept raw."""
from __future__ import annotations

import base64
import glob
import os
import subprocess
import sys
import time
from typing import Iterator

import orjson
import pytest

from collector import Collector, ProfileStore
from benchmarking import layouts
from testbed.wait import wait_until

REALM = "realm"
RT = "11111111-1111-4111-8111-111111111111"

SAMPLES = {
    "benchmarking": [(100, 90, 5)],
    "benchmarking-v2": [(100, 90, 5, 2048)],
    "seeded": [(100, 90, 5, 7)],
    "deployed": [(1_700_000_000_000_000, 10, 9, 1, 512, 3, 4)],
    "interference": {"0:a.wasm": [1200, 0], "1:b.wasm": [900]},
    "opcodes": list(range(256)),
    "instrumented": [3, 0, 7],
}


@pytest.fixture
def collector(broker, tmp_path) -> Iterator[Collector]:  # type: ignore[no-untyped-def]
    c = Collector(ProfileStore(str(tmp_path / "data")), "127.0.0.1", broker.port, REALM).start()
    try:
        yield c
    finally:
        c.stop()


def wait_files(store: ProfileStore, n: int, timeout: float = 20) -> list[str]:
    deadline = time.monotonic() + timeout
    while len(store.written) < n:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(store.written)}/{n} files written: {store.written}")
        time.sleep(0.05)
    return list(store.written)


def test_every_format_is_written_decodable(collector: Collector, probe) -> None:  # type: ignore[no-untyped-def]
    probe.publish(f"{REALM}/proc/reg/{RT}", {"object_id": "r", "action": "create", "type": "req", "data": {
        "type": "runtime", "uuid": RT, "name": "node1.bench", "runtime_type": "benchmarking",
        "metadata": {"cpus": [0]}, "platform": {"cpu": "x86_64"}}})
    for i, ptype in enumerate(SAMPLES):
        probe.publish(f"{REALM}/proc/control/{RT}", {"object_id": f"c{i}", "action": "create", "type": "req", "data": {
            "type": "module", "uuid": f"mod-{i}", "name": f"prog/{ptype}.wasm", "file": f"/x/{ptype}.wasm", "args": {"repeat": 1}}})
    # the names arrive before the data, as in a real run: wait until the collector has them
    wait_until(lambda: all(f"mod-{i}" in collector.store.modules for i in range(len(SAMPLES))) and RT in collector.store.runtimes,
               10, "the collector has the runtime and module names")
    for i, (ptype, value) in enumerate(SAMPLES.items()):
        probe.publish(f"{REALM}/proc/profile/{ptype}/{RT}/mod-{i}", layouts.encode(ptype, value))
    paths = wait_files(collector.store, len(SAMPLES))
    day = time.strftime("%Y-%m-%d", time.gmtime())
    for i, ptype in enumerate(SAMPLES):
        path = os.path.join(collector.store.directory, day, "node1.bench", f"prog_{ptype}.wasm.mod-{i}.{ptype}.json")
        assert path in paths
        with open(path, "rb") as f:
            rec = orjson.loads(f.read())
        assert rec["type"] == ptype and "error" not in rec
        assert rec["runtime"]["metadata"] == {"cpus": [0]} and rec["module"]["file"] == f"/x/{ptype}.wasm"
        assert rec["data"] == layouts.decode(ptype, layouts.encode(ptype, SAMPLES[ptype]))


def test_undecodable_payload_is_kept_raw(collector: Collector, probe) -> None:  # type: ignore[no-untyped-def]
    probe.publish(f"{REALM}/proc/profile/opcodes/{RT}/m-bad", b"\x01\x02\x03")
    probe.publish(f"{REALM}/proc/profile/nosuchtype/{RT}/m-bad", b"abc")
    probe.publish(f"{REALM}/proc/profile/opcodes/{RT}/m-bad", b"\x01\x02\x04")  # a second one is not overwritten
    paths = wait_files(collector.store, 3)
    assert len(set(paths)) == 3
    for p in paths:
        with open(p, "rb") as f:
            rec = orjson.loads(f.read())
        assert "data" not in rec and rec["error"]
        assert base64.b64decode(rec["raw_base64"]) in (b"\x01\x02\x03", b"\x01\x02\x04", b"abc")
        assert rec["runtime"]["name"] is None and RT in p  # unknown runtime: its uuid names the folder


def test_python_m_collector_runs_and_stops(broker, probe, tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "d"
    proc = subprocess.Popen([sys.executable, "-m", "collector", "--mqtt", f"127.0.0.1:{broker.port}", "-d", str(data), "--no-rest"],
                            cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not glob.glob(str(data / "*" / "*" / "*.json")):
            probe.publish(f"{REALM}/proc/profile/instrumented/{RT}/m1", layouts.encode("instrumented", [1, 2]))
            assert time.monotonic() < deadline, "the collector wrote nothing"
            time.sleep(0.5)
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=15)
    assert proc.returncode == 0, out.decode()
    with open(sorted(glob.glob(str(data / "*" / "*" / "*.json")))[0], "rb") as f:
        rec = orjson.loads(f.read())
    assert rec["data"] == {"loops": [1, 2]}
