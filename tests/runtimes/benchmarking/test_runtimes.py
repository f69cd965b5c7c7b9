"""The benchmarking runtimes through the real supervisor (start.py), real mosquitto and real runs."""
from __future__ import annotations

import os
from typing import Any

import orjson

from benchmarking.engines import launch as engines
from benchmarking import layouts
from testbed.bench_modules import node_args
from testbed import control
from testbed.mqtt import MqttProbe
from testbed.node import running_node
from testbed.wait import wait_until

REALM = "realm"


def create(probe: MqttProbe, rt_uuid: str, uuid: str, file: str, **args: Any) -> None:
    control.create(probe, rt_uuid, uuid, file=file, name=os.path.basename(file), **args)


def exited(probe: MqttProbe, rt_uuid: str, uuid: str, timeout: float = 120) -> dict[str, Any]:
    return control.exited(probe, rt_uuid, uuid, timeout)


def profile(probe: MqttProbe, ptype: str, uuid: str, timeout: float = 30) -> bytes:
    return probe.wait_for(f"{REALM}/proc/profile/{ptype}/+/{uuid}", timeout=timeout)[0].payload


def test_benchmarking_repeat_ilimit_engines_norepeat(broker, probe, wasm, wasm_root, tmp_path) -> None:  # type: ignore[no-untyped-def]
    probe.subscribe(f"{REALM}/proc/#")
    with running_node(broker, runtimes=["benchmarking"], extra_args=node_args(tmp_path, [wasm_root], ["native"])) as node:
        rt = node.runtime_uuid()
        reg = [r for r in node.registrations if r["data"].get("type") == "runtime"][0]["data"]
        assert "wasmtime" in reg["metadata"]["engines"] and reg["metadata"]["cpus"]
        # repeat=5 -> 5 plausible samples
        create(probe, rt, "m-repeat", wasm["spin"], argv=["10"], repeat=5, engine="wasmtime-aot")
        st = exited(probe, rt, "m-repeat")
        assert st["status"] == {"reason": "exited", "code": 0, "error": None}
        assert st["engines"] == {"wasmtime-aot": engines.version("wasmtime-a")}  # the record names the version
        assert st["outcomes"] == {"ok": 5} and st["env"]["cpus"] == reg["metadata"]["cpus"]
        v3 = layouts.decode("benchmarking-v3", profile(probe, "benchmarking-v3", "m-repeat"))
        runs = v3["runs"]
        assert runs["outcome"] == ["ok"] * 5 and runs["engine"] == ["wasmtime-aot"] * 5 and v3["env"]["loadavg"]
        for w, u, s, rss in zip(runs["wall_ns"], runs["utime_us"], runs["stime_us"], runs["maxrss_kb"]):
            assert 1_000_000 < w < 60_000_000_000 and 0 < u + s < 2 * w // 1000 + 10_000 and rss > 1000
        # the seed's layout beside ours (the original collector stores only that one): same runs, in us
        d = layouts.decode("benchmarking", profile(probe, "benchmarking", "m-repeat"))
        assert d["wall_us"] == [w // 1000 for w in runs["wall_ns"]]
        # ilimit kills a long run; in repeat mode that ends the module; the run is a row with its outcome
        create(probe, rt, "m-ilimit", wasm["spin"], argv=["100000"], repeat=3, ilimit=0.5)
        st = exited(probe, rt, "m-ilimit")
        assert st["status"]["reason"] == "limit" and "time limit" in st["status"]["error"] and st["failure"] == "limit"
        runs = layouts.decode("benchmarking-v3", profile(probe, "benchmarking-v3", "m-ilimit"))["runs"]
        assert runs["outcome"] == ["limit"] and runs["wall_ns"][0] >= 500_000_000  # its real time, not a 0 sample
        assert layouts.decode("benchmarking", profile(probe, "benchmarking", "m-ilimit"))["wall_us"] == [0]
        # an engine list: repeat runs per engine, in order; warm-up runs are discarded
        create(probe, rt, "m-engines", wasm["spin"], argv=["1"], repeat=2, warmup=1, profile="ours",
               engine=["wasmtime", "wasmtime-aot", "native"])
        assert exited(probe, rt, "m-engines")["status"]["reason"] == "exited"
        v3 = layouts.decode("benchmarking-v3", profile(probe, "benchmarking-v3", "m-engines"))
        assert v3["runs"]["engine"] == ["wasmtime"] * 2 + ["wasmtime-aot"] * 2 + ["native"] * 2 and v3["warmup"] == 1
        # norepeat: one run per argv list; a failing input is a row with its outcome, not the end
        create(probe, rt, "m-norepeat", wasm["kernels"], argv=[["3", "quiet"], ["2", "quiet"], ["1", "quiet"]])
        st = exited(probe, rt, "m-norepeat")
        assert st["status"]["reason"] == "exited" and st["samples"] == 3
        runs = layouts.decode("benchmarking-v3", profile(probe, "benchmarking-v3", "m-norepeat"))["runs"]
        assert all(w > 0 for w in runs["wall_ns"]) and set(runs["outcome"]) <= {"ok", "exit"}
        # an engine that is not there: a clear error naming it, no fallback
        create(probe, rt, "m-noengine", wasm["spin"], engine="wasmedge-i")
        st = exited(probe, rt, "m-noengine")
        assert st["status"]["reason"] == "error" and "wasmedge-i" in st["status"]["error"]
        create(probe, rt, "m-badarg", wasm["spin"], repeat="many")
        assert "key 'data.args.repeat' must be int, got str" in exited(probe, rt, "m-badarg")["status"]["error"]
        # the whole-module limit stops the repeats: reason `limit`, the samples so far are kept
        create(probe, rt, "m-limit", wasm["spin"], argv=["1"], repeat=100000, limit=1.0, engine="wasmtime-aot")
        st = exited(probe, rt, "m-limit")
        assert st["status"]["reason"] == "limit" and 0 < st["samples"] < 100000
        assert len(layouts.decode("benchmarking-v3", profile(probe, "benchmarking-v3", "m-limit"))["runs"]["wall_ns"]) == st["samples"]
        # a trap is an outcome of its own, with its message
        create(probe, rt, "m-trap", wasm["trap"], repeat=2, engine="wasmtime")
        st = exited(probe, rt, "m-trap")
        assert st["failure"] == "trap" and "trap" in st["status"]["error"].lower()
        v3 = layouts.decode("benchmarking-v3", profile(probe, "benchmarking-v3", "m-trap"))
        assert v3["runs"]["outcome"] == ["trap"] and "trap" in v3["errors"]["0"].lower()


def test_seeded_dirmode_scriptmode(broker, probe, wasm, wasm_root, tmp_path) -> None:  # type: ignore[no-untyped-def]
    probe.subscribe(f"{REALM}/proc/#")
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for n in ("a", "b", "c"):
        (inputs / n).write_text(n)
    script = tmp_path / "args.py"
    script.write_text("import sys\nprint(int(sys.argv[1]) % 4 + 1, 'quiet')\n")
    with running_node(broker, runtimes=["benchmarking/seeded"], extra_args=node_args(tmp_path, [wasm_root, str(tmp_path)])) as node:
        rt = node.runtime_uuid()
        create(probe, rt, "s-dir", wasm["spin"], repeat=4, max_seed=1000, dirmode=str(inputs), engine="wasmtime-aot")
        assert exited(probe, rt, "s-dir")["status"]["reason"] == "exited"
        d = layouts.decode("seeded", profile(probe, "seeded", "s-dir"))
        assert len(d["seed"]) == 4 and all(0 <= s < 1000 for s in d["seed"]) and all(w > 0 for w in d["wall_us"])
        create(probe, rt, "s-script", wasm["kernels"], repeat=3, scriptmode=str(script), engine="wasmtime-aot")
        st = exited(probe, rt, "s-script")
        # kernels exits with acc & 63, which is not 0 for every size: either all 3 ran, or the first failure ended it
        d = layouts.decode("seeded", profile(probe, "seeded", "s-script"))
        assert st["status"]["reason"] == "exited"
        assert len(d["seed"]) == 3 or "failed" in (st["status"]["error"] or "")
        create(probe, rt, "s-bad", wasm["spin"], dirmode=str(tmp_path / "nope"))
        err = exited(probe, rt, "s-bad")["status"]["error"]
        assert "args.dirmode" in err and "is not a directory" in err


def test_interference_two_way_pinned(broker, probe, wasm, wasm_root, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cpus = sorted(os.sched_getaffinity(0))
    probe.subscribe(f"{REALM}/proc/#")
    with running_node(broker, runtimes=["benchmarking/if"], extra_args=["-g", ",".join(map(str, cpus[:2]))] + node_args(tmp_path, [wasm_root])) as node:
        rt = node.runtime_uuid()
        files = f"{wasm['spin']}:{wasm['spin']}"
        if len(cpus) < 2:
            create(probe, rt, "if-2", files, argv=["1"], limit=4.0, engine="wasmtime-aot")
            assert "need 2 CPUs" in exited(probe, rt, "if-2")["status"]["error"]
            return
        create(probe, rt, "if-2", files, argv=["1"], limit=4.0, engine="wasmtime-aot")  # several runs each, however busy the machine
        st = exited(probe, rt, "if-2")
        assert st["status"]["reason"] == "exited"
        d = orjson.loads(profile(probe, "interference", "if-2"))
        assert set(d) == {f"0:{wasm['spin']}", f"1:{wasm['spin']}"}
        # ours: both loops started after the barrier; runs inside the window in which both ran are marked
        v2 = layouts.decode("interference-v2", profile(probe, "interference-v2", "if-2"))
        lo, hi = v2["window_ns"]
        assert 0 < hi - lo <= 4_100_000_000
        for lp in v2["loops"]:
            r = lp["runs"]
            assert lp["engine"] == "wasmtime-aot" and sum(r["inside"]) >= 1
            assert d[f"{lp['index']}:{lp['file']}"] == [0 if o != "ok" else max(1, w // 1000) for w, o in zip(r["wall_ns"], r["outcome"])]  # the seed's layout: the same runs
            for st_, w, inside in zip(r["start_ns"], r["wall_ns"], r["inside"]):
                assert inside == (st_ >= lo and st_ + w <= hi)
            # over and over, one at a time: each run starts after the one before ended, so the loop holds
            # at least as many runs as fit whole in the window (how long a run takes depends on the machine)
            ends = [st_ + w for st_, w in zip(r["start_ns"], r["wall_ns"])]
            assert all(nxt >= end for end, nxt in zip(ends, r["start_ns"][1:]))
            assert len(r["wall_ns"]) >= (hi - lo) // max(r["wall_ns"]) - 1, (hi - lo, r["wall_ns"])
        # the barrier: they start together, so their first runs overlap
        (s0, w0), (s1, w1) = [(lp["runs"]["start_ns"][0], lp["runs"]["wall_ns"][0]) for lp in v2["loops"]]
        assert s0 < s1 + w1 and s1 < s0 + w0, (s0, w0, s1, w1)


def test_opcodes_runtime_matches_reference(broker, probe, wasm, wasm_root, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from benchmarking.opcodes.reference import reference_counts

    probe.subscribe(f"{REALM}/proc/#")
    with running_node(broker, runtimes=["benchmarking/opcodes"], extra_args=node_args(tmp_path, [wasm_root])) as node:
        rt = node.runtime_uuid()
        create(probe, rt, "op-1", wasm["kernels"], argv=["4"])
        st = exited(probe, rt, "op-1")
        assert st["status"]["reason"] == "exited" and st["runs"] == 1
        counts = layouts.decode("opcodes", profile(probe, "opcodes", "op-1"))["counts"]
        loops = layouts.decode("instrumented", profile(probe, "instrumented", "op-1"))["loops"]
        with open(wasm["kernels"], "rb") as f:
            code, ref = reference_counts(f.read(), ["4"])
        assert counts == ref and st["status"]["code"] == code
        assert len(loops) == st["loops"] and max(loops) >= 64  # matmul's inner loop: 4*4*4 iterations
        create(probe, rt, "op-jit", wasm["kernels"], engine="wasmer")
        st = exited(probe, rt, "op-jit")
        assert st["status"]["reason"] == "error" and "engine 'wasmer' is not supported" in st["status"]["error"]


def test_delete_kills_the_running_child(broker, probe, wasm, wasm_root, tmp_path) -> None:  # type: ignore[no-untyped-def]
    probe.subscribe(f"{REALM}/proc/#")
    with running_node(broker, runtimes=["benchmarking"], extra_args=node_args(tmp_path, [wasm_root])) as node:
        rt = node.runtime_uuid()
        [wpid] = node.worker_pids()
        create(probe, rt, "m-long", wasm["forever"], repeat=2, engine="wasmtime-aot")
        # the first run is under way (it never ends by itself): its process (a fork) is the worker's child
        [child] = wait_until(lambda: _children(wpid), 60, "the run's process")
        probe.publish(f"{REALM}/proc/control/{rt}", {"object_id": "d1", "action": "delete", "type": "req",
                                                      "data": {"type": "module", "uuid": "m-long"}})
        st = exited(probe, rt, "m-long", timeout=30)
        assert st["status"]["reason"] == "deleted"
        assert child not in _children(wpid)  # killed and reaped


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(c) for c in f.read().split()]
        except FileNotFoundError:  # a thread that ended
            pass
    return out


def test_children_inherit_the_cpu_set_of_start_py_g(broker, probe, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cpu = sorted(os.sched_getaffinity(0))[-1]
    script = tmp_path / "affinity.sh"
    script.write_text("#!/bin/sh\ngrep Cpus_allowed_list /proc/self/status\n")
    script.chmod(0o755)
    out = tmp_path / "out.txt"
    probe.subscribe(f"{REALM}/proc/#")
    with running_node(broker, runtimes=["benchmarking"], extra_args=["-g", str(cpu)] + node_args(tmp_path, [str(tmp_path)], ["native"])) as node:
        rt = node.runtime_uuid()
        reg = [r for r in node.registrations if r["data"].get("type") == "runtime"][0]["data"]
        assert reg["metadata"]["cpus"] == [cpu]
        create(probe, rt, "aff", str(script), engine="native", repeat=2, stdout=str(out))
        assert exited(probe, rt, "aff")["status"]["reason"] == "exited"
    lines = out.read_text().split("\n")
    assert [ln.split()[-1] for ln in lines if ln] == [str(cpu), str(cpu)]  # output kept only because asked


def test_wasmer_engine_or_a_clear_refusal(broker, probe, wasm, wasm_root, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from benchmarking.engines import launch as engines

    probe.subscribe(f"{REALM}/proc/#")
    with running_node(broker, runtimes=["benchmarking"], extra_args=node_args(tmp_path, [wasm_root], ["wasmer"])) as node:
        rt = node.runtime_uuid()
        create(probe, rt, "wm", wasm["spin"], engine="wasmer", argv=["1"], repeat=2)
        st = exited(probe, rt, "wm")
        if engines.availability("wasmer")[0]:
            assert st["status"] == {"reason": "exited", "code": 0, "error": None}
            assert len(layouts.decode("benchmarking-v3", profile(probe, "benchmarking-v3", "wm"))["runs"]["wall_ns"]) == 2
        else:
            assert st["status"]["reason"] == "error" and "'wasmer' is not available" in st["status"]["error"]


def test_modules_created_ahead_wait_and_run_one_at_a_time_in_order(broker, probe, wasm, wasm_root, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """queue_ahead: creates beyond the running module wait in the worker and run back to back,
    never two at once; a waiting one can be deleted; its `limit` counts from its own start."""
    probe.subscribe(f"{REALM}/proc/#")
    with running_node(broker, runtimes=["benchmarking"], extra_args=node_args(tmp_path, [wasm_root])) as node:
        rt = node.runtime_uuid()
        reg = [r for r in node.registrations if r["data"].get("type") == "runtime"][0]["data"]
        assert reg["max_nmodules"] == 1 and reg["metadata"]["queue_ahead"] == 3
        # q-1 (a loop without end) runs until its ilimit (6 s) ends it (a failed run ends a repeat): longer than q-2's whole limit (4 s) however busy the
        # machine is, so q-2 waits longer than its limit and still may not be ended by it
        create(probe, rt, "q-1", wasm["forever"], repeat=2, profile="ours", ilimit=6.0)
        create(probe, rt, "q-2", wasm["spin"], argv=["0"], repeat=3, profile="ours", limit=4.0)
        create(probe, rt, "q-3", wasm["spin"], argv=["0"], repeat=3, profile="ours")
        create(probe, rt, "q-4", wasm["spin"], argv=["0"], repeat=3, profile="ours")
        probe.publish(f"{REALM}/proc/control/{rt}", {"object_id": "d3", "action": "delete", "type": "req",
                                                      "data": {"type": "module", "uuid": "q-3"}})
        ends = {"q-3": exited(probe, rt, "q-3")}
        assert ends["q-3"]["status"]["reason"] == "deleted" and "samples" not in ends["q-3"]
        create(probe, rt, "q-5", wasm["spin"], argv=["0"], repeat=3, profile="ours")  # q-3's slot is free again
        ends.update({u: exited(probe, rt, u) for u in ("q-1", "q-2", "q-4", "q-5")})
        assert ends["q-1"]["status"]["reason"] == "limit", ends["q-1"]
        q1 = layouts.decode("benchmarking-v3", profile(probe, "benchmarking-v3", "q-1"))["runs"]
        assert q1["outcome"] == ["limit"] and q1["wall_ns"][0] >= 6_000_000_000
        for u in ("q-2", "q-4", "q-5"):
            assert ends[u]["status"] == {"reason": "exited", "code": 0, "error": None} and ends[u]["outcomes"] == {"ok": 3}, ends[u]
            assert len(layouts.decode("benchmarking-v3", profile(probe, "benchmarking-v3", u))["runs"]["wall_ns"]) == 3
        # q-2 waited out q-1 (over 6 s, more than its limit of 4 s) and still ran all its runs: its limit
        # counted from its own start
        msgs = [orjson.loads(m.payload) for m in probe.messages(f"{REALM}/proc/control/{rt}")]
        order = [m["data"]["uuid"] for m in msgs if m.get("action") == "exited"]
        # in the order of their creates: had q-2 run beside the much longer q-1, it would have ended first
        assert [u for u in order if u != "q-3"] == ["q-1", "q-2", "q-4", "q-5"]
        # one running and three waiting fill the slots: a fifth create is refused by the supervisor
        for u in ("f-1", "f-2", "f-3", "f-4", "f-5"):
            create(probe, rt, u, wasm["forever"], repeat=1, profile="ours", ilimit=30)
        full = probe.wait_for(f"{REALM}/proc/log", timeout=30, pred=lambda m: b"f-5" in m.payload and b"is full" in m.payload)
        assert full
        for u in ("f-1", "f-2", "f-3", "f-4"):
            probe.publish(f"{REALM}/proc/control/{rt}", {"object_id": f"d-{u}", "action": "delete", "type": "req",
                                                          "data": {"type": "module", "uuid": u}})
        for u in ("f-1", "f-2", "f-3", "f-4"):
            assert exited(probe, rt, u, timeout=30)["status"]["reason"] == "deleted"
