"""`manage.py export --pitot`: the layout Pitot's preprocessing reads (docs/compatibility.md, "Pitot's preprocessing"), checked
field by field the way the preprocessing reads it. The records come through the real collector
store from real payload encodings (the broker path is covered by test_cli/test_campaign)."""
from __future__ import annotations

import json
import math
import os
import statistics

import orjson

from cli import export
from collector import ProfileStore
from common.wire import envelope
from benchmarking import layouts

R = "realm"
PLATFORM = {"cpu": {"cpu": "cortex-a72", "cpufreq": 1_500_000_000, "cores": 4},
            "mem": {"l1d_size": 32768, "l1i_size": 49152, "l2_size": 1048576, "l2_line": 64, "l2_assoc": 16, "l3_size": 0}}


def feed(store: ProfileStore, rt: str, rt_name: str, mid: str, file: str, args: dict, ptype: str, body: object,  # type: ignore[type-arg]
         platform: dict | None = None) -> None:  # type: ignore[type-arg]
    store.on_registration(orjson.dumps(envelope("create", {"type": "runtime", "uuid": rt, "name": rt_name,
                                                           "runtime_type": "benchmarking",
                                                           "platform": PLATFORM if platform is None else platform})))
    store.on_control(orjson.dumps(envelope("create", {"type": "module", "uuid": mid, "name": os.path.basename(file),
                                                      "file": file, "args": args, "parent": rt})))
    store.on_profile(f"{R}/proc/profile/{ptype}/{rt}/{mid}", layouts.encode(ptype, body), R)


def v3(walls_ns: list[int], outcomes: list[str], engine: str) -> dict:  # type: ignore[type-arg]
    n = len(walls_ns)
    return {"v": 3, "runs": {"wall_ns": walls_ns, "utime_us": [1] * n, "stime_us": [0] * n, "maxrss_kb": [9] * n,
                             "outcome": outcomes, "exit_code": [0] * n, "signal": [None] * n, "engine": [engine] * n},
            "errors": {}, "env": {}, "warmup": 0}


def walk(top: str) -> list[dict]:  # type: ignore[type-arg]
    """Pitot's reading: every file below `top` except those named runtimes.json, JSON-loaded."""
    out = []
    for dirpath, _dirs, files in os.walk(top):
        for fn in files:
            if fn != "runtimes.json":
                with open(os.path.join(dirpath, fn)) as f:
                    out.append(json.load(f))
    return out


