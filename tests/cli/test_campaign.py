"""A campaign end to end (real mosquitto, orchestrator process, node, collector): the plan is stored,
outcomes are counted by reason, `--wait` exits 1 when a cell did not finish, a node that goes
away mid-campaign leaves lost cells, `--resume` runs exactly those, and no cell is done twice."""
from __future__ import annotations

import glob
import json
import os
import threading
import time
from collections import Counter
from typing import Any

import orjson
import pytest

from cli import benchmark, report
from cli._api import Api
from collector import Collector, ProfileStore
from collector.store import rest_lookup
from testbed.node import NodeProcess, running_node
from testbed.wait import wait_until


pytestmark = pytest.mark.orchestrator(ka_interval=0.5)


def done_cells(data: str, cid: str) -> Counter[int]:
    """Cell id -> number of collected benchmarking-v3 profiles of that campaign with only good runs."""
    got: Counter[int] = Counter()
    for p in glob.glob(os.path.join(data, "**", "*.benchmarking-v3.json"), recursive=True):
        with open(p) as f:
            rec = json.load(f)
        args = rec["module"]["args"]
        if args.get("campaign") == cid and set(rec["data"]["runs"]["outcome"]) == {"ok"}:
            got[args["cell"]] += 1
    return got


def test_campaign_outcomes_lost_and_resume(broker, orch, wasm, wasm_root, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"mqtt": "127.0.0.1", "mqtt_port": broker.port, "http": "127.0.0.1",
                               "http_port": orch.http_port}))
    api = Api(orch.url)
    data = str(tmp_path / "data")
    col = Collector(ProfileStore(data), "127.0.0.1", broker.port).start()
    state = str(tmp_path / "state")
    try:
        # a failing cell: --wait summarises by reason and exits 1
        with running_node(broker, name="cn", runtimes=["benchmarking"], state_dir=state, reg_timeout=5,
                          extra_args=["--module-root", wasm_root]):
            rc = benchmark.main(["-c", str(cfg), "-f", wasm["spin"], wasm["trap"], "-r", "cn", "--engine", "wasmtime-aot",
                                 "--argv", "1", "-k", "2", "--wait", "--timeout", "120", "--campaign", "c-trap"])
            err = capsys.readouterr().err
            assert rc == 1 and "2 cells: 1 done; failed: trap 1" in err and "--resume c-trap" in err
            assert benchmark.main(["-c", str(cfg), "--status", "c-trap"]) == 0
            assert "1 done; failed: trap 1" in capsys.readouterr().out
            # the same id again: refused (it used to exit 0, the old campaign's record read as the answer)
            assert benchmark.main(["-c", str(cfg), "-f", wasm["spin"], "-r", "cn", "--campaign", "c-trap"]) == 1
            assert "campaign c-trap exists already" in (err := capsys.readouterr().err), err
        # its node gone: the orchestrator refuses to resume (the runtime is not alive), and says so in one line
        wait_until(lambda: not api.runtimes(), 60, "the stopped node's runtimes dead")
        assert benchmark.main(["-c", str(cfg), "--resume", "c-trap"]) == 1
        assert "the orchestrator refused campaign c-trap: " in (err := capsys.readouterr().err) and "not alive" in err, err
        # a node that goes away in the middle: lost cells; it comes back (same uuids); --resume runs only those
        node = NodeProcess(broker.port, name="cn", runtimes=["benchmarking"], state_dir=state, reg_timeout=5,
                          extra_args=["--module-root", wasm_root])
        node.start()
        try:
            result: dict[str, Any] = {}
            args = ["-c", str(cfg), "-f", wasm["spin"], wasm["memory"], "-r", "cn", "--engine", "wasmtime", "wasmtime-aot",
                    "--argv", "20", "-k", "2", "--campaign", "c-lost", "--seed", "5"]
            t = threading.Thread(target=lambda: result.setdefault("rc", benchmark.main(args + ["--wait", "--timeout", "300"])))
            t.start()
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                s = api.get("/api/campaigns/c-lost/")
                if s and s["done"] >= 1:
                    break
                time.sleep(0.1)
            node.kill()  # SIGKILL: the last will kills the runtime's modules
            t.join(60)
            assert result.get("rc") == 1
            s = api.get("/api/campaigns/c-lost/")
            assert s["failed"]["lost"] >= 1 and s["done"] + s["failed"]["lost"] == 4, s
        finally:
            node.stop()
        with running_node(broker, name="cn", runtimes=["benchmarking"], state_dir=state, reg_timeout=5,
                          extra_args=["--module-root", wasm_root]) as back:
            # the orchestrator has taken the re-registration (and resurrected the killed module) in one
            # transaction: wait for it to show the runtime alive, not for a while
            rt_back = back.runtime_uuid()
            wait_until(lambda: (api.runtime(rt_back) or {}).get("status") == "A", 30, "the runtime alive again")
            assert benchmark.main(["-c", str(cfg), "--resume", "c-lost", "--wait", "--timeout", "300"]) == 0
            assert "4 cells: 4 done; failed: none" in capsys.readouterr().err
            assert benchmark.main(["-c", str(cfg), "--resume", "c-lost", "--wait", "--timeout", "30"]) == 0
        end = time.monotonic() + 20
        while sum(done_cells(data, "c-lost").values()) < 4 and time.monotonic() < end:
            time.sleep(0.1)
        got = done_cells(data, "c-lost")
        assert sorted(got) == list(range(4)) and set(got.values()) == {1}  # every cell once, none twice
    finally:
        col.stop()
    # report: coverage of a campaign from the orchestrator's record of it
    capsys.readouterr()
    assert report.main([data, "--campaign", "c-trap", "--json", "--no-plots", "-c", str(cfg)]) == 0
    js = json.loads(capsys.readouterr().out)
    assert js["coverage"]["c-trap"] == {"done": 1, "data_pending": 0, "error": 0, "trap": 1, "limit": 0, "killed": 0, "lost": 0,
                                        "queued": 0, "running": 0}
    rows = {r["module"]: r for r in js["rows"]}
    assert set(rows) == {"spin.wasm:1", "trap.wasm:1"} and rows["spin.wasm:1"]["n"] == 2
    assert rows["trap.wasm:1"]["failures"] == {"trap": 1} and rows["trap.wasm:1"]["n"] == 0
    assert report.main([data, "--campaign", "c-lost", "-o", str(tmp_path / "rep"), "-c", str(cfg)]) == 0
    assert os.path.exists(tmp_path / "rep" / "coverage_c-lost.png")
    capsys.readouterr()
    assert benchmark.main(["-c", str(cfg), "--resume", "nope"]) == 1
    assert "no campaign nope" in capsys.readouterr().err
    assert benchmark.main(["-c", str(cfg), "--status"]) == 0
    out = capsys.readouterr().out
    assert "campaign c-trap" in out and "campaign c-lost" in out


