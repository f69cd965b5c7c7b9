"""`manage.py export --table`: one row per run, every layout in the same columns, from the
collector's results store or (an older collector's) files through the one loader; records come
through the real collector store from real payload encodings."""
from __future__ import annotations

import csv
import json
import os
import shutil

from benchmarking.analysis import tidy
from cli import export
from collector import ProfileStore
from tests.cli.test_export import PLATFORM, feed, v3

OLD = {"cpu": {"model": "old", "mhz": 1000}, "mem": {}}


def read_csv(path: str) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def fill(data: str) -> None:
    store = ProfileStore(data)
    body = v3([2_000_000, 3_000_000, 9_000], ["ok", "ok", "trap"], "wasmtime")
    body["runs"]["compile_ns"] = [10, 11, None]
    body["first_run"] = 3  # the second part of a module's runs
    args = {"engine": "wasmtime", "argv": ["-n", "5"], "campaign": "c1", "cell": 7}
    feed(store, "rt-1", "pc.benchmarking", "m-1", "/w/wasm/a.wasm", args, "benchmarking-v3", body, platform=OLD)
    # the seed's copy of the same runs: left out (the module is read from ours)
    feed(store, "rt-1", "pc.benchmarking", "m-1", "/w/wasm/a.wasm", args, "benchmarking", [(2000, 1, 0)] * 3, platform=OLD)
    # a module of the seed's layout only, one failed run (0), after the node's configure
    feed(store, "rt-1", "pc.benchmarking", "m-2", "/w/wasm/b.wasm", {"engine": "wasmtime-aot", "argv": []},
         "benchmarking-v2", [(500, 400, 50, 2048), (0, 0, 0, 0)])
    feed(store, "rt-2", "pc.interference", "m-3", "/w/wasm/a.wasm:/w/wasm/b.wasm",
         {"engine": ["wasmtime", "wasmer"], "argv": [], "campaign": "c2", "cell": 0}, "interference-v2",
         {"v": 2, "window_ns": [100, 1000], "loops": [
             {"index": 0, "file": "/w/wasm/a.wasm", "engine": "wasmtime",
              "runs": {"start_ns": [0, 100], "wall_ns": [100, 300], "outcome": ["ok", "ok"], "inside": [False, True]}},
             {"index": 1, "file": "/w/wasm/b.wasm", "engine": "wasmer",
              "runs": {"start_ns": [100], "wall_ns": [900], "outcome": ["signal"], "inside": [True]}}]})
    feed(store, "rt-3", "pc.opcodes", "m-4", "/w/wasm/a.wasm", {"engine": "wasmtime"}, "opcodes", [1] * 256)