def test_pitot_layout_field_by_field(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    data = str(tmp_path / "data")
    store = ProfileStore(data)
    root = "/srv/bench"
    # ours (v3, with a failed run that must become the seed's 0) and the seed's copy of the same runs
    args = {"engine": "wasmtime-aot", "argv": [], "repeat": 3, "campaign": "c", "cell": 0}
    feed(store, "rt-1", "dev1.benchmarking", "m-1", f"{root}/wasm/polybench/small/2mm.wasm", args, "benchmarking-v3",
         v3([2_000_000, 3_000_000, 9_000], ["ok", "ok", "trap"], "wasmtime-aot"))
    feed(store, "rt-1", "dev1.benchmarking", "m-1", f"{root}/wasm/polybench/small/2mm.wasm", args, "benchmarking",
         [(2000, 1, 0), (3000, 1, 0), (0, 0, 0)])
    # python: argv is part of the workload name
    feed(store, "rt-1", "dev1.benchmarking", "m-2", f"{root}/wasm/apps/python.wasm",
         {"engine": "wasmtime", "argv": ["data/apps/python/nbody.py", "100000"]}, "benchmarking-v3",
         v3([5_000_000], ["ok"], "wasmtime"))
    # interference (ours): only the runs inside the window count
    feed(store, "rt-2", "dev1.interference", "m-3", f"{root}/wasm/a.wasm:{root}/wasm/b.wasm",
         {"engine": "wasmtime", "argv": []}, "interference-v2",
         {"v": 2, "window_ns": [100, 1000], "loops": [
             {"index": 0, "file": f"{root}/wasm/a.wasm", "engine": "wasmtime",
              "runs": {"start_ns": [0, 100, 400], "wall_ns": [100, 300, 500], "outcome": ["ok", "ok", "ok"], "inside": [False, True, True]}},
             {"index": 1, "file": f"{root}/wasm/b.wasm", "engine": "wasmtime",
              "runs": {"start_ns": [100], "wall_ns": [900], "outcome": ["ok"], "inside": [True]}}]})
    feed(store, "rt-3", "dev1.opcodes", "m-4", f"{root}/wasm/polybench/small/2mm.wasm", {"engine": "wasmtime"},
         "opcodes", list(range(256)))
    out, ops = str(tmp_path / "pitot" / "session"), str(tmp_path / "pitot-opcodes")
    assert export.main(["--pitot", out, "--opcodes", ops, data, "--check"]) == 0, capsys.readouterr().err
    # runtimes.json: device name and platform facts as platforms.py reads them
    with open(os.path.join(out, "runtimes.json")) as f:
        rts = json.load(f)
    # one runtime per device, of those with data in the session (rt-3 has only opcodes)
    assert len(rts) == 1 and set(rts) <= {"rt-1", "rt-2"} and {r["name"] for r in rts.values()} == {"dev1"}
    for r in rts.values():
        cpu, mem = r["platform"]["cpu"], r["platform"]["mem"]
        assert isinstance(cpu["cpu"], str) and math.isfinite(math.log(cpu["cpufreq"] / 1e6) - 7)
        assert all(isinstance(mem[k], int) for k in ("l1d_size", "l1i_size", "l2_size", "l2_line", "l2_assoc", "l3_size"))
    # the session tree: one file per module, no opcodes in it
    files = walk(out)
    assert len(files) == 3 and not any("opcodes" in f for f in files)
    names = {}
    for f in files:
        m = f["module"]
        device = rts[m["parent"]]["name"]
        platform = f"{m['args']['engine']}:{device}"
        names[export.workload_name(m)] = (platform, f)
        assert m["parent"] in rts and m["runtime"] in ("rt-1", "rt-2")
    assert set(names) == {"polybench/small/2mm", "python:nbody.py:100000", "a:b"}
    platform, f = names["polybench/small/2mm"]
    assert names["python:nbody.py:100000"][0] == "wasmtime-j:dev1"  # canonical engine names, as Pitot's
    assert platform == "wasmtime-a:dev1" and f["wall"] == [2000, 3000, 0]  # the failed run is the seed's 0
    assert statistics.fmean(w for w in f["wall"] if w > 0) == 2500  # dataset.py's t
    assert f["module"]["file"] == "wasm/polybench/small/2mm.wasm"
    platform, f = names["a:b"]
    keys = [f"{i}:{p}" for i, p in enumerate(f["module"]["file"].split(":"))]
    assert keys == ["0:wasm/a.wasm", "1:wasm/b.wasm"] and f["0:wasm/a.wasm"] == [1, 1] and f["1:wasm/b.wasm"] == [1]
    assert all(x > 0 for k in keys for x in f[k][:-1])  # interference.py keeps a module only then
    # the opcodes tree holds only opcodes files (opcodes.py has no exception handling)
    opc = walk(ops)
    assert len(opc) == 1 and opc[0]["opcodes"] == list(range(256))
    assert export.workload_name(opc[0]["module"]) == "polybench/small/2mm"
    # an output that is not empty is refused (Pitot would read whatever else is there)
    assert export.main(["--pitot", out, data]) == 1
    assert "not an empty directory" in capsys.readouterr().err


def test_check_names_what_pitot_would_trip_over(tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "s"
    (out / "d").mkdir(parents=True)
    (out / "runtimes.json").write_text(json.dumps({"r": {"name": "d", "platform": {"cpu": {}}}}))
    (out / "d" / "x.json").write_text(json.dumps({"wall": [0], "module": {"parent": "q", "file": "/abs/x.wasm",
                                                                          "args": {"engine": "wasmtime"}}}))
    problems = "\n".join(export.pitot_problems(str(out)))
    assert "platform.cpu.cpu is missing" in problems and "cpufreq" in problems
    assert "module.parent q is not in runtimes.json" in problems and "does not start with wasm/" in problems
    assert "at least one > 0" in problems


def pitot_platform_rows(sessions: list[str], engines: list[str]) -> list[str]:
    """Pitot's platforms step: every runtimes.json entry (merged by uuid) x engine, as names."""
    rtdata: dict[str, dict] = {}  # type: ignore[type-arg]
    for s in sessions:
        with open(os.path.join(s, "runtimes.json")) as f:
            rtdata.update(json.load(f))
    devices = sorted(d["name"] for d in rtdata.values())
    return [f"{e}:{d}" for e in engines for d in devices]


def test_a_node_with_benchmarking_and_opcodes_runtimes(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    """The issue's set-up: one node `pc` with a `benchmarking` and a `benchmarking/opcodes` runtime,
    configured (and restarted) after its first runs; one module whose runs all failed; two campaigns."""
    data = str(tmp_path / "data")
    store = ProfileStore(data)
    wasm = "/srv/wasm/polybench/small"
    before = {"cpu": {}, "mem": {}}  # registered before `manage.py configure`
    for i, name in enumerate(("2mm", "3mm")):
        feed(store, "rt-b", "pc.benchmarking", f"m-{i}", f"{wasm}/{name}.wasm",
             {"engine": "wasmtime", "argv": [], "campaign": "c1", "cell": i}, "benchmarking-v3",
             v3([1_000_000 * (i + 1)] * 3, ["ok"] * 3, "wasmtime"), platform=before)
        feed(store, "rt-o", "pc.benchmarking/opcodes", f"o-{i}", f"{wasm}/{name}.wasm", {"engine": "wasmtime"},
             "opcodes", [i + 1] * 256)
    # after configure and a restart: the same runtime registers its platform
    feed(store, "rt-b", "pc.benchmarking", "m-2", f"{wasm}/2mm.wasm",
         {"engine": "wasmtime", "argv": [], "campaign": "c2", "cell": 0}, "benchmarking-v3",
         v3([1_100_000] * 3, ["ok"] * 3, "wasmtime"))
    feed(store, "rt-b", "pc.benchmarking", "m-3", f"{wasm}/3mm.wasm",
         {"engine": "wasmtime", "argv": [], "campaign": "c2", "cell": 1}, "benchmarking-v3",
         v3([9_000, 9_000], ["trap", "trap"], "wasmtime"))
    out, ops = str(tmp_path / "s"), str(tmp_path / "ops")
    assert export.main(["--pitot", out, "--opcodes", ops, data, "--check"]) == 0, capsys.readouterr().err
    err = capsys.readouterr().err
    assert "left out 1 module(s) whose runs all failed" in err and "m-3" in err and "layout ok" in err
    with open(os.path.join(out, "runtimes.json")) as f:
        rts = json.load(f)
    assert list(rts) == ["rt-b"] and rts["rt-b"]["platform"] == PLATFORM | {"cpu": PLATFORM["cpu"]}  # the latest registration
    # Pitot's platforms step names every platform once: its dataset step's index fits
    rows = pitot_platform_rows([out], ["wasmtime-j", "wasmer-j-cl"])
    assert len(rows) == len(set(rows)) == 2
    files = walk(out)
    assert sorted(f["module"]["uuid"] for f in files) == ["m-0", "m-1", "m-2"]  # m-3 failed every run
    assert len(walk(ops)) == 2  # one opcodes file per workload
    # --campaign: only that campaign's modules
    out2 = str(tmp_path / "s2")
    assert export.main(["--pitot", out2, "--opcodes", str(tmp_path / "ops2"), "--campaign", "c1", data, "--check"]) == 0
    assert sorted(f["module"]["uuid"] for f in walk(out2)) == ["m-0", "m-1"] and len(walk(str(tmp_path / "ops2"))) == 2
    capsys.readouterr()
    assert export.main(["--pitot", str(tmp_path / "s3"), "--campaign", "nosuch", data]) == 1
    assert "no benchmark data of campaign nosuch" in capsys.readouterr().err
    # --device runtime keeps the runtimes apart (each is a device of its own)
    out4 = str(tmp_path / "s4")
    assert export.main(["--pitot", out4, "--opcodes", str(tmp_path / "ops4"), "--device", "runtime", data]) == 0
    with open(os.path.join(out4, "runtimes.json")) as f:
        assert [r["name"] for r in json.load(f).values()] == ["pc.benchmarking"]


def test_check_finds_a_device_twice_and_duplicate_opcodes(tmp_path) -> None:  # type: ignore[no-untyped-def]
    out, ops = tmp_path / "s", tmp_path / "ops"
    (out / "pc").mkdir(parents=True)
    (ops / "pc").mkdir(parents=True)
    rt = {"name": "pc", "platform": PLATFORM}
    (out / "runtimes.json").write_text(json.dumps({"a": rt, "b": rt}))  # today's export with an opcodes runtime
    module = {"parent": "a", "file": "wasm/x.wasm", "args": {"engine": "wasmtime-j", "argv": []}}
    (out / "pc" / "x.json").write_text(json.dumps({"wall": [5], "module": module}))
    for i in range(2):
        (ops / "pc" / f"x{i}.json").write_text(json.dumps({"opcodes": [1] * 256, "module": module}))
    problems = "\n".join(export.pitot_problems(str(out), str(ops)))
    assert "device 'pc' is runtimes a, b" in problems and "IndexError" in problems
    assert "workload 'x' has 2 files" in problems
    # a platform without the cache facts the platforms step reads
    (out / "runtimes.json").write_text(json.dumps({"a": {"name": "pc", "platform": {"cpu": PLATFORM["cpu"], "mem": {}}}}))
    problems = "\n".join(export.pitot_problems(str(out)))
    assert "platform.mem lacks l1d_size, l1i_size, l2_size, l2_line, l2_assoc, l3_size" in problems and "device 'pc'" not in problems
