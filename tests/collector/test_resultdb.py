"""The collector's results store (benchmarking/resultdb.py, `DATA/results.sqlite`): one row per
(runtime, result id), the same record as the file, campaign and cell from the module's args, the
read API; a real collector process acknowledges (`proc/stored/RUNTIME`) only what the store holds."""
from __future__ import annotations

import os
from typing import Any

import orjson

from benchmarking import layouts
from benchmarking.resultdb import DB_NAME, ResultDB
from collector.store import ProfileStore
from common.results import decode_ack, result_id
from testbed.mqtt import MqttProbe
from testbed.wait import wait_until
from tests.collector.test_delivery import CollectorProc, collectors, data_files  # noqa: F401  (a fixture)

REALM = "realm"
RT = "33333333-3333-4333-8333-333333333333"


def v3(rid: str, wall: int) -> bytes:
    return layouts.encode(layouts.BENCHMARKING_V3, {
        "v": 3, "id": rid, "runs": {"wall_ns": [wall], "utime_us": [1], "stime_us": [1], "maxrss_kb": [9],
                                    "outcome": ["ok"], "exit_code": [0], "signal": [None], "engine": ["wasmtime"]},
        "errors": {}, "env": {}, "warmup": 0, "part": [0, 1], "first_run": 0})


def cell_module(store: ProfileStore, mod: str, cid: str, cell: int) -> None:
    store.on_control(orjson.dumps({"action": "create", "data": {
        "type": "module", "uuid": mod, "name": f"m{cell}", "file": "x.wasm", "parent": RT,
        "args": {"campaign": cid, "cell": cell, "engine": "wasmtime", "argv": []}}}))


def topic(mod: str) -> str:
    return f"{REALM}/proc/profile/benchmarking-v3/{RT}/{mod}"


def test_one_row_per_result_and_the_read_api(tmp_path: Any) -> None:
    data = str(tmp_path / "data")
    store = ProfileStore(data)
    for cell in range(3):
        cell_module(store, f"mod{cell}", "camp", cell)
    items = [(topic(f"mod{c}"), v3(f"r{c}", 100 + c), None, None) for c in range(3)]
    store.store_batch(items, REALM)
    store.store_batch(items[:2], REALM)  # delivered again: stored once
    store.store_batch([(topic("mod9"), v3("r9", 5), None, None)], REALM)  # not a campaign's cell
    assert store.duplicates == 2
    assert store.db is not None
    store.db.close()
    db = ResultDB.find(data)
    assert db is not None
    try:
        assert db.count() == 4 and db.count("camp") == 3
        assert db.cells("camp") == {0: 1, 1: 1, 2: 1}
        assert db.stored(RT, ["r0", "r2", "nosuch"]) == {"r0", "r2"}
        recs = list(db.records(campaign="camp", types=["benchmarking-v3"]))
        assert [r["data"]["runs"]["wall_ns"] for r in recs] == [[100], [101], [102]]
        files = []
        for p in data_files(data):
            with open(p, "rb") as f:
                files.append(orjson.loads(f.read()))
        assert sorted(orjson.dumps(r, option=orjson.OPT_SORT_KEYS) for r in db.records()) == \
            sorted(orjson.dumps(r, option=orjson.OPT_SORT_KEYS) for r in files)  # the same records as the files
        assert list(db.records(campaign="nosuch")) == []
    finally:
        db.close()


def test_store_only_mode_and_a_store_made_after_the_files(tmp_path: Any) -> None:
    data = str(tmp_path / "data")
    only = ProfileStore(data, files=False)
    items = [(topic("m1"), v3("a", 1), None, None), (topic("m1"), v3("a", 1), None, None), (topic("m2"), b"\x01" * 16, None, None)]
    paths = only.store_batch(items, REALM)
    assert paths[0] == paths[1] and only.duplicates == 1
    assert data_files(data) == []  # no file in store-only mode
    assert only.db is not None and only.db.count() == 2
    assert only.db.stored(RT, [result_id(topic("m2"), b"\x01" * 16)])
    only.db.close()

    # files written by a collector of before the store: a delivery again fills the store in
    old = str(tmp_path / "old")
    s1 = ProfileStore(old)
    s1.store_batch([(topic("m1"), v3("b", 2), None, None)], REALM)
    assert s1.db is not None
    s1.db.close()
    os.unlink(os.path.join(old, DB_NAME))
    s2 = ProfileStore(old)
    s2.store_batch([(topic("m1"), v3("b", 2), None, None)], REALM)
    assert s2.duplicates == 1 and len(data_files(old)) == 1
    assert s2.db is not None and [r["data"]["runs"]["wall_ns"] for r in s2.db.records()] == [[2]]
    s2.db.close()


def test_a_collector_acknowledges_what_its_store_holds(broker: Any, probe: MqttProbe, tmp_path: Any, collectors: Any) -> None:
    data = str(tmp_path / "data")
    col = CollectorProc(broker.port, data, str(tmp_path / "c.log"), client_id="dbonly")
    col.extra = ["--no-files"]
    collectors.append(col)
    col.start()
    probe.subscribe(f"{REALM}/proc/stored/#")
    ids = [f"x{i}" for i in range(20)]
    for i, rid in enumerate(ids):
        probe.publish(topic(f"m{i}"), v3(rid, i))
    probe.publish(topic("m0"), v3("x0", 0))  # again

    def named() -> set[str]:
        out: set[str] = set()
        for m in probe.messages(f"{REALM}/proc/stored/{RT}"):
            ack = decode_ack(m.payload)
            assert ack is not None and ack[0] == col.client_id
            out.update(ack[1])
        return out

    wait_until(lambda: named() == set(ids), 30, "acks naming the 20 results")
    assert data_files(data) == []
    db = ResultDB.find(data)
    assert db is not None
    try:
        assert db.count() == 20
    finally:
        db.close()