def test_one_row_per_run_from_the_store_and_from_files(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    data = str(tmp_path / "data")
    fill(data)
    assert os.path.exists(os.path.join(data, "results.sqlite"))
    base = str(tmp_path / "out" / "runs")
    assert export.main(["--table", base + ".csv", data]) == 0
    err = capsys.readouterr().err
    assert "wrote 8 runs from the results store" in err
    rows = read_csv(base + ".csv")
    assert list(rows[0]) == list(tidy.NAMES) and len(rows) == 8
    v3rows = [r for r in rows if r["module_uuid"] == "m-1"]
    assert [r["run"] for r in v3rows] == ["3", "4", "5"] and [r["outcome"] for r in v3rows] == ["ok", "ok", "trap"]
    r = v3rows[0]
    assert (r["campaign"], r["cell"], r["node"], r["runtime"], r["engine"]) == ("c1", "7", "pc", "pc.benchmarking", "wasmtime-j")
    assert (r["wall_ns"], r["utime_us"], r["stime_us"], r["maxrss_kb"], r["compile_ns"]) == ("2000000", "1", "0", "9", "10")
    assert json.loads(r["argv"]) == ["-n", "5"] and r["file"] == "/w/wasm/a.wasm" and r["layout"] == "benchmarking-v3"
    assert v3rows[2]["compile_ns"] == "" and v3rows[2]["kind"] == "alone"
    # the platform of the runtime's latest registration, also on the runs stored before it
    assert {(r["cpu"], r["cpufreq_hz"]) for r in rows if r["runtime_uuid"] == "rt-1"} == {("cortex-a72", "1500000000")}
    assert json.loads(r["platform"]) == PLATFORM
    seed = [r for r in rows if r["module_uuid"] == "m-2"]
    assert [(r["wall_ns"], r["outcome"], r["maxrss_kb"], r["engine"]) for r in seed] == [
        ("500000", "ok", "2048", "wasmtime-a"), ("", "failed", "", "wasmtime-a")]
    inter = [r for r in rows if r["module_uuid"] == "m-3"]
    assert [(r["loop"], r["run"], r["engine"], r["outcome"], r["inside"], r["kind"]) for r in inter] == [
        ("0", "0", "wasmtime-j", "ok", "False", "interference-2"), ("0", "1", "wasmtime-j", "ok", "True", "interference-2"),
        ("1", "0", "wasmer-j-cl", "signal", "True", "interference-2")]
    assert inter[2]["file"] == "/w/wasm/b.wasm" and inter[2]["campaign"] == "c2"
    # Parquet where pyarrow or polars is installed, with the same rows; else CSV only, said so
    writer = tidy.parquet_writer()
    if writer is None:
        assert "no Parquet" in err and not os.path.exists(base + ".parquet")
    else:
        import importlib
        lib = importlib.import_module(writer)
        got = lib.read_parquet(base + ".parquet") if writer == "polars" else importlib.import_module("pyarrow.parquet").read_table(base + ".parquet")
        assert (got.num_rows if writer == "pyarrow" else got.height) == 8
    # --campaign: that campaign's runs
    assert export.main(["--table", str(tmp_path / "c2"), "--campaign", "c2", data]) == 0
    assert [r["module_uuid"] for r in read_csv(str(tmp_path / "c2.csv"))] == ["m-3"] * 3
    # an older collector's directory (files only) gives the same table through the same loader
    files_only = str(tmp_path / "files")
    shutil.copytree(data, files_only, ignore=shutil.ignore_patterns("results.sqlite*"))
    assert export.main(["--table", str(tmp_path / "f"), files_only]) == 0
    assert "from the collector's files" in capsys.readouterr().err
    key = lambda r: (r["module_uuid"], r["loop"], r["run"])  # noqa: E731
    assert sorted(read_csv(str(tmp_path / "f.csv")), key=key) == sorted(rows, key=key)
    # nothing to write: one line, exit 1
    assert export.main(["--table", str(tmp_path / "n"), "--campaign", "nosuch", data]) == 1
    assert "no runs of campaign nosuch" in capsys.readouterr().err


def test_files_from_before_the_store_are_read_too(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    """A collector upgraded in place: its data directory holds files from before the store (not in
    it) and the store (whose results also have files): each run once."""
    data = tmp_path / "data"
    old = data / "2026-01-01" / "pc.benchmarking" / "old.wasm.m-9.benchmarking-v3.json"
    old.parent.mkdir(parents=True)
    old.write_text(json.dumps({"type": "benchmarking-v3", "received": 1.0, "runtime": {"uuid": "rt-1", "name": "pc.benchmarking"},
                               "module": {"uuid": "m-9", "name": "old.wasm", "file": "/w/wasm/old.wasm",
                                          "args": {"engine": "wasmtime"}},
                               "data": v3([7_000_000, 8_000_000], ["ok", "ok"], "wasmtime")}))
    fill(str(data))
    assert export.main(["--table", str(tmp_path / "t"), str(data)]) == 0
    assert "wrote 10 runs from the results store" in capsys.readouterr().err
    rows = read_csv(str(tmp_path / "t.csv"))
    assert [r["wall_ns"] for r in rows if r["module_uuid"] == "m-9"] == ["7000000", "8000000"]
    assert len([r for r in rows if r["module_uuid"] == "m-1"]) == 3  # the store's results: not again from their files