def test_a_cell_whose_profile_arrived_before_its_node_died_is_not_run_again(broker, orch, probe, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The orchestrator process hears the cells' benchmarking-v3 profiles: a stand-in runtime takes
    the cells' creates, publishes the first one's profile and dies (registration delete) before its
    `exited`; when it registers again only the other cells come back, and that cell is done."""
    from common.results import encode_ack
    from common.wire import envelope

    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"mqtt": "127.0.0.1", "mqtt_port": broker.port, "http": "127.0.0.1",
                               "http_port": orch.http_port}))
    api = Api(orch.url)
    rt = "rt-standin-0001"
    reg = envelope("create", {"type": "runtime", "uuid": rt, "name": "sn.benchmarking", "runtime_type": "benchmarking",
                              "max_nmodules": 1, "apis": ["wasm", "wasi", "benchmarking"], "platform": {},
                              "metadata": {"queue_ahead": 3}})
    probe.subscribe(f"realm/proc/control/{rt}")
    probe.publish(f"realm/proc/reg/{rt}", reg)
    wait = time.monotonic() + 10
    while api.runtime(rt) is None and time.monotonic() < wait:
        time.sleep(0.05)
    assert benchmark.main(["-c", str(cfg), "-f", "wasm/a.wasm", "wasm/b.wasm", "-r", "sn.benchmarking", "--engine", "wasmtime-j", "wasmtime-b",
                           "--campaign", "c-prof", "--window", "3", "--no-dir"]) == 0
    creates = probe.wait_for(f"realm/proc/control/{rt}", count=3, timeout=10)
    first = orjson.loads(creates[0].payload)["data"]
    body = {"v": 3, "runs": {"wall_ns": [1000], "utime_us": [1], "stime_us": [0], "maxrss_kb": [1000], "outcome": ["ok"],
                             "exit_code": [0], "signal": [None], "engine": [first["args"]["engine"]]},
            "errors": {}, "env": {}, "warmup": 0, "part": [0, 1], "first_run": 0, "id": "result-first"}
    probe.publish(f"realm/proc/profile/benchmarking-v3/{rt}/{first['uuid']}", orjson.dumps(body))
    probe.publish(f"realm/proc/stored/{rt}", encode_ack("a-collector", ["result-first"]))  # a collector stored it
    # fence: the orchestrator handles its messages one at a time, in the order they come; once it has
    # registered a runtime announced after the profile, it has taken the profile too
    fence = envelope("create", {"type": "runtime", "uuid": "rt-fence-0001", "name": "fence.test",
                                "runtime_type": "test", "max_nmodules": 1, "apis": [], "platform": {}})
    probe.publish("realm/proc/reg/rt-fence-0001", fence)
    wait_until(lambda: api.runtime("rt-fence-0001") is not None, 10, "the fence runtime registered")
    probe.publish(f"realm/proc/reg/{rt}", envelope("delete", {"type": "runtime", "uuid": rt}))
    wait = time.monotonic() + 10
    while (api.get("/api/campaigns/c-prof/") or {}).get("done") != 1 and time.monotonic() < wait:
        time.sleep(0.05)
    s = api.get("/api/campaigns/c-prof/")
    assert s is not None and s["done"] == 1 and s["failed"]["lost"] == 3, s
    probe.subscribe(f"realm/proc/reg/{rt}")
    probe.clear()
    probe.publish(f"realm/proc/reg/{rt}", reg)  # back: its killed modules are created again, not the done one
    # fence: the orchestrator sends the creates of a registration before its answer to it, so every
    # create this registration caused has come once the answer has
    probe.wait_for(f"realm/proc/reg/{rt}", lambda m: orjson.loads(m.payload).get("type") == "resp", timeout=10)
    again = [orjson.loads(m.payload)["data"]["uuid"] for m in probe.messages(f"realm/proc/control/{rt}")
             if orjson.loads(m.payload).get("action") == "create"]
    assert first["uuid"] not in again and len(again) == 2, again  # the 2 killed ones; the queued one died with the runtime


def test_cells_wait_as_data_pending_until_a_collector_stores_their_data(broker, orch, wasm, wasm_root, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    """Issue #24: with no collector, cells that ran are `data_pending` (not done, not lost): `--status`
    names them, `--wait` exits 1 saying so; a collector started later gets the results from the node's
    spool (sent again) and the cells become done."""
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"mqtt": "127.0.0.1", "mqtt_port": broker.port, "http": "127.0.0.1",
                               "http_port": orch.http_port}))
    api = Api(orch.url)
    data = str(tmp_path / "data")
    with running_node(broker, name="dn", runtimes=["benchmarking"], state_dir=str(tmp_path / "state"), reg_timeout=5,
                      extra_args=["--module-root", wasm_root]) as node:
        rc = benchmark.main(["-c", str(cfg), "-f", wasm["spin"], "-r", "dn", "--engine", "wasmtime-aot", "wasmtime-j",
                             "--argv", "1", "--wait", "--timeout", "120", "--data-wait", "1", "--campaign", "c-data"])
        err = capsys.readouterr().err
        assert rc == 1 and "data pending 2" in err and "not lost, nothing to resume" in err and "--resume" not in err
        assert "cells without stored data: 0, 1" in err
        assert benchmark.main(["-c", str(cfg), "--status", "c-data"]) == 0
        assert "cells without stored data" in capsys.readouterr().out
        s = api.get("/api/campaigns/c-data/")
        assert s["done"] == 0 and s["data_pending"] == 2 and sum(s["failed"].values()) == 0
        col = Collector(ProfileStore(data, rest_lookup(orch.url)), "127.0.0.1", broker.port).start()  # names from REST
        try:
            node.proc.send_signal(__import__("signal").SIGTERM)  # type: ignore[union-attr]
            node.wait_exit(30)
            node.start()  # restarted: it reads its spool back and sends the results again
            assert benchmark.main(["-c", str(cfg), "--status", "c-data", "--wait", "--timeout", "60"]) == 0
            assert "2 cells: 2 done; failed: none" in capsys.readouterr().err
            assert done_cells(data, "c-data") == Counter({0: 1, 1: 1})
        finally:
            col.stop()
